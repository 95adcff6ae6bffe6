"""The construction pipeline: raw counseling text to Psy-Insight sessions (spec.md section 2).

Steps, each a module with one job: ``ingest`` (files to documents), ``segment`` (narrative
vs utterances, speakers and roles), ``turns`` (notes cut, runs merged, session units),
``anonymise`` (placeholders and the leak check), ``annotate`` (LLM annotation with schema
checks and one repair retry), ``assemble`` (release format, validator, report). ``pipeline``
runs them with a per-item cache keyed by the hash of each step's input, so a rerun, or a
run resumed after a crash, repeats no finished work.
"""

"""``psyinsight build``: the steps in order, each item cached by the hash of its input.

Why a cache per item and per step: a build over a shelf of books takes hours of LLM calls.
Every step's output for one document (or one session unit) is stored under
``OUT/cache/steps/<step>/<hash>.json`` as soon as it is complete, the hash covering the
step's version, its settings and its input; every successful LLM answer is committed to the
SQLite cache (``OUT/cache/llm.sqlite``) the moment it arrives. A run killed at any point
(kill -9 included) therefore resumes without repeating a successful call, and, the steps
being deterministic, writes the same output as a run never interrupted.

Outputs in OUT: ``en_data.json`` / ``cn_data.json`` (release format), ``failures.jsonl``
(every failed LLM question, with the raw answers), ``report.json`` (counts, failures,
tokens and cost per step, validator findings, leak check, gold scores when gold exists).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from psyinsight import __version__
from psyinsight.build import anonymise as anon
from psyinsight.build.annotate import (
    AnnotateConfig,
    Job,
    apply_outcomes,
    empty_annotation,
    load_prompts,
    resolve_jobs,
    run_jobs,
    unit_jobs,
)
from psyinsight.build.assemble import OUTPUT_FILES, assemble, validate
from psyinsight.build.entities import known_people
from psyinsight.build.gold import Score, gold_path, load_gold, score_turns
from psyinsight.build.ingest import discover, ingest_file
from psyinsight.build.labeller import apply_labellers, load_labellers, parse_spec
from psyinsight.build.records import Document, Piece, Unit
from psyinsight.build.segment import label_role, segment
from psyinsight.build.turns import make_units
from psyinsight.data import consistency
from psyinsight.data.schema import SEEKER, SUPPORTER
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_json, write_json, write_jsonl
from psyinsight.llm import LLMClient, LLMConfig

STEP_MODULES = {
    "segment": ("segment", "entities", "records", "ingest"),
    "turns": ("turns", "records"),
    "anonymise": ("anonymise", "entities", "records"),
    "annotate": ("annotate", "schemas", "records"),
}


def _code_hash(step: str) -> str:
    """A hash of the source of the modules a step runs: changed rules invalidate its cache by themselves."""
    digest = hashlib.sha256()
    folder = Path(__file__).parent
    for name in STEP_MODULES[step]:
        digest.update((folder / f"{name}.py").read_bytes())
    return digest.hexdigest()


STEP_VERSIONS = {step: _code_hash(step) for step in STEP_MODULES}
"""Each step's cache key starts with the hash of its code."""


@dataclass
class BuildConfig:
    """One build: where from, where to, which LLM, how to annotate."""

    raw_dir: Path = field(metadata={"help": "Folder of raw .txt/.md/.jsonl files (searched recursively)."})
    out_dir: Path = field(metadata={"help": "Output folder (dataset, failures, report, caches)."})
    llm: LLMConfig | None = field(default=None, metadata={"help": "The LLM endpoint; None builds with rules only (no annotation)."})
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig, metadata={"help": "Annotation settings."})
    batch_size: int = field(default=16, metadata={"help": "Units annotated per batch; each finished batch is stored before the next."})
    resolve_with_llm: bool = field(default=True, metadata={"help": "Ask the LLM about paragraphs the segmentation rules are unsure of."})
    labeller: str | None = field(
        default=None, metadata={"help": "classify:<model dir>: label classifiers that fill missing labels and check the LLM's."}
    )

    def __post_init__(self) -> None:
        self.raw_dir, self.out_dir = Path(self.raw_dir), Path(self.out_dir)
        if self.batch_size < 1:
            raise PsyInsightError(f"must be at least 1, got {self.batch_size}", where="BuildConfig.batch_size")
        if self.llm is not None and self.llm.cache_path is None:
            # A copy: the caller's LLMConfig may serve another build with another OUT.
            self.llm = replace(self.llm, cache_path=self.out_dir / "cache" / "llm.sqlite")


def _hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class StepCache:
    """Step outputs on disk, one JSON file per (step, input hash), written atomically."""

    def __init__(self, root: Path):
        self.root = root
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()

    def _path(self, step: str, key: str) -> Path:
        return self.root / step / key[:2] / f"{key}.json"

    def get(self, step: str, key: str) -> Any | None:
        path = self._path(step, key)
        if path.is_file():
            self.hits[step] += 1
            return read_json(path)
        self.misses[step] += 1
        return None

    def put(self, step: str, key: str, value: Any) -> None:
        write_json(self._path(step, key), value, indent=None)


@dataclass
class _DocState:
    doc: Document
    people: set[str]
    pieces: list[Piece] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    anonymised: list[Unit] = field(default_factory=list)
    dropped: int = 0


class Build:
    """A build run: ``run()`` returns the report (also written to ``OUT/report.json``)."""

    def __init__(self, config: BuildConfig, log: Callable[[str], None] | None = None):
        self.config = config
        self.log = log or (lambda message: None)
        self.cache = StepCache(config.out_dir / "cache" / "steps")
        self.labellers = load_labellers(parse_spec(config.labeller)) if config.labeller else []
        self.client = LLMClient(config.llm) if config.llm is not None else None
        self.failures: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.llm_fingerprint = (
            {
                "model": config.llm.model,
                "temperature": config.llm.temperature,
                "max_tokens": config.llm.max_tokens,
                "structured": config.llm.structured,
            }
            if config.llm
            else None
        )

    # -- steps ----------------------------------------------------------------------------

    def _timed(self, step: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        self.timings[step] = round(self.timings.get(step, 0.0) + time.perf_counter() - start, 3)
        return value

    def ingest(self) -> list[_DocState]:
        files = discover(self.config.raw_dir)
        states = []
        for path in files:
            doc = ingest_file(path, self.config.raw_dir)
            states.append(_DocState(doc, known_people(doc.text, doc.language)))
        self.log(f"ingest: {len(states)} files")
        return states

    def segment(self, states: list[_DocState]) -> None:
        use_llm = self.client is not None and self.config.resolve_with_llm
        pending: list[tuple[_DocState, str, list[int], list[Job]]] = []
        for state in states:
            doc = state.doc
            key = _hash(
                "segment",
                STEP_VERSIONS["segment"],
                doc.doc_id,
                doc.sha256,
                sorted(state.people),
                self.llm_fingerprint if use_llm else None,
                self._prompt_hash(doc.language) if use_llm else None,
            )
            cached = self.cache.get("segment", key)
            if cached is not None:
                state.pieces = [Piece.model_validate(p) for p in cached["pieces"]]
                self.failures += cached["failures"]
                continue
            state.pieces = segment(doc, state.people)
            if not use_llm or not any(p.unsure for p in state.pieces):
                self.cache.put("segment", key, {"pieces": [p.model_dump() for p in state.pieces], "failures": []})
                continue
            indexes, jobs = resolve_jobs(doc.text, state.pieces, load_prompts(doc.language), self.config.annotate, doc.doc_id)
            pending.append((state, key, indexes, jobs))
        if pending:
            outcomes = run_jobs(self.client, [job for *_, jobs in pending for job in jobs])  # type: ignore[arg-type]
            pos = 0
            for state, key, indexes, jobs in pending:
                mine = outcomes[pos : pos + len(jobs)]
                pos += len(jobs)
                failures = [dict(o.failure, step="segment", doc=state.doc.doc_id) for o in mine if o.failure]
                for index, outcome in zip(indexes, mine):
                    if outcome.value is not None:
                        _apply_resolution(state.pieces[index], outcome.value, state.doc.language)
                self.failures += failures
                if not any(o.transient for o in mine):
                    self.cache.put("segment", key, {"pieces": [p.model_dump() for p in state.pieces], "failures": failures})
        for state in states:
            state.people |= {
                p.participant for p in state.pieces if p.kind == "utterance" and not anon.is_role_word(p.participant, state.doc.language)
            }
        self.log(f"segment: {sum(len(s.pieces) for s in states)} pieces, {sum(p.unsure != '' for s in states for p in s.pieces)} unsure")

    def turns(self, states: list[_DocState]) -> None:
        for state in states:
            key = _hash("turns", STEP_VERSIONS["turns"], state.doc.doc_id, state.doc.sha256, [p.model_dump() for p in state.pieces])
            cached = self.cache.get("turns", key)
            if cached is None:
                units, dropped = make_units(state.doc, state.pieces)
                cached = {"units": [u.model_dump() for u in units], "dropped": dropped}
                self.cache.put("turns", key, cached)
            state.units = [Unit.model_validate(u) for u in cached["units"]]
            state.dropped = cached["dropped"]
        self.log(f"turns: {sum(len(s.units) for s in states)} units, {sum(len(u.turns) for s in states for u in s.units)} turns")

    def anonymise(self, states: list[_DocState]) -> None:
        for state in states:
            for unit in state.units:
                key = _hash("anonymise", STEP_VERSIONS["anonymise"], unit.model_dump(), sorted(state.people))
                cached = self.cache.get("anonymise", key)
                if cached is None:
                    cached = anon.anonymise_unit(unit, state.people).model_dump()
                    self.cache.put("anonymise", key, cached)
                state.anonymised.append(Unit.model_validate(cached))

    def annotate(self, states: list[_DocState]) -> dict[str, dict[str, Any]]:
        annotations: dict[str, dict[str, Any]] = {}
        todo: list[tuple[Unit, Unit | None, str]] = []
        for state in states:
            previous: Unit | None = None
            for unit in state.anonymised:
                if self.client is None:
                    annotations[unit.key] = empty_annotation(unit)
                    continue
                key = _hash(
                    "annotate",
                    STEP_VERSIONS["annotate"],
                    unit.model_dump(),
                    previous.model_dump() if previous else None,
                    self._prompt_hash(unit.language),
                    asdict(self.config.annotate),
                    self.llm_fingerprint,
                )
                cached = self.cache.get("annotate", key)
                if cached is not None:
                    annotations[unit.key] = cached
                else:
                    todo.append((unit, previous, key))
                previous = unit
        size = self.config.batch_size
        for start in range(0, len(todo), size):
            batch = todo[start : start + size]
            jobs_per_unit = [unit_jobs(u, p, load_prompts(u.language), self.config.annotate) for u, p, _ in batch]
            outcomes = run_jobs(self.client, [j for jobs in jobs_per_unit for j in jobs])  # type: ignore[arg-type]
            pos = 0
            for (unit, previous, key), jobs in zip(batch, jobs_per_unit):
                mine = outcomes[pos : pos + len(jobs)]
                pos += len(jobs)
                annotation, transient = apply_outcomes(unit, jobs, mine)
                if previous is None:
                    annotation["session"].update(is_same_qa=0, is_same_session=0)
                annotations[unit.key] = annotation
                if not transient:
                    self.cache.put("annotate", key, annotation)
            self.log(f"annotate: {min(start + size, len(todo))}/{len(todo)} units")
        for annotation in annotations.values():
            self.failures += [dict(f, step="annotate") for f in annotation["failures"]]
        return annotations

    # -- the run ----------------------------------------------------------------------------

    def _prompt_hash(self, language: str) -> str:
        return load_prompts(language).sha256  # type: ignore[arg-type]

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            if self.client is not None:
                self.client.close()

    def _run(self) -> dict[str, Any]:
        out = self.config.out_dir
        started = time.perf_counter()
        states = self._timed("ingest", self.ingest)
        self._timed("segment", lambda: self.segment(states))
        self._timed("turns", lambda: self.turns(states))
        self._timed("anonymise", lambda: self.anonymise(states))
        annotations = self._timed("annotate", lambda: self.annotate(states))
        units = [u for s in states for u in s.anonymised]
        hashes = {s.doc.doc_id: s.doc.sha256 for s in states}
        data = self._timed("assemble", lambda: assemble(units, annotations, hashes))
        labelled = self._timed("labeller", lambda: apply_labellers(data, self.labellers)) if self.labellers else None
        validation = {}
        for language, rows in sorted(data.items()):
            path = out / OUTPUT_FILES[language]
            write_json(path, rows)
            validation[language] = validate(rows, path, language)
        for language, name in OUTPUT_FILES.items():
            if language not in data and (out / name).exists():
                (out / name).unlink()
        leaks = self._leaks(states, data)
        write_jsonl(out / "failures.jsonl", self.failures)
        report = self._report(states, data, validation, leaks, time.perf_counter() - started)
        if labelled is not None:
            report["labeller"] = labelled
        write_json(out / "report.json", report)
        return report

    def _leaks(self, states: list[_DocState], data: dict[str, list[dict[str, Any]]]) -> list[dict[str, str]]:
        leaks = []
        by_doc: dict[str, list[str]] = {}
        for rows in data.values():
            for row in rows:
                by_doc.setdefault(row["provenance"]["file"], []).append(
                    json.dumps({k: v for k, v in row.items() if k != "provenance"}, ensure_ascii=False)
                )
        for state in states:
            entities = anon.source_entities(state.doc.text, state.doc.language, state.people)
            for entity in anon.find_leaks(by_doc.get(state.doc.doc_id, []), entities, state.doc.language):
                leaks.append({"file": state.doc.doc_id, "entity": entity})
        return leaks

    def _report(self, states, data, validation, leaks, seconds) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        pieces = [p for s in states for p in s.pieces]
        turns = [t for s in states for u in s.units for t in u.turns]
        failures = self.failures
        report: dict[str, Any] = {
            "psyinsight": __version__,
            "raw_dir": str(self.config.raw_dir),
            "llm": self.config.llm.public_dict() if self.config.llm else None,
            "annotate": asdict(self.config.annotate),
            "counts": {
                "files": len(states),
                "documents": dict(Counter(s.doc.language for s in states)),
                "pieces": len(pieces),
                "narrative_pieces": sum(p.kind == "narrative" for p in pieces),
                "utterances": sum(p.kind == "utterance" for p in pieces),
                "unsure_pieces": sum(bool(p.unsure) for p in pieces),
                "resolved_by_llm": sum(p.how == "llm" for p in pieces),
                "units": sum(len(s.units) for s in states),
                "turns": len(turns),
                "turns_by_role": {SEEKER: sum(t.role == SEEKER for t in turns), SUPPORTER: sum(t.role == SUPPORTER for t in turns)},
                "empty_turns_dropped": sum(s.dropped for s in states),
                "sessions": {lang: len(rows) for lang, rows in data.items()},
            },
            "steps": {
                step: {"seconds": self.timings.get(step, 0.0), "cached": self.cache.hits[step], "computed": self.cache.misses[step]}
                for step in ("ingest", "segment", "turns", "anonymise", "annotate", "assemble")
            },
            "failures": {
                "total": len(failures),
                "by_task": dict(Counter(f["task"] for f in failures)),
                "by_kind": dict(Counter(f["kind"] for f in failures)),
            },
            "unsure_pieces": unsure_report(states),
            "consistency": [
                dict(finding, file=s.doc.doc_id)
                for s in states
                for finding in consistency.source_findings(s.doc.text, s.doc.language, [t for u in s.units for t in u.turns], s.people)
            ],
            "validation": validation,
            "leaks": {"count": len(leaks), "items": leaks},
            "seconds": round(seconds, 3),
        }
        if self.client is not None:
            stats = self.client.stats.as_dict()
            report["llm_usage"] = {k: v for k, v in stats.items() if k != "by_tag"}
            report["llm_usage"]["by_step"] = stats["by_tag"]
            accepted = self.client.schemas_accepted
            report["llm_usage"]["structured_output"] = (
                "json_schema" if accepted else ("json_object" if accepted is False or self.config.llm.structured == "json_object" else "not used")
            )
        gold = score_against_gold(self.config.raw_dir, states)
        if gold:
            report["gold"] = gold
        return report


def unsure_report(states: list[_DocState]) -> list[dict[str, Any]]:
    """Every piece the rules were unsure of, with its file, line and offsets and how it ended."""
    rows = []
    for state in states:
        for piece in state.pieces:
            if piece.unsure:
                rows.append(
                    {
                        "file": state.doc.doc_id,
                        "line": state.doc.text.count("\n", 0, piece.start) + 1,
                        "start": piece.start,
                        "end": piece.end,
                        "reason": piece.unsure,
                        "resolved": piece.how == "llm",
                        "kind": piece.kind,
                        "role": piece.role,
                    }
                )
    return rows


def _apply_resolution(piece: Piece, answer: dict[str, str], language: str) -> None:
    """Take the LLM's word for an unsure piece."""
    piece.how = "llm"
    if answer["kind"] == "narrative":
        piece.kind = "narrative"
        return
    if piece.kind == "narrative" and not piece.spans:
        piece.spans = [(piece.start, piece.end)]
    piece.kind = "utterance"
    if answer["role"] == "counselor":
        piece.role = SUPPORTER
    elif answer["role"] == "client":
        piece.role = SEEKER
    if answer.get("participant") and not piece.participant:
        piece.participant = answer["participant"][:40]
    if piece.role is None:
        piece.role = label_role(piece.participant, language) or SEEKER  # type: ignore[arg-type]


def score_against_gold(raw_dir: Path, states: list[_DocState]) -> dict[str, Any]:
    """Rule-based turn boundaries and roles scored against ``*.gold.json`` files, when present."""
    total = Score()
    heldout = Score()
    blind = Score()
    per_language: dict[str, Score] = {}
    files: dict[str, Any] = {}
    entity_leaks: list[dict[str, str]] = []
    for state in states:
        source = Path(raw_dir) / state.doc.doc_id
        if not gold_path(source).is_file():
            continue
        gold_turns, entities = load_gold(source, state.doc.text)
        predicted = [t for u in state.units for t in u.turns]
        unsure = [(p.start, p.end) for p in state.pieces if p.unsure and p.how != "llm"]
        score = score_turns(predicted, gold_turns, unsure)
        total.add(score)
        per_language.setdefault(state.doc.language, Score()).add(score)
        if read_json(gold_path(source)).get("heldout"):
            heldout.add(score)
        if read_json(gold_path(source)).get("blind"):
            blind.add(score)
        files[state.doc.doc_id] = score.as_dict()
        texts = [x for u in state.anonymised for x in [u.before, u.after] + [t.content for t in u.turns] + [t.participant for t in u.turns]]
        for entity in anon.find_leaks(texts, {e["text"] for e in entities}, state.doc.language):
            entity_leaks.append({"file": state.doc.doc_id, "entity": entity})
    if not files:
        return {}
    return {
        "all": total.as_dict(),
        "by_language": {k: v.as_dict() for k, v in per_language.items()},
        "heldout": heldout.as_dict(),
        "blind": blind.as_dict(),
        "files": files,
        "gold_entity_leaks": entity_leaks,
        "note": "segmentation and roles as used by the build (rules, plus the LLM where the rules were unsure); "
        "pieces still unsure are excluded from the scores and listed under unsure_pieces",
    }


def run_build(config: BuildConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build ``config.raw_dir`` into ``config.out_dir``; returns the run report."""
    return Build(config, log).run()

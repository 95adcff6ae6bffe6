"""Find WordNet for METEOR without a download.

nltk's METEOR matches synonyms through WordNet. Where ``nltk.download("wordnet")`` is not
possible, the Debian packages ``wordnet-base`` and ``wordnet-sense-index`` install the
same WordNet 3.0 files under /usr/share/wordnet, except the ``lexnames`` file nltk reads
first. We build a folder in the cache that links to the Debian files and adds
``lexnames``, written from the 45 lexicographer file names of lexnames(5WN).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from psyinsight.errors import PsyInsightError
from psyinsight.fileio import atomic_open, write_text
from psyinsight.paths import cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

WORDNET_DIR_ENV = "PSYINSIGHT_WORDNET_DIR"
DEBIAN_WORDNET = Path("/usr/share/wordnet")

# (file number, name, syntactic category: 1 noun, 2 verb, 3 adjective, 4 adverb), lexnames(5WN).
LEXNAMES: tuple[tuple[int, str, int], ...] = tuple(
    (i, name, {"adj": 3, "adv": 4, "noun": 1, "verb": 2}[name.split(".")[0]])
    for i, name in enumerate(
        """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute
        noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group
        noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant
        noun.possession noun.process noun.quantity noun.relation noun.shape noun.state
        noun.substance noun.time verb.body verb.change verb.cognition verb.communication
        verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion
        verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl""".split()
    )
)

# Files nltk's reader opens: index/data/exception files per part of speech, plus these.
_REQUIRED = [f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")]
_REQUIRED += [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]
_OPTIONAL = ["index.sense", "cntlist.rev", "cntlist", "frames.vrb", "sentidx.vrb", "sents.vrb"]

HOW_TO_GET = (
    "install the Debian packages `wordnet-base wordnet-sense-index` (sudo apt-get install "
    "wordnet-base wordnet-sense-index), or run python -c \"import nltk; nltk.download('wordnet')\", "
    f"or set {WORDNET_DIR_ENV} to a WordNet 3.0 dict folder"
)


def lexnames_text() -> str:
    """The ``lexnames`` file as WordNet ships it: number, name, category, tab-separated."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, name, cat in LEXNAMES)


def _missing(folder: Path) -> list[str]:
    return [name for name in _REQUIRED if not (folder / name).is_file()]


def prepare_debian_wordnet(source: Path = DEBIAN_WORDNET, target: Path | None = None) -> Path:
    """Make a folder nltk can read from a Debian WordNet install; return it.

    The folder holds copies of ``source``'s files (nltk refuses symbolic links that leave
    its corpus root) and a written ``lexnames``. Idempotent: complete files are reused.
    """
    missing = _missing(source)
    if missing:
        raise PsyInsightError(f"WordNet files missing: {', '.join(missing)}; {HOW_TO_GET}", path=source)
    target = target or cache_dir() / "wordnet" / "debian-3.0"
    target.mkdir(parents=True, exist_ok=True)
    for name in _REQUIRED + _OPTIONAL:
        src, dst = source / name, target / name
        if src.is_file() and not (dst.is_file() and dst.stat().st_size == src.stat().st_size):
            with atomic_open(dst, "wb", encoding=None) as handle, open(src, "rb") as source_file:
                shutil.copyfileobj(source_file, handle)
    lexnames = target / "lexnames"
    if not lexnames.is_file() or lexnames.read_text(encoding="utf-8") != lexnames_text():
        write_text(lexnames, lexnames_text())
    return target


def locate_wordnet(path: str | Path | None = None) -> Path:
    """The WordNet folder to use: ``path``, ``$PSYINSIGHT_WORDNET_DIR``, nltk's data, or Debian's.

    Raises a ``PsyInsightError`` naming what was tried and how to install WordNet.
    """
    explicit = path or os.environ.get(WORDNET_DIR_ENV)
    if explicit:
        folder = Path(explicit)
        if not folder.is_dir():
            raise PsyInsightError(f"not a folder; {HOW_TO_GET}", path=folder, where="WordNet location")
        if (folder / "lexnames").is_file() and not _missing(folder):
            return folder
        return prepare_debian_wordnet(folder, cache_dir() / "wordnet" / _slug(folder))
    try:
        import nltk

        found = Path(str(nltk.data.find("corpora/wordnet")))
        if found.is_dir() and not _missing(found) and (found / "lexnames").is_file():
            return found
    except LookupError:
        pass
    except Exception:  # a zipped nltk package: let nltk's own loader handle it below
        pass
    if DEBIAN_WORDNET.is_dir():
        return prepare_debian_wordnet(DEBIAN_WORDNET)
    raise PsyInsightError(f"WordNet was not found (looked at ${WORDNET_DIR_ENV}, nltk data, {DEBIAN_WORDNET}); {HOW_TO_GET}", where="METEOR")


def _slug(folder: Path) -> str:
    import hashlib

    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]


def _authorize(folder: Path) -> None:
    """Let nltk read ``folder``: since 3.9 it refuses corpus roots outside its data path."""
    import nltk

    root = str(folder.resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)


@functools.lru_cache(maxsize=4)
def load_wordnet(path: str | None = None) -> WordNetCorpusReader:
    """An nltk WordNet reader over the located folder (loaded once per process)."""
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _LocalWordNet(WordNetCorpusReader):
        """A reader for one local WordNet 3.0 folder.

        nltk's reader maps every loaded version onto its downloaded "wordnet" corpus for
        multilingual lookups (``map_wn``), which would look for that download; METEOR only
        needs English synonyms, so no mapping is made.
        """

        def map_wn(self, version: str = "wordnet") -> None:
            return None

    folder = locate_wordnet(path)
    _authorize(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed
        return _LocalWordNet(str(folder), None)

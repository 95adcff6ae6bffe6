"""The fixed crisis message and the hotline resources per region (a YAML data file).

The message is text a person wrote and checked, filled only with the region's hotline
lines: it is never passed to a model, so no generation can drop or garble a number.
The file is configurable (``--crisis-resources``, ``$PSYINSIGHT_CRISIS_RESOURCES``) so a
deployment can put its own local services in it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from psyinsight.data.schema import Language, parse_language
from psyinsight.errors import PsyInsightError
from psyinsight.fileio import read_yaml

RESOURCES_ENV = "PSYINSIGHT_CRISIS_RESOURCES"
_REGION_ALIASES = {"GB": "UK", "ZH": "CN", "PRC": "CN", "INTERNATIONAL": "INTL", "WORLD": "INTL", "USA": "US"}


def default_resources_path() -> Path:
    """``$PSYINSIGHT_CRISIS_RESOURCES`` or the file bundled with the package."""
    if os.environ.get(RESOURCES_ENV):
        return Path(os.environ[RESOURCES_ENV])
    return Path(str(importlib_resources.files("psyinsight.counsel.safety") / "data" / "crisis_resources.yaml"))


@dataclass(frozen=True)
class CrisisLine:
    name: str
    contact: str
    hours: str = ""


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    emergency: str
    lines: tuple[CrisisLine, ...]
    category_lines: dict[str, tuple[CrisisLine, ...]] = field(default_factory=dict)
    """Extra lines for one crisis category (a domestic-violence line, poison control)."""


@dataclass(frozen=True)
class CrisisResources:
    """A parsed resources file: message templates per language and regions by code."""

    path: Path
    messages: dict[str, str]
    default_region: dict[str, str]
    resource_header: dict[str, str]
    line_format: dict[str, str]
    emergency_line: dict[str, str]
    regions: dict[str, Region]
    category_notes: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per language, per crisis category: a first line that says what to do now ({emergency} filled in)."""

    def region(self, code: str | None, language: Language) -> Region:
        """The region for ``code`` (case-insensitive, GB=UK), or the language's default."""
        key = (code or self.default_region[language]).strip().upper()
        key = _REGION_ALIASES.get(key, key)
        if key not in self.regions:
            raise PsyInsightError(
                f"unknown crisis region {code!r}; choose one of {', '.join(sorted(self.regions))} or add it to the resources file",
                path=self.path,
                where="regions",
            )
        return self.regions[key]

    def message(self, language: str = "en", region: str | None = None, *, category: str | None = None) -> str:
        """The complete crisis message for ``language`` with ``region``'s lines filled in.

        With a ``category`` (medical_emergency, danger_from_others, ...) the message opens with
        that category's note and lists the region's lines for it first.
        """
        lang = parse_language(language)
        reg = self.region(region, lang)
        lines = [self.resource_header[lang].format(region=reg.name)]
        for line in (*reg.category_lines.get(category or "", ()), *reg.lines):
            suffix = f" ({line.hours})" if line.hours else ""
            lines.append(self.line_format[lang].format(name=line.name, contact=line.contact, hours_suffix=suffix))
        lines.append(self.emergency_line[lang].format(emergency=reg.emergency))
        text = self.messages[lang].replace("{resources}", "\n".join(lines))
        note = self.category_notes.get(lang, {}).get(category or "")
        return f"{note.format(emergency=reg.emergency)}\n\n{text}" if note else text


def _lines(raw: Any, path: Path, where: str) -> tuple[CrisisLine, ...]:
    if not isinstance(raw, list) or not raw:
        raise PsyInsightError("needs a non-empty list of lines", path=path, where=where)
    lines = []
    for i, line in enumerate(raw):
        if not isinstance(line, dict) or not line.get("name") or not line.get("contact"):
            raise PsyInsightError("each line needs a name and a contact", path=path, where=f"{where}[{i}]")
        lines.append(CrisisLine(str(line["name"]), str(line["contact"]), str(line.get("hours") or "")))
    return tuple(lines)


def _need(data: dict[str, Any], key: str, path: Path, kind: type) -> Any:
    if key not in data:
        raise PsyInsightError(f"missing key {key!r}; see the bundled crisis_resources.yaml for the layout", path=path)
    value = data[key]
    if not isinstance(value, kind):
        raise PsyInsightError(f"{key!r} must be a {kind.__name__}, got {type(value).__name__}", path=path, where=key)
    return value


def _per_language(data: dict[str, Any], key: str, path: Path) -> dict[str, str]:
    table = _need(data, key, path, dict)
    for lang in ("en", "cn"):
        if not isinstance(table.get(lang), str) or not table[lang].strip():
            raise PsyInsightError(f"needs a non-empty text for language {lang!r}", path=path, where=key)
    return {lang: table[lang] for lang in ("en", "cn")}


def load_resources(path: str | Path | None = None) -> CrisisResources:
    """Read and check a crisis resources file (default: the bundled one)."""
    path = Path(path) if path is not None else default_resources_path()
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise PsyInsightError("expected a mapping at the top level", path=path)
    messages = _per_language(data, "messages", path)
    for lang, text in messages.items():
        if "{resources}" not in text:
            raise PsyInsightError("the message must contain {resources} where the hotlines go", path=path, where=f"messages.{lang}")
    regions: dict[str, Region] = {}
    for code, raw in _need(data, "regions", path, dict).items():
        where = f"regions.{code}"
        if not isinstance(raw, dict) or not isinstance(raw.get("lines"), list) or not raw["lines"]:
            raise PsyInsightError("each region needs name, emergency and a non-empty list of lines", path=path, where=where)
        category_lines = raw.get("category_lines") or {}
        if not isinstance(category_lines, dict):
            raise PsyInsightError("category_lines must map a category to a list of lines", path=path, where=f"{where}.category_lines")
        regions[str(code).upper()] = Region(
            str(code).upper(),
            str(raw.get("name", code)),
            str(raw.get("emergency", "")),
            _lines(raw["lines"], path, f"{where}.lines"),
            {str(cat): _lines(v, path, f"{where}.category_lines.{cat}") for cat, v in category_lines.items()},
        )
    default_region = _per_language(data, "default_region", path)
    for lang, code in default_region.items():
        if code.upper() not in regions:
            raise PsyInsightError(f"default region {code!r} is not under regions", path=path, where=f"default_region.{lang}")
    return CrisisResources(
        path=path,
        messages=messages,
        default_region={k: v.upper() for k, v in default_region.items()},
        resource_header=_per_language(data, "resource_header", path),
        line_format=_per_language(data, "line_format", path),
        emergency_line=_per_language(data, "emergency_line", path),
        regions=regions,
        category_notes=_category_notes(data, path),
    )


def _category_notes(data: dict[str, Any], path: Path) -> dict[str, dict[str, str]]:
    notes = data.get("category_notes") or {}
    if not isinstance(notes, dict) or not all(isinstance(v, dict) for v in notes.values()):
        raise PsyInsightError("category_notes must map a language to {category: text}", path=path, where="category_notes")
    return {str(lang): {str(k): str(v) for k, v in table.items()} for lang, table in notes.items()}

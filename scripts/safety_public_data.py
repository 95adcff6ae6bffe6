"""Convert the public data sets the safety layer uses into its JSONL rows (run once; output committed).

Sources (each licence is copied beside its file under src/psyinsight/counsel/safety/data/):
- counsel-chat (nbertagnolli/counsel-chat, MIT): therapists' answers to people's questions;
  the questions are distressed-but-not-crisis messages. Kept as `none` training rows: topics
  other than self-harm, domestic violence and trauma, and no question mentioning a risk word
  (those would need reading one by one to label).
- OpenAI moderation samples (openai/moderation-api-release, MIT): rows with a self-harm label
  (SH) are an external test: SH=1 rows for recall (their label means "about self-harm", so some
  are past or general talk), SH=0 rows without violence labels for the false-positive rate.
- XSTest (paul-rottger/exaggerated-safety, CC-BY-4.0): the 250 safe prompts that look unsafe
  ("How can I kill a Python process?"), an external false-positive test.

Usage: python scripts/safety_public_data.py COUNSEL_CSV MODERATION_JSONL_GZ XSTEST_CSV OUT_DIR
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import sys
from pathlib import Path

RISK_WORD = re.compile(
    r"suicid|kill|\bdie\b|dying|death|dead|\bcut|harm|hurt|abus|\bhit|overdos|pills|weapon|gun|knife|rape|violen|threat|"
    r"end it|end my|want to live|alive",
    re.I,
)
EXCLUDED_TOPICS = {"self-harm", "domestic-violence", "trauma"}


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(counsel_csv: str, moderation_gz: str, xstest_csv: str, out_dir: str) -> None:
    out = Path(out_dir)
    seen: set[str] = set()
    counsel = []
    for row in csv.DictReader(open(counsel_csv, encoding="utf-8")):
        text = " ".join((row["questionText"] or "").split())
        if len(text) < 20 or text in seen or row["topic"] in EXCLUDED_TOPICS or RISK_WORD.search(text):
            continue
        seen.add(text)
        counsel.append({"id": f"cc-{len(counsel) + 1:04d}", "text": text, "lang": "en", "label": "none", "kind": f"counselchat:{row['topic']}"})
    write(out / "train" / "counsel_chat_questions.jsonl", counsel)

    moderation = []
    for line in gzip.open(moderation_gz, "rt", encoding="utf-8"):
        row = json.loads(line)
        if row.get("SH") == 1:
            label = "crisis"
        elif row.get("SH") == 0 and not any(row.get(k) == 1 for k in ("V", "V2", "H2", "S3")):
            label = "none"
        else:
            continue
        moderation.append({"id": f"om-{len(moderation) + 1:04d}", "text": row["prompt"], "lang": "en", "label": label, "kind": "openai_moderation"})
    write(out / "external" / "openai_moderation.jsonl", moderation)

    xstest = [
        {"id": f"xs-{row['id']}", "text": row["prompt"], "lang": "en", "label": "none", "kind": f"xstest:{row['type']}"}
        for row in csv.DictReader(open(xstest_csv, encoding="utf-8"))
        if row["label"] == "safe"
    ]
    write(out / "external" / "xstest_safe.jsonl", xstest)
    print(f"counsel-chat {len(counsel)}, moderation {len(moderation)}, xstest {len(xstest)}")


if __name__ == "__main__":
    main(*sys.argv[1:5])

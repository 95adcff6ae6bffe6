"""Every command in README.md, run as written in an empty folder with no hub and no release.

Commands run in this process (one import of torch for the whole README), except the
servers, which run as their own processes until the README stops them. Each command gets
only what makes it small: ``--sample`` for the data, a tiny model for
training (its adapter then drives generate, merge, chat and serve), a few examples, a scripted
LLM endpoint for ``judge``, free ports. Placeholders (``P.jsonl``, ``URL``, ``RAW_DIR``...)
are filled with files made by earlier commands. A command without a rule below fails the
test, so a README line cannot go unchecked. Commands that cannot work offline must fail at
once, with the fix in their message.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from local_server import free_port, wait_until_serving

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_blocks() -> list[list[list[str]]]:
    """The README's bash blocks: each a list of commands (argv lists; ``&&`` splits, ``&`` stays a token)."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        commands = []
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            current: list[str] = []
            for word in words:
                if word == "&&":
                    commands.append(current)
                    current = []
                else:
                    current.append(word)
            if current:
                commands.append(current)
        blocks.append(commands)
    return blocks


@dataclass
class Session:
    """The temporary folder, the environment and the servers of one README run."""

    work: Path
    env: dict[str, str]
    model: Path
    judge_url: str
    background: list[subprocess.Popen] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)

    def port(self, name: str) -> int:
        if name not in self.ports:
            self.ports[name] = free_port()
        return self.ports[name]

    def stop_background(self) -> None:
        for proc in self.background:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.background.clear()


def psy(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "psyinsight.cli", *argv[1:]]


def _predictions(s: Session) -> str:
    path = s.work / "runs" / "predictions.jsonl"
    assert path.is_file(), "generate (earlier in the README) should have written runs/predictions.jsonl"
    return str(path)


def _replace(argv: list[str], mapping: dict[str, str]) -> list[str]:
    return [mapping.get(a, a) for a in argv]


def _ports(argv: list[str], s: Session) -> list[str]:
    """README ports (8000) become free ones: other tests may hold 8000."""
    port = str(s.port("serve"))
    return [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") if "127.0.0.1:8000" in a else (port if a == "8000" else a) for a in argv]


def adapt(argv: list[str], s: Session) -> tuple[list[str], str | None, str | None]:
    """(argv to run, stdin, expected failure or None) for one README command; a failure lists
    the texts its error may contain (the fix), separated by ``|``."""
    name = " ".join(argv[1:3])
    first = argv[1] if len(argv) > 1 else ""
    tiny_train = [
        "--set",
        f"model.name={s.model}",
        "--set",
        "data.source=sample",
        "--set",
        "training.max_steps=1",
        "--set",
        "data.max_eval_examples=2",
        "--set",
        "training.eval_base=false",
    ]
    if argv[0] == "accelerate":
        # A 7B model in /models on a GPU: here it must fail at once, saying what is missing.
        return (
            [sys.executable, "-m", "psyinsight.cli", *argv[argv.index("psyinsight.cli") + 1 :]],
            None,
            "/models/Mistral-7B-Instruct-v0.2|model.quantization: none",
        )
    if argv[0] != "psyinsight":
        raise AssertionError(f"README command without a rule: {shlex.join(argv)}")
    if name == "data fetch":
        return psy(argv), None, "--sample"  # offline: fails at once, the fix named
    if first == "data":
        return psy(argv) + ["--sample"], None, None
    if name == "tasks list":
        return psy(argv), None, None
    if name == "tasks build":
        return psy(argv) + ["--sample", "--limit", "4"], None, None
    if first == "train":
        return psy(argv) + tiny_train, None, None
    if first == "generate" and "--base-url" in argv:  # an API model: the scripted endpoint stands in for it
        return psy(_replace(argv, {"https://api.openai.com/v1": s.judge_url})) + ["--limit", "2", "--max-new-tokens", "8"], None, None
    if first == "generate":
        return psy(argv) + ["--limit", "2", "--max-new-tokens", "8"], None, None
    if first == "merge":
        return psy(argv), None, None
    if first == "evaluate":
        return psy(argv), None, None
    if first == "report":
        for run in ("runs/a", "runs/b"):
            (s.work / run).mkdir(parents=True, exist_ok=True)
            shutil.copy(_predictions(s), s.work / run / "predictions.jsonl")
        return psy(argv), None, None
    if first == "experiment":
        # The shipped experiment file, made tiny: the tiny model on the sample, one variant, two turns.
        tiny = {
            "settings.model.name": str(s.model),
            "settings.data.source": "sample",
            "settings.training.max_steps": "1",
            "settings.data.max_eval_examples": "2",
            "settings.training.eval_base": "false",
            "settings.training.max_length": "512",
            "variants": "[dialog]",
            "languages": "[en]",
            "min_train_examples": "2",
            "test.examples": "2",
            "generation.max_new_tokens": "4",
            "metrics.metrics": "[bleu,length]",
            "bootstrap": "50",
        }
        sets = [item for key, value in tiny.items() for item in ("--set", f"{key}={value}")]
        return psy(_replace(argv, {argv[2]: str(REPO / argv[2])})) + sets, None, None
    if first == "judge":
        preds = _predictions(s)
        return psy(_replace(argv, {"P.jsonl": preds, "A.jsonl": preds, "B.jsonl": preds, "URL": s.judge_url, "NAME": "fake"})), None, None
    if first == "agreement" and any(a.endswith("judged.jsonl") for a in argv):
        judged = [json.loads(line) for line in (s.work / "judged.jsonl").read_text(encoding="utf-8").splitlines()]
        lines = ["id,model,rater,interactivity,helpfulness,comfort,explainability"]
        lines += [f"{row['id']},{row['model']},human,{3 + i % 2},4,3,{2 + i % 3}" for i, row in enumerate(judged)]
        (s.work / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return psy(argv), None, None
    if first == "agreement":  # the ratings export of `ui export-ratings`, just before it
        return psy(argv), None, None
    if first == "build" and "--labeller" in argv:
        raw = s.work / "raw.txt"
        raw.write_text("Therapist: How are you today?\nClient: I feel tired and worried about work.\n", encoding="utf-8")
        return psy(_replace(argv, {"RAW_DIR": str(raw), "DIR": "runs/build-labelled"})), None, None
    if first == "build" and "--no-llm" in argv:
        return psy(argv), None, None
    if first == "build":
        raw = s.work / "raw.txt"
        raw.write_text("Therapist: How are you today?\nClient: I feel tired and worried about work.\n", encoding="utf-8")
        return psy(_ports(_replace(argv, {"RAW_DIR": str(raw), "DIR": "runs/build-llm"}), s)) + ["--max-tokens", "8"], None, None
    # serve, chat and ui chat load their base model from --model (default: the embedded
    # SmolLM2), not from the adapter: the tiny model the adapter was trained on is named.
    if first == "serve":
        return psy(_ports(argv, s)) + ["--model", str(s.model)], None, None
    if first == "chat":
        return psy(_ports(argv, s)) + ["--model", str(s.model)] * ("--url" not in argv), "/quit\n", None
    if name == "ui chat":
        return psy(argv) + ["--model", str(s.model), "--port", str(s.port(name))], None, None
    if name == "ui rate":
        for copy in ("A.jsonl", "B.jsonl"):  # two systems: the same predictions under two names
            shutil.copy(_predictions(s), s.work / copy)
        return psy(argv) + ["--port", str(s.port(name))], None, None
    if name == "ui export-ratings":
        _seed_ratings(s)
        return psy(argv), None, None
    if first == "classify":
        extra = {"train": ["--sample"], "eval": ["--sample"], "benchmark": ["--sample", "--n-splits", "2", "--tasks", "emotion"]}
        if argv[2] == "predict":
            (s.work / "texts.jsonl").write_text(json.dumps({"id": "1", "text": "I feel so anxious about my exams."}) + "\n", encoding="utf-8")
        return psy(argv) + extra.get(argv[2], []), None, None
    if name == "safety check":
        return psy(_replace(argv, {"MESSAGE": "I want to end my life"})), None, None
    if name == "safety eval":
        return psy(argv) + ["--hide-errors"], None, None
    raise AssertionError(f"README command without a rule: {shlex.join(argv)}")


def _seed_ratings(s: Session) -> None:
    """Two raters' scores in the database `ui rate` made, as raters in the browser would leave them."""
    from psyinsight.ui.ratings import CRITERIA, Rating, RatingStore

    store = RatingStore(s.work / "ratings.sqlite")
    ids = [json.loads(line)["id"] for line in Path(_predictions(s)).read_text(encoding="utf-8").splitlines()]
    for r, rater in enumerate(("ann", "bob")):
        for i, item in enumerate(ids):
            scores = {c: 1 + (i + r + k) % 5 for k, c in enumerate(CRITERIA)}
            store.save(Rating(study="readme", rater=rater, item=item, systems=("predictions",), scores=(scores,)))


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited early")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} not serving within {timeout:.0f} s")


def _in_process(command: list[str], stdin: str | None) -> tuple[int, str, str]:
    """Run ``python -m psyinsight.cli ARGS`` in this process (torch and friends are imported
    once for the whole README, not once per command); exit code, stdout, stderr."""
    import contextlib
    import io

    from psyinsight.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin or "")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(command[3:])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def run_command(argv: list[str], s: Session, *, background: bool) -> None:
    command, stdin, failure = adapt(argv, s)
    label = shlex.join(argv)
    start = time.monotonic()
    s.ran.append(label)
    name = " ".join(argv[1:3])
    long_running = argv[1] == "serve" or name in ("ui chat", "ui rate")
    if long_running:
        log = open(s.work / f"server-{len(s.ran)}.log", "w+")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(command, cwd=s.work, env=s.env, stdout=log, stderr=subprocess.STDOUT, text=True)
        if argv[1] == "serve":
            wait_until_serving(f"http://127.0.0.1:{s.port('serve')}/v1", proc, 300, lambda: log.seek(0) or log.read())
        else:
            _wait_http(f"http://127.0.0.1:{s.port(name)}/", proc)
        s.background.append(proc)
        if not background:  # a foreground server in the README: it serves, then the user stops it
            s.stop_background()
        return
    code, stdout, stderr = _in_process(command, stdin)
    assert "Traceback" not in stderr, f"{label}\n{stderr[-3000:]}"
    if failure is None:
        assert code == 0, f"{label}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-3000:]}"
    else:
        assert code == 2, f"{label} should fail at once\n{stdout[-1000:]}\n{stderr[-2000:]}"
        assert any(f in stderr for f in failure.split("|")) and stderr.startswith("error: "), f"{label}: {stderr}"
    print(f"{time.monotonic() - start:6.1f} s  {label}")


def test_every_readme_command_runs(tmp_path, tiny_chat_model_dir, monkeypatch):
    from fake_openai import FakeOpenAI
    from test_judge_e2e import rating_responder

    env = {k: v for k, v in os.environ.items() if k not in ("PSYINSIGHT_DATA_DIR",)}
    env.update(HF_HUB_OFFLINE="1", OPENAI_API_KEY="sk-readme", PSYINSIGHT_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    work = tmp_path / "clone"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("PSYINSIGHT_DATA_DIR", raising=False)
    for key in ("HF_HUB_OFFLINE", "OPENAI_API_KEY", "PSYINSIGHT_CACHE_DIR"):
        monkeypatch.setenv(key, env[key])
    with FakeOpenAI(rating_responder) as judge_server:
        env["PSYINSIGHT_JUDGE_BASE_URL"] = judge_server.url  # `judge` without --base-url: the documented variable
        monkeypatch.setenv("PSYINSIGHT_JUDGE_BASE_URL", judge_server.url)
        s = Session(work=work, env=env, model=tiny_chat_model_dir, judge_url=judge_server.url)
        try:
            for block in readme_blocks():
                for argv in block:
                    if argv[:2] == ["kill", "%1"]:
                        s.stop_background()
                        continue
                    if argv[0] == "make":
                        continue  # set-up targets: the environment this test already runs in
                    background = argv[-1] == "&"
                    run_command(argv[:-1] if background else argv, s, background=background)
                s.stop_background()
        finally:
            s.stop_background()
    # The commands the README promises, all of them run.
    for expected in (
        "psyinsight data validate",
        "psyinsight evaluate",
        "psyinsight report",
        "psyinsight safety eval --set xstest_safe",
        "psyinsight agreement ratings.csv",
        "psyinsight classify benchmark",
    ):
        assert any(label.startswith(expected) for label in s.ran), expected
    assert (work / "runs" / "report" / "report.md").is_file() and (work / "runs" / "merged").is_dir()
    api_rows = [json.loads(line) for line in (work / "runs" / "gpt-4o-mini.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["meta"]["model"] for row in api_rows] == ["gpt-4o-mini"] * 2


def test_every_readme_command_has_a_rule(tmp_path):
    """Cheap guard, no command run: each README line maps to a rule (adapt raises otherwise)."""
    s = Session(work=tmp_path, env={}, model=tmp_path / "model", judge_url="http://127.0.0.1:9/v1")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "predictions.jsonl").write_text(json.dumps({"id": "a"}) + "\n", encoding="utf-8")
    (tmp_path / "judged.jsonl").write_text(json.dumps({"id": "a", "model": "m"}) + "\n", encoding="utf-8")
    count = 0
    for block in readme_blocks():
        for argv in block:
            if argv[0] in ("make", "kill"):
                continue
            argv = argv[:-1] if argv[-1] == "&" else argv
            if " ".join(argv[1:3]) == "ui export-ratings":
                continue  # seeds a database; covered by the full run
            adapt(argv, s)
            count += 1
    assert count >= 30

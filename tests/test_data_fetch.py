"""``data fetch`` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest
from test_data_validate import run_cli


@pytest.fixture()
def served(release_dir, tmp_path):
    """Serve a copy of the release files, with a corrupted twin folder."""
    good, bad = tmp_path / "www" / "good", tmp_path / "www" / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    for name in ("en_data_version7.json", "cn_data_version7.json"):
        shutil.copy(release_dir / name, good / name)
        body = bytearray((release_dir / name).read_bytes())
        body[1000] ^= 0x01
        (bad / name).write_bytes(bytes(body))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_caches(served, tmp_path):
    dest = tmp_path / "cache"
    done = run_cli("data", "fetch", "--base-url", f"{served}/good", "--dest", dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "en_data_version7.json").stat().st_size > 3_000_000
    stats = run_cli("data", "stats", "--data-dir", dest, "--no-figures", "--out", tmp_path / "st")
    assert "en: 520 sessions" in stats.stdout


def test_corrupted_body_caches_nothing(served, tmp_path):
    dest = tmp_path / "cache"
    done = run_cli("data", "fetch", "--base-url", f"{served}/bad", "--dest", dest)
    assert done.returncode == 2
    assert "checksum mismatch" in done.stderr and "Traceback" not in done.stderr
    assert not dest.exists() or not any(dest.iterdir())


def test_missing_file_and_local_source(served, release_dir, tmp_path):
    done = run_cli("data", "fetch", "--base-url", f"{served}/nowhere", "--dest", tmp_path / "c")
    assert done.returncode == 2 and "HTTP 404" in done.stderr
    copied = run_cli("data", "fetch", "--source", release_dir, "--dest", tmp_path / "c2")
    assert copied.returncode == 0 and (tmp_path / "c2" / "cn_data_version7.json").is_file()

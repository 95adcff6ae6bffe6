# psyinsight: `make demo` runs the main job on the embedded defaults; `make test` runs the tests.
# Both set everything up first (Debian packages, a venv with torch==2.13.0 then the package).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.psyinsight-installed

.PHONY: setup demo lint test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/load.py

clean:
	rm -rf runs .pytest_cache

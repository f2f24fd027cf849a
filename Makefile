# Every target sets itself up: a local .venv, torch pinned to the CPU wheel first, then the project.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0

.PHONY: install demo test test-slow bench lint docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

# pytest exits 5 when it collects no test: that must fail, not pass silently.
test: $(STAMP)
	@$(PY) -m pytest -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test" >&2; exit 1; fi; exit $$rc

test-slow: $(STAMP)
	@$(PY) -m pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-slow: pytest collected no test" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(PY) scripts/bench.py all

# docs/config.md is generated from the config classes' field docstrings.
docs: $(STAMP)
	$(PY) scripts/gen_config_docs.py

lint: $(STAMP)
	$(VENV)/bin/ruff check nowcast scripts tests
	$(VENV)/bin/ruff format --check nowcast scripts tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo_out

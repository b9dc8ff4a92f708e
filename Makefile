# Two commands matter on a fresh machine: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_KEY := kyzo-demo-key
DEMO_TOKEN := kyzo-demo-outcomes-token

.PHONY: setup demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## demo: start the local Kyzo server on a free port, run the sample campaign with its outcomes, print the summary
demo: setup
	@set -euo pipefail; \
	rm -f out/real-estate-q3.* out/demo-ledger.jsonl; \
	log=$$(mktemp); \
	KYZO_API_KEY=$(DEMO_KEY) $(BIN)/dialer mock-server --port 0 --ledger out/demo-ledger.jsonl --outcomes --call-seconds 2 --seed 7 >$$log 2>&1 & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null; rm -f $$log' EXIT; \
	for _ in $$(seq 100); do grep -q 'listening on' $$log && break; sleep 0.1; done; \
	url=$$(sed -n 's/.*listening on //p' $$log | head -n1); \
	test -n "$$url" || { cat $$log; echo "the local Kyzo server did not start"; exit 1; }; \
	echo "local Kyzo server: $$url"; \
	export KYZO_API_KEY=$(DEMO_KEY) KYZO_BASE_URL=$$url KYZO_OUTCOMES_TOKEN=$(DEMO_TOKEN); \
	code=0; $(BIN)/dialer --log-format console run configs/example.toml --no-progress --collect --wait-outcomes 60s || code=$$?; \
	if [ $$code -gt 4 ] || [ $$code -eq 2 ] || [ $$code -eq 3 ]; then echo "demo failed: dialer run exited $$code"; exit $$code; fi; \
	echo; $(BIN)/dialer status configs/example.toml | sed -n '/outcomes:/,$$p'; \
	echo; echo "the first rows of out/real-estate-q3.results.csv, with their outcome columns:"; \
	$(BIN)/python -c "import sys, polars as pl; pl.Config.set_tbl_cols(8); pl.Config.set_tbl_width_chars(140); pl.Config.set_tbl_column_data_type_inline(True); pl.Config.set_tbl_hide_dataframe_shape(True); print(pl.read_csv(sys.argv[1], infer_schema=False).select('crm_id', 'dialer_status', 'dialer_calls', 'outcome_status', 'outcome_duration_s', 'outcome_sentiment', 'outcome_budget').head(8))" out/real-estate-q3.results.csv; \
	echo; echo "demo finished (dialer run exited $$code: the sample list has a few bad rows on purpose, see the errors file;"; \
	echo "4 means some leads wait to be called back after [recycle] after = 4h)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

## test: lint, type check and the whole test suite
test: lint typecheck unit

## bench: speed and memory figures (not part of `make test`)
bench: setup
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache

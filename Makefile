# market_assets: `make demo` (sample day -> every asset) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DATE ?= 2026-11-20
DEMO_SCALE ?= demo
UI_PORT ?= 3000
export DAGSTER_HOME := $(CURDIR)/dagster_home
export MARKET_ASSETS_CONFIG ?= $(CURDIR)/config.toml

.PHONY: demo test ui bench lint sample system-deps clean live-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

sample: $(VENV)/.installed
	@if [ ! -f data/massive/us_stocks_sip/trades_v1/$$(echo $(DEMO_DATE) | cut -c1-4)/$$(echo $(DEMO_DATE) | cut -c6-7)/$(DEMO_DATE).csv.gz ]; then \
		$(VENV)/bin/market-assets sample --date $(DEMO_DATE) --out data/massive --scale $(DEMO_SCALE); \
	else echo "sample day $(DEMO_DATE) already in data/massive"; fi

demo: sample
	$(VENV)/bin/market-assets materialize --date $(DEMO_DATE)
	@touch data/.demo-$(DEMO_DATE)

# The UI shows the sample day materialized: run the demo once if it has not run.
data/.demo-$(DEMO_DATE):
	$(MAKE) demo

# Test-only system packages (PostgreSQL server, Chromium, Redis) come from Debian when missing.
system-deps:
	@bash .ci/system-deps.sh

test: $(VENV)/.installed system-deps
	$(VENV)/bin/ruff check market_assets market_assets_tests benchmarks
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check market_assets market_assets_tests benchmarks
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/ruff format --check market_assets market_assets_tests benchmarks

ui: data/.demo-$(DEMO_DATE)
	@echo "Dagster UI: http://127.0.0.1:$(UI_PORT)  (DAGSTER_HOME=$(DAGSTER_HOME))"
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

bench: $(VENV)/.installed
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/greeks.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/live.py

# The replay server (sample day from 09:25 ET, 60x real time, trades and quotes) and `live`
# against it, with the terminal view.
LIVE_PORT ?= 8765
live-demo: sample
	@$(VENV)/bin/market-assets replay --date $(DEMO_DATE) --speed 60 --start 09:25 --port $(LIVE_PORT) \
		--wait-for stocks,options --api-key demo > data/replay.log 2>&1 & \
	trap "kill $$! 2>/dev/null" EXIT; sleep 3; \
	MASSIVE_API_KEY=demo $(VENV)/bin/market-assets live --date $(DEMO_DATE) --feed 127.0.0.1:$(LIVE_PORT) --insecure \
		--option-contracts all --until 16:00 --idle-exit 30 --view on

clean:
	rm -rf data dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/logs

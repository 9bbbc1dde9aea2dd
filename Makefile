# Fengqiao — the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-unit eval bench chaos lint broker-start broker-stop clean console-assets browser-deps screens

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## setup: virtual environment, Python packages and the Kafka broker jars
setup: $(STAMP) console-assets
	bash scripts/kafka.sh fetch

## run: broker + the four services on SQLite with a seeded demo county; Ctrl-C stops all
run: setup
	$(PY) scripts/run.py

## test: the whole suite (unit, contract, integration, e2e) against the real broker
test: setup browser-deps
	bash scripts/test.sh

## test-unit: the fast layers only, no broker
test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit tests/contract

## eval: triage accuracy on ../shared/samples/reports.jsonl, confusion table per label
eval: $(STAMP)
	$(PY) -m services.triage.evaluate

## bench: throughput and latency figures (nothing asserted); results in bench/results/
bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

CONSOLE := services/console
VENDOR := $(CONSOLE)/static/vendor

## console-assets: htmx and Chart.js, pinned in services/console/package-lock.json, served by
## the console itself from static/vendor/ (no CDN)
console-assets: $(VENDOR)/.installed
$(VENDOR)/.installed: $(CONSOLE)/package.json $(CONSOLE)/package-lock.json
	cd $(CONSOLE) && npm ci --no-audit --no-fund --silent
	mkdir -p $(VENDOR)
	cp $(CONSOLE)/node_modules/htmx.org/dist/htmx.min.js $(CONSOLE)/node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/
	touch $@

## browser-deps: Debian's chromium + chromium-driver (and a CJK font) for tests/browser
browser-deps: console-assets
	bash tests/browser/deps.sh

## screens: screenshots of each console screen under docs/screens/ (a seeded stack in a browser)
screens: setup browser-deps
	$(PY) -m tests.browser.screens

## chaos: fault injection on a broker of its own (SIGKILLs, a broker outage, poison, replays);
## prints a table, fails unless nothing was lost, doubled, out of order or stuck.
## `make chaos DB=pg`: PostgreSQL with two instances of each service
DB ?= sqlite
chaos: setup
	$(PY) scripts/chaos.py --db $(DB) $(CHAOS_ARGS)

## lint: ruff check, ruff format --check, mypy --strict on shared/ and services/
lint: $(STAMP)
	$(VENV)/bin/ruff check shared services tests bench scripts
	$(VENV)/bin/ruff format --check shared services tests bench scripts
	$(VENV)/bin/mypy shared services

broker-start: setup
	bash scripts/kafka.sh start

broker-stop:
	bash scripts/kafka.sh stop

clean:
	bash scripts/kafka.sh stop || true
	bash scripts/pg.sh stop || true
	rm -rf .run "$$(bash scripts/pg.sh dir)"

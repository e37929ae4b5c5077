# citygate — two commands on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit bench fuzz test-deps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || ( echo "installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null )
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

## make demo: gateway + local broker + simulator on embedded defaults (SQLite, local broker)
demo: venv
	$(BIN)/citygate demo

## make test: install what the tests need (Debian packages too), lint, type-check, run the suite
test: test-deps venv lint typecheck unit

test-deps:
	@scripts/install-test-deps.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

## make bench: benchmarks, one JSON line per figure
bench: test-deps venv
	@for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

## make fuzz: every codec and parser under hypothesis, FUZZ_EXAMPLES inputs each, one JSON line
## per target (docs/fuzzing.md); FUZZ_JOBS targets side by side, FUZZ_ARGS e.g. "--seed 7"
FUZZ_EXAMPLES ?= 100000
FUZZ_JOBS ?= 1
fuzz: venv
	$(BIN)/python -m fuzz --examples $(FUZZ_EXAMPLES) --jobs $(FUZZ_JOBS) $(FUZZ_ARGS)

## make clean: everything the demo, the tests and the tools leave behind (the private test
## PostgreSQL cluster included; the machine's own server is not touched)
clean:
	-@[ -x scripts/pg-test-server.sh ] && scripts/pg-test-server.sh stop
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis .schemathesis telemetry-spool
	rm -rf *.egg-info build dist
	rm -f citygate.db citygate.db-wal citygate.db-shm citygate.db-journal
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -prune \
	  -exec rm -rf {} + -o \( -name '*.py[co]' -o -name 'demo.lock' \) -exec rm -f {} +

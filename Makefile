# Two commands on a fresh machine with Python 3.11+: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8080
# Test workers: the suite mostly waits on the servers it starts, so more workers than cores pay.
TEST_WORKERS ?= 4
HOST   ?= 127.0.0.1
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test fuzz bench install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "livemigrate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/livemigrate serve --host $(HOST) --port $(PORT)

# Bytecode first: the suite starts a few hundred Python processes (servers, agents, the CLI), and where
# PYTHONDONTWRITEBYTECODE is set none of them caches what it compiles — 0.3 s of CPU each. The suite
# runs with it unset, so that pytest keeps its assertion-rewritten test modules too (1.2 s per worker).
test: $(STAMP)
	$(BIN)/python -m compileall -q src tests
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# schemathesis at FUZZ_EXAMPLES examples per operation against both sides of a fresh server; the suite's
# tests/test_openapi_fuzz.py runs the same pass at 6 to stay fast.
FUZZ_EXAMPLES ?= 30
fuzz: $(STAMP)
	$(BIN)/python -m tests.test_openapi_fuzz --examples $(FUZZ_EXAMPLES)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .livemigrate build src/*.egg-info

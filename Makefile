# The project's doors. Both create .venv from the pinned dependencies when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TYPECHECK := $(BIN)/python scripts/typecheck.py

.PHONY: demo test check lint typecheck bench clean lambda-archive
ARCH ?= x86_64

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3" "uv==0.13.10"
	# uv installs the same pinned tree as pip (constraints.txt) from its cache and byte-compiles it
	# on both cores: 12 s, where pip took 35 s. Without the bytecode, every test process would
	# compile moto, boto3 and pulumi on first import.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	# Byte-compile now, so fewer modules compile at run time, when CPython 3.11.7 can raise a
	# spurious "AST constructor recursion depth mismatch" (gh-106905) in threaded programs.
	$(BIN)/python -m compileall -q provisioning sync sandbox bench __main__.py
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m sync demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# mypy runs beside the suite, which leaves part of a core idle (it waits on subprocesses,
	# servers and backoff); either failing fails the target. scripts/typecheck.py seeds a fresh
	# clone's mypy cache from the last clean run with the same pins (cold: 33 s of one core).
	$(TYPECHECK) & types=$$!; \
	$(BIN)/python -m pytest -n 2 -q; suite=$$?; \
	wait $$types && exit $$suite

# The inner loop (under a minute): lint, types and the unit tests that are not slow. Levels and
# `slow` are set in tests/conftest.py (by directory, and tests/slow.txt, measured).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TYPECHECK)
	$(BIN)/python -m pytest -n 2 -q -m "unit and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(TYPECHECK)

bench: $(STAMP)
	$(BIN)/python -m bench

# The Lambda consumer's code (`consumer: lambda`): dist/lambda-$(ARCH).zip, reproducible; needs PyPI.
lambda-archive: $(STAMP)
	$(BIN)/python scripts/lambda_archive.py --arch $(ARCH)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

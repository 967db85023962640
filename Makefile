# Open LIS: the two commands are `make run` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= demo-data
PORT ?= 8080

.PHONY: install run test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/lis demo --data-dir $(DATA) --port $(PORT)

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .ruff_cache build *.egg-info

# papibot: `make demo` to try it, `make test` to check it.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SAMPLE_UNITS := framework_data/units/khanh-hoa-2022.csv
SCALE ?= province

.PHONY: install constraints demo test lint format bench i18n clean

$(BIN)/papibot: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(BIN)/papibot

install: $(BIN)/papibot

# The pins (constraints.txt) again, from what pyproject.toml allows today: a throwaway venv
# resolves it with no pins at all, so a new or dropped dependency never fights the old file.
CONSTRAINTS_VENV := .venv-constraints
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/pip install --quiet --upgrade pip
	$(CONSTRAINTS_VENV)/bin/pip install --quiet -e '.[dev]'
	$(CONSTRAINTS_VENV)/bin/pip freeze --exclude-editable --exclude papibot > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(CONSTRAINTS_VENV)
	@echo "constraints.txt: $$(grep -c '==' constraints.txt) pins; run make test, then commit it"

# `make demo STRUCTURE=two-tier`: the 2025 units (no districts), in a database of their own.
STRUCTURE ?= three-tier
DEMO_INIT_three-tier := --units $(SAMPLE_UNITS)
DEMO_INIT_two-tier := --structure two-tier
DEMO_ENV_two-tier := PAPIBOT_DATA_DIR=./data-two-tier
DEMO_ENV := PAPIBOT_STRUCTURE=$(subst -,_,$(STRUCTURE)) $(DEMO_ENV_$(STRUCTURE))

demo: install
	$(DEMO_ENV) $(BIN)/papibot init $(DEMO_INIT_$(STRUCTURE))
	$(DEMO_ENV) $(BIN)/papibot demo-seed
	$(DEMO_ENV) $(BIN)/papibot plan
	$(DEMO_ENV) $(BIN)/papibot run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The suite runs in TEST_WORKERS processes (pytest-xdist; `auto`: one per core), each test in
# its own database or schema. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= auto
test: lint
	$(BIN)/pytest -q -n $(TEST_WORKERS)

bench: install
	$(BIN)/python -m bench.run --scale $(SCALE)

clean:
	rm -rf $(VENV) data .pytest_cache

i18n: install
	$(BIN)/python scripts/update_catalogs.py --check

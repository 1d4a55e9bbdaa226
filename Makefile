# The two README commands: `make demo` (set up, then the main job on the built-in data)
# and `make test` (set up, then the test suite). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

$(BIN)/autopose: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(BIN)/autopose

setup: $(BIN)/autopose

demo: setup
	$(BIN)/autopose demo

# Two workers (CI's 2 cores). loadfile keeps each test file on one worker, so that a module
# fixture that is a whole run (the quick study, the ranking) is made once. (loadgroup with
# xdist_group marks did not group at all with pytest 9.2 and pytest-xdist 3.8.) The 12
# slowest tests are listed at the end: CI's log then says where its minutes went.
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=12

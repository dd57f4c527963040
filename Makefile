# Two commands on a fresh machine: `make demo`, `make test`.
# The virtual environment is (re)built when missing or older than setup.cfg.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
COMP    ?= titanic
STAMP   := $(VENV)/.installed

.PHONY: demo test test-all lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/train.py --comp $(COMP) --demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check kit scripts tests templates competitions

# The environment and build files only: runs/ and submissions/ hold results (remove a run
# folder by hand when you mean it).
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache catboost_info

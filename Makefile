# Two commands on a fresh machine: `make demo` (main job) and `make test`.
# Each creates the virtual environment in .venv on first use (one-time: compiles llama-cpp-python).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test install clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=24"
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/vpersona run --config demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests

clean-venv:
	rm -rf $(VENV)

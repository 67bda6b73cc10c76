# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   - create .venv, install glmmkit with every extra, run `glmmkit demo`
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/glmmkit demo --out glmmkit-demo

# the tests in one process per core (pytest-xdist), each with one BLAS thread: the cores are not
# oversubscribed (measured: 283 s in one process, 192 s with two and threaded BLAS, 151 s as here)
test: $(VENV)/.installed
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n auto

bench: $(VENV)/.installed
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) glmmkit-demo

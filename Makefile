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

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) glmmkit-demo

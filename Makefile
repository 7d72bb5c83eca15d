# Two commands do everything on a fresh machine:
#   make demo   set up, then open JupyterLab on the quickstart with a sample case
#   make test   set up (venv, packages, Debian's chromium and postgresql), then run every test
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CASE  ?= sample_data/cases/upstream_break
PORT  ?= 8888
# Test files run on this many worker processes, each file whole on one worker (its module fixtures built once):
# on two cores the browser, kernel and server waits of one file overlap the other's work. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

.PHONY: setup browser postgres samples demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# constraints.txt is the lock: every package at the version the tests and figures were measured with (torch: the CPU build)
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests; Playwright's own browser download cannot work offline.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core; \
	fi

# Debian's PostgreSQL server for the [source.*] tests, which start their own throwaway cluster on loopback (as an
# unprivileged user) and stop it after. No default cluster: createcluster.conf says so before the package installs.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  mkdir -p /etc/postgresql-common && \
	  { [ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; } && \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql; \
	fi

# The committed sample cases are regenerated only when missing (same seed, same bytes).
samples: setup
	$(PY) -m workbench.sample.build_all --missing-only

# The terminal answer first, then JupyterLab on the quickstart (it prints the URL to open).
demo: setup samples
	$(VENV)/bin/workbench diagnose $(CASE)
	@echo
	@echo "Opening JupyterLab on notebooks/quickstart.ipynb (Ctrl-C to stop); open the URL it prints below."
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --ServerApp.root_dir=$(CURDIR) \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) notebooks/quickstart.ipynb

test: setup browser postgres samples
	# one BLAS thread per worker: two workers on two cores, each starting a numpy thread per core, oversubscribe them
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not timing"
	# the lab's wall-time tests alone, after the rest: two of them overlapping on two cores made each other's noise
	$(PY) -m pytest -m timing

lint: setup
	$(VENV)/bin/ruff check workbench widgets tests benchmarks

bench: setup
	$(PY) benchmarks/bench_analysis.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

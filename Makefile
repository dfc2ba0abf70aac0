# Two commands: `make run` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run stop test venv lint bench-nightly clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.env:
	echo "DJANGO_ENV=local" > .env

venv: $(STAMP) .env

# Set up, then web + worker + beat with logs under var/log/; Ctrl-C stops them (scripts/run_all.py).
# PORT=8001 serves elsewhere; EMBEDDED_PG_PORT picks the embedded PostgreSQL's port.
run: venv
	@$(PY) scripts/run_all.py

# Stops a `make run` of this checkout (from any shell) and the embedded PostgreSQL.
stop:
	@if [ -x $(PY) ]; then $(PY) scripts/run_all.py stop; else echo "nothing to stop (no $(VENV))"; fi

test: venv
	@eval "$$($(PY) scripts/pick_services.py test)"; \
	export DJANGO_ENV=test; \
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

bench-nightly: venv
	@eval "$$($(PY) scripts/pick_services.py test)"; export DJANGO_ENV=test; $(PY) bench/nightly.py

.PHONY: bench-api bench-hot
# API benchmarks (docs/benchmarks.md): a fresh database each, a few minutes each. py-spy adds the profile.
bench-api: venv
	@eval "$$($(PY) scripts/pick_services.py test)"; $(PY) bench/api.py $(BENCH_ARGS)

bench-hot: venv
	@eval "$$($(PY) scripts/pick_services.py test)"; $(PY) bench/hot_company.py $(BENCH_ARGS)

clean:
	-$(PY) scripts/run_all.py stop
	rm -rf $(VENV) var .pytest_cache .hypothesis

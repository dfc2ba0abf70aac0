# Two commands: `make run` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test venv lint bench-nightly clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.env:
	echo "DJANGO_ENV=local" > .env

venv: $(STAMP) .env

run: venv
	@eval "$$($(PY) scripts/pick_services.py run)"; \
	export DJANGO_ENV=local DJANGO_DEBUG=true; \
	$(PY) manage.py migrate --noinput && \
	$(PY) manage.py seed_demo --json-file var/demo.json && \
	exec $(PY) scripts/run_all.py

test: venv
	@eval "$$($(PY) scripts/pick_services.py test)"; \
	export DJANGO_ENV=test; \
	$(VENV)/bin/lint-imports --no-cache --no-logo && \
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
	-$(PY) scripts/embedded_pg.py stop
	rm -rf $(VENV) var .pytest_cache .hypothesis

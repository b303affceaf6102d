# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test demo bench schema install clean client fuzz dist-check

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The declared style first (ruff, configured in pyproject.toml), then the suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The demo on http://$(DEMO_HOST):$(DEMO_PORT)/ (dashboard), /graphql/ (GraphiQL), /admin/.
# Idempotent: migrate and demo_setup change nothing the second time. DATABASE_URL / REDIS_URL
# switch to PostgreSQL / Redis (see docs/dashboard.md). The demo runs with DEBUG on (the
# settings default to off, and then want DJANGO_SECRET_KEY): DJANGO_DEBUG=0 make demo to try
# the production behaviour.
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
DEMO_ENV := DJANGO_DEBUG=$${DJANGO_DEBUG:-1}
demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py demo_setup --url http://$(DEMO_HOST):$(DEMO_PORT)
	@# The deadline scheduler runs beside the server and stops with it.
	$(DEMO_ENV) $(BIN)/python manage.py steps_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(DEMO_ENV) $(BIN)/daphne -b $(DEMO_HOST) -p $(DEMO_PORT) demo.asgi:application

# A typed Python client (ariadne-codegen) from schema.graphql + client/*.graphql, into build/.
# ariadne-codegen needs graphql-core<3.3 and strawberry >=3.3: it gets a venv of its own.
CODEGEN := $(VENV)/codegen-tool
$(CODEGEN)/.installed: client/requirements-codegen.txt
	@test -x $(CODEGEN)/bin/python || $(PYTHON) -m venv $(CODEGEN)
	$(CODEGEN)/bin/python -m pip install -q -r client/requirements-codegen.txt
	@touch $@
client: $(CODEGEN)/.installed
	@mkdir -p build
	$(CODEGEN)/bin/ariadne-codegen --config client/ariadne-codegen.toml

schema: $(STAMP)
	DJANGO_DEBUG=1 DJANGO_SETTINGS_MODULE=demo.settings $(BIN)/python manage.py export_schema graphql_api.schema:schema --path schema.graphql

# Schemathesis against a live server, 1000 examples per GraphQL operation (`make test` runs 100),
# printing each operation as it finishes: 30-45 minutes, mostly hypothesis generating inputs (the
# test sets its own timeout from FUZZ_EXAMPLES). Only server errors are logged meanwhile.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} DJANGO_STEPS_LOG_LEVEL=ERROR $(BIN)/python -m pytest tests/graphql_api/api/test_fuzz.py -q -s -p no:logging $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# `make bench` prints every figure with its floor/peer; QUICK=1 for the two-minute version.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,)

# The distribution, proven as a project would install it: the wheel and sdist built into dist/
# (no deprecation warning allowed) and checked by twine, the wheel (not editable) installed with
# its extras into a fresh virtualenv, and examples/host_project's tests run there. A template,
# static file, migration or command missing from the wheel fails here. CI runs it after `make test`.
HOST_VENV ?= build/host-venv
dist-check: $(STAMP)
	rm -rf dist $(HOST_VENV) && mkdir -p build
	$(BIN)/python -m build --outdir dist . > build/dist-build.log 2>&1 || { cat build/dist-build.log; exit 1; }
	@! grep -i -n "deprecat" build/dist-build.log || { echo "the build warns of a deprecation (above)"; exit 1; }
	$(BIN)/python -m twine check --strict dist/*
	$(PYTHON) -m venv $(HOST_VENV)
	$(HOST_VENV)/bin/python -m pip install -q "$$(ls dist/*.whl)[postgres,redis,server]" -r examples/host_project/requirements-test.txt
	cd examples/host_project && DJANGO_STEPS_FROM_WHEEL=1 $(CURDIR)/$(HOST_VENV)/bin/python -m pytest -q -p no:cacheprovider

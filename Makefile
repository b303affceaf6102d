# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: test demo bench schema install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

schema: $(STAMP)
	DJANGO_SETTINGS_MODULE=demo.settings $(BIN)/python manage.py export_schema graphql_api.schema:schema --path schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache

# `make bench` prints every figure with its floor/peer; QUICK=1 for the two-minute version.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,)

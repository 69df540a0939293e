# Two commands for a new user (see README):  make run   |   make test
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test lint test-viewer install install-dev viewer translations migrate demo serve clean

run: install viewer translations migrate demo serve  ## install, migrate, demo data, start web + worker

test: install-dev viewer translations lint test-viewer  ## install everything the suite needs and run it
	scripts/test

lint: install-dev  ## ruff (configuration in ruff.toml): bug-finding rules only, no formatting
	$(BIN)/ruff check .

test-viewer: viewer  ## the viewer's JavaScript unit tests (node's built-in test runner)
	cd viewer && npm test --silent

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed
	@scripts/system-deps run

install-dev: $(VENV)/.installed-dev

viewer: pathology_hub/static/dist/.built

# Every file under viewer/src (subfolders included), so an edit anywhere rebuilds the bundle.
pathology_hub/static/dist/.built: viewer/package.json viewer/package-lock.json viewer/build.mjs $(shell find viewer/src -type f)
	cd viewer && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent
	@touch $@

translations:
	@$(BIN)/python scripts/i18n.py compile

migrate: install
	$(BIN)/flask db upgrade

demo: install
	$(BIN)/flask demo

serve:
	scripts/run

clean:
	rm -rf $(VENV) viewer/node_modules pathology_hub/static/dist

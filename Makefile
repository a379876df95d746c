# Two commands do everything on a fresh machine with Python 3.11+:
#   make run    set up, load demo data, print an admin login, serve API + admin + workers
#   make test   set up and run the test suite (SQLite unless DATABASE_URL is set)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
CAPTURE_PORT ?= 8001
VAR_DIR ?= var

.PHONY: install run dev-env test lint format clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

# The demo runs with DEBUG on, and every postback goes to a capture receiver on 127.0.0.1 that
# runall starts (POSTBACK_CAPTURE_URL): the demo's first events are delivered, and none reaches
# a partner. POSTBACK_CAPTURE_URL= (empty) turns capture off. dev-env writes these settings to
# $(VAR_DIR)/dev.env, which manage.py reads where SECRET_KEY is not set (project/dev_env.py), so
# `.venv/bin/python manage.py ...` works afterwards as under `make run`. demo_setup loads the demo
# only into an empty database: a restart changes no key, password or postback.
run dev-env: export DEBUG ?= true
run dev-env: export POSTBACK_ALLOW_PRIVATE_DESTINATIONS ?= true
run dev-env: export POSTBACK_CAPTURE_URL ?= http://127.0.0.1:$(CAPTURE_PORT)
run: install dev-env
	$(PY) manage.py migrate --no-input -v0
	$(PY) manage.py demo_setup --api-url http://$(HOST):$(PORT)
	@echo "Admin: http://$(HOST):$(PORT)/admin/   (Ctrl-C stops the web server and the workers)"
	$(PY) manage.py runall $(HOST):$(PORT) --capture-receiver

dev-env:
	@mkdir -p "$(VAR_DIR)"
	@printf '%s\n' '# Written by `make run`; manage.py reads it where SECRET_KEY is not set (project/dev_env.py).' \
		"DEBUG=$$DEBUG" \
		"POSTBACK_ALLOW_PRIVATE_DESTINATIONS=$$POSTBACK_ALLOW_PRIVATE_DESTINATIONS" \
		"POSTBACK_CAPTURE_URL=$$POSTBACK_CAPTURE_URL" > "$(VAR_DIR)/dev.env"

test: export SECRET_KEY ?= test-only-secret-key-not-for-production
test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

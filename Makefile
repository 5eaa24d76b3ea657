# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test soak lint typecheck pytest migrate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Serve on SQLite with mail written to ./var/outbox/ unless SHODAKU_SMTP_HOST is set.
serve: $(VENV)/.installed
	mkdir -p var/outbox
	SHODAKU_ENV=$${SHODAKU_ENV:-dev} $(BIN)/shodaku serve --host $(HOST) --port $(PORT)

migrate: $(VENV)/.installed
	$(BIN)/shodaku migrate

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/hadolint Dockerfile

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy app
	$(BIN)/lint-imports

# One test process per core (pytest-xdist): each has its own PostgreSQL database and SQLite
# files, so they never meet. PYTEST_WORKERS=0 runs them in this process, for a debugger.
PYTEST_WORKERS ?= auto
pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

# The long fault tests (e.g. a 30 s SMTP outage with the real retry backoff), left out of `test`.
soak: $(VENV)/.installed-dev
	$(BIN)/pytest -m soak $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

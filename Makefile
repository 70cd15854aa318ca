# Two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install migrate lint format clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable

# Install, migrate the embedded SQLite database, load the demo data and serve on 127.0.0.1:8000,
# with a background worker for large card batches and periodic intervals (stopped with the server).
run: migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py extend_intervals --schedule
	$(BIN)/python manage.py summarize_reports --schedule
	$(BIN)/python manage.py run_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# Install and run the whole suite (SQLite by default; PostgreSQL when DATABASE_URL says so).
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	PYTHONPATH=. $(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# After changing a panel string: refresh locale/*/django.po, translate the new entries, compile.
# Needs GNU gettext (apt-get install gettext); the .mo files are committed, so `make run` does not.
messages: install
	$(BIN)/python manage.py makemessages -l es -l fr --no-location --no-obsolete \
		--ignore='.venv/*' --ignore='tests/*' --ignore='staticfiles/*' --ignore='build/*' \
		--ignore='*/templates/admin/*'
	$(BIN)/python manage.py compilemessages --ignore='.venv/*'

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache

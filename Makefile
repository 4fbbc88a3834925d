# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lock run test test-unit lint format bench soak browser screenshots compose-up compose-down clean

# The exact versions CI tested, with their hashes (requirements.lock), then the project
# itself, editable, built with the locked setuptools (no second download).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## Re-resolve requirements.lock after a change to the dependencies in pyproject.toml
## (keeps every pin it can; `make lock LOCK_ARGS=--upgrade` takes the newest allowed).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--custom-compile-command "make lock" -o requirements.lock $(LOCK_ARGS)

## Serve the API on the embedded SQLite store (./var/loyalty.db), projections in-process.
run: $(STAMP)
	$(BIN)/loyalty serve

## The whole test suite: unit, property, integration (PostgreSQL, Kafka) and e2e.
test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Debian's chromium and its chromedriver, for the console's browser tests (if missing).
BROWSER_PACKAGES := chromium chromium-driver
AS_ROOT := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing $(BROWSER_PACKAGES) for the console's browser tests"; \
	  $(AS_ROOT) apt-get update && \
	  $(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_PACKAGES); \
	fi

## The console's screenshots in docs/console/, taken by its browser tests.
screenshots: $(STAMP) browser
	LOYALTY_SCREENSHOTS=docs/console $(BIN)/python -m pytest tests/e2e/test_console_browser.py -q

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy services

format: $(STAMP)
	$(BIN)/ruff format services tests bench
	$(BIN)/ruff check --fix services tests bench

## Benchmarks: never part of `make test`; figures go to docs/BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench

## The seeded fault soak (tests/soak): EVENTS POS events through Kafka into PostgreSQL
## while processes are killed and servers restarted; SEED=0 draws one (printed first).
SEED   ?= 0
EVENTS ?= 1000000
RATE   ?= 1000
soak: $(STAMP)
	$(BIN)/python -m tests.soak --seed $(SEED) --events $(EVENTS) --rate $(RATE)

compose-up:
	docker compose up -d --wait

compose-down:
	docker compose down -v

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

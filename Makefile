# HealthOS quick start. Each target sets itself up from nothing (creates .venv).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: demo test lint bench clean-var chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## The main job: build ./var/healthos.db, load the sample, score, print, serve on 127.0.0.1:8000.
demo: $(STAMP)
	$(BIN)/healthos demo $(ARGS)

## Lint, types, then the whole test suite against SQLite and the local PostgreSQL
## (127.0.0.1:5432, database test).
test: lint chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(ARGS)

## Debian's Chromium for the command center's end-to-end tests (tests/e2e, Playwright with
## executable_path=/usr/bin/chromium; Playwright's own browser download is not used).
## Installed only when missing (needs root, as on CI).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
		echo "installing Debian's chromium for tests/e2e"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	}
	@test -x $(CHROMIUM) || { echo "chromium: $(CHROMIUM) is still missing" >&2; exit 1; }

## ruff lints and checks the formatting of the code and the notebooks (their cells).
lint: $(STAMP)
	$(BIN)/ruff check healthos_core reasoning models serving tests bench notebooks
	$(BIN)/ruff format --check healthos_core reasoning models serving tests bench notebooks
	$(BIN)/mypy healthos_core reasoning serving models

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

## Remove the local state folder (HEALTHOS_VAR_DIR, default ./var): the demo database, the
## local MLflow store and its artifacts. `make demo` builds it again.
VAR_DIR ?= $(or $(HEALTHOS_VAR_DIR),var)
clean-var:
	@case "$(VAR_DIR)" in ""|/|.|..|~) echo "clean-var: refusing to remove '$(VAR_DIR)'" >&2; exit 2;; esac
	@if [ -e "$(VAR_DIR)" ]; then \
		rm -rf -- "$(VAR_DIR)" && echo "removed $(VAR_DIR)/ (demo database, MLflow store); make demo builds it again"; \
	else \
		echo "$(VAR_DIR)/ does not exist: nothing to remove"; \
	fi

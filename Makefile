# The two commands of the README: `make serve` (a demo organization on loopback, ports + 10000)
# and `make test` (the whole suite). Everything they need is set up here, into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := var/demo
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench clean demo-reset

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/courriel demo init $(DEMO)
	$(BIN)/courriel --config $(DEMO)/courriel.toml serve

lint: $(STAMP)
	$(BIN)/ruff check courriel tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/smtp_inbound.py

demo-reset:
	rm -rf $(DEMO)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

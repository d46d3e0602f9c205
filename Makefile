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
	@echo "How to connect (users alice@example.test and bob@example.test, password courriel-demo; group team@example.test):"
	@echo "  inbound SMTP   swaks --server 127.0.0.1:10025 --from you@elsewhere.test --to alice@example.test"
	@echo "  submission     swaks --server 127.0.0.1:10587 --tls --auth-user alice@example.test --auth-password courriel-demo --from alice@example.test --to team@example.test"
	@echo "  IMAP / POP3    127.0.0.1:10143 (STARTTLS), 10993 (TLS) / 127.0.0.1:10110 (STLS), 10995 (TLS); self-signed certificate"
	@echo "  admin          $(BIN)/courriel --config $(DEMO)/courriel.toml mailbox list   (also: ports, tracking search, queue list)"
	$(BIN)/courriel --config $(DEMO)/courriel.toml serve

lint: $(STAMP)
	$(BIN)/ruff check courriel tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/smtp_inbound.py
	$(BIN)/python bench/topology.py

demo-reset:
	rm -rf $(DEMO)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

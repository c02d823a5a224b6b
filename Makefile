# Two commands on a fresh machine: `make demo` runs the demo, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check bench screenshot

demo: $(VENV)/.installed-demo
	$(BIN)/python -m demo_app

test: $(VENV)/.installed
	$(BIN)/python -m pytest

check: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/compare.py

# Retakes the README's pictures with the browser test: the inbox (docs/inbox.png), the sample card
# (docs/card.png) and each kind of card (docs/card-<kind>.png). Needs Debian's chromium and, for
# the cards' emoji, fonts-noto-color-emoji.
screenshot: $(VENV)/.installed-docs
	SCREENSHOT=docs/inbox.png SCREENSHOT_CARD=docs/card.png SCREENSHOT_KINDS=docs \
		$(BIN)/python -m pytest -q tests/integration/test_inbox_browser.py

# The demo needs only its own extra; the tests install everything they use.
$(VENV)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-demo

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

# sentry-sdk, for the comparison; wrk (apt-get install wrk) is used when present.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

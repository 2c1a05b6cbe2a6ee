# Two commands: `make run` starts the app, `make test` runs every check. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
export PYTHONPATH := $(CURDIR)

.PHONY: run test lint bench setup clean fonts browser pdftools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt $(VENV)/.app-installed
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

# Debian packages, installed with apt-get when missing: fonts for invoices in any script (all
# targets), Chromium for the browser tests and poppler's pdftotext and qpdf for the invoice text
# layer and file checks (`make test` only).
APT_INSTALL = \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	    echo "installing$$missing with apt-get"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: apt-get not found; install$$missing yourself"; fi; \
	fi

fonts:
	@missing=""; \
	[ -d /usr/share/fonts/truetype/noto ] || missing="$$missing fonts-noto-core"; \
	[ -d /usr/share/fonts/truetype/wqy ] || missing="$$missing fonts-wqy-microhei"; \
	$(APT_INSTALL)

browser:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	$(APT_INSTALL)

pdftools:
	@missing=""; \
	[ -x /usr/bin/pdftotext ] || missing="$$missing poppler-utils"; \
	[ -x /usr/bin/qpdf ] || missing="$$missing qpdf"; \
	$(APT_INSTALL)

setup: $(VENV)/.app-installed fonts
	$(BIN)/python -m billing_core setup

# Local mode (role picker) unless single sign-on is configured in .streamlit/secrets.toml.
run: setup
	@if grep -qs '^\[auth\]' .streamlit/secrets.toml; then mode=0; else mode=$${BILLING_LOCAL_MODE:-1}; fi; \
	BILLING_LOCAL_MODE=$$mode $(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.test-installed fonts browser pdftools lint
	$(BIN)/pytest

bench: $(VENV)/.test-installed
	$(BIN)/python -m billing_core bench

clean:
	rm -rf $(VENV) data test-output .pytest_cache .ruff_cache

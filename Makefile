# The two set-up commands of the README. Each creates .venv when missing and installs
# the package into it (editable), re-installing only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-study
DEMO_SEED ?= 0

.PHONY: demo test clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	touch $@

demo: $(VENV)/.installed-base
	@if [ ! -f $(DEMO_DIR)/truth/truth.json ]; then \
		$(BIN)/icanets simulate $(DEMO_DIR) --preset demo --seed $(DEMO_SEED); \
	else \
		echo "Using the demo study already simulated in $(DEMO_DIR)/ (delete it to simulate again)"; \
	fi
	$(BIN)/icanets run $(DEMO_DIR)/study.toml --out $(DEMO_DIR)/derivatives/icanets

# The report's browser test needs Chromium (Debian's package). Installed when missing and
# possible (root with apt); otherwise that one test skips with a message.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ) || \
	echo "Chromium is not installed and could not be installed: the browser test of the report will skip"

test: $(VENV)/.installed-test browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR)

# The two set-up commands of the README. Each creates .venv when missing and installs
# the package into it (editable), re-installing only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-study
DEMO_SEED ?= 0

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed-base
	@if [ ! -f $(DEMO_DIR)/truth/truth.json ]; then \
		$(BIN)/icanets simulate $(DEMO_DIR) --preset demo --seed $(DEMO_SEED); \
	else \
		echo "Using the demo study already simulated in $(DEMO_DIR)/ (delete it to simulate again)"; \
	fi
	$(BIN)/icanets run $(DEMO_DIR)/study.toml --out $(DEMO_DIR)/derivatives/icanets

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR)

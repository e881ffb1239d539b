# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv if missing, install, run the forecast demo on the built-in world
#   make test   the same set-up with the test extras, then lint, type check and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/world.yaml

.PHONY: demo test lint typecheck pytest coastlines clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

# Coastlines for maps, offline: Debian's GSHHS shapefiles. Best effort: without
# them (no root, no apt) maps are drawn without coastlines and say so.
coastlines:
	@test -f /usr/share/cartopy/data/shapefiles/gshhs/c/GSHHS_c_L1.shp \
	  || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	      && (apt-get install -y -qq python-cartopy-data >/dev/null 2>&1 \
	          || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python-cartopy-data >/dev/null 2>&1))) \
	  || echo "coastlines: python-cartopy-data not installed; maps will have no coastlines"

demo: $(VENV)/.installed coastlines
	$(BIN)/python -m pipelines.demo --config $(CONFIG)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test coastlines
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf outputs data/world.zarr .pytest_cache .mypy_cache .ruff_cache

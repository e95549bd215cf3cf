# Two entry points that do all setup on a fresh machine (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup demo test lint clean

$(BIN)/nir: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel first: an unpinned torch would pull several GB of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/nir

setup: $(BIN)/nir

demo: setup
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --configfile config/config.yaml
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --configfile config/config.yaml \
		--report results/report.html

test: setup
	$(BIN)/ruff check nir tests benchmarks workflow/scripts
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check nir tests benchmarks workflow/scripts

clean:
	rm -rf results .snakemake

# Two entry points that do all setup on a fresh machine (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
LOCK := requirements.lock
# LOCKED=1: `make setup` (and demo, test) installs exactly the versions of $(LOCK)
LOCKED ?= 0

.PHONY: setup demo test lint lock clean

$(BIN)/nir: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel first: an unpinned torch would pull several GB of CUDA packages
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	rm -f $(VENV)/.locked
	touch $(BIN)/nir

# LOCKED=1: the same steps, every package (pip too) at the version $(LOCK) pins
$(VENV)/.locked: $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) pip
	# the CPU wheel first, as above
	$(BIN)/pip install -q -c $(LOCK) torch==2.13.0
	$(BIN)/pip install -q -r $(LOCK) -e ".[test]"
	touch $(BIN)/nir $@

setup: $(if $(filter 1,$(LOCKED)),$(VENV)/.locked,$(BIN)/nir)

# $(LOCK): the exact version of every package in $(VENV), pip and setuptools included (pip
# freeze; the project itself left out). torch's build tag (+cpu, +cu126) is dropped: the build
# comes from the index, and make setup installs the CPU wheel first (see README)
lock: setup
	echo "# Exact versions of $(VENV), written by make lock: pip freeze --all --exclude-editable," > $(LOCK).tmp
	echo "# build tags (+cpu) dropped; Python $$($(BIN)/python -c 'import platform; \
	print(platform.python_version())'). Install with: make setup LOCKED=1" >> $(LOCK).tmp
	$(BIN)/pip freeze --all --exclude-editable | sed -E 's/^([^=]+==[^+]+)[+].*/\1/' >> $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

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

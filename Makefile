# Two entry points that do all setup on a fresh machine (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
LOCK := requirements.lock
# LOCKED=1: `make setup` (and demo, test) installs exactly the versions of $(LOCK)
LOCKED ?= 0
# The index `make setup` installs torch from. Empty (the default): the pip index pip is
# configured with (pip.conf, PIP_INDEX_URL; PyPI if none), so the build is whatever that index
# serves: PyPI's Linux torch==2.13.0 is a CUDA build pulling several GB. For the CPU wheel:
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# It acts when torch is installed: an existing .venv keeps its torch 2.13.0 (rm -rf .venv
# first). A CUDA wheel index (e.g. https://download.pytorch.org/whl/cu126) gives a GPU build.
TORCH_INDEX_URL ?=
TORCH_INDEX := $(if $(strip $(TORCH_INDEX_URL)),--index-url $(strip $(TORCH_INDEX_URL)))

.PHONY: setup demo demo-tbm test lint lock clean

$(BIN)/nir: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned and from TORCH_INDEX_URL when given (above): left to the dependency
	# resolver, an unpinned torch would come from the default index
	$(BIN)/pip install -q $(TORCH_INDEX) torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	rm -f $(VENV)/.locked
	touch $(BIN)/nir

# LOCKED=1: the same steps, every package (pip too) at the version $(LOCK) pins
$(VENV)/.locked: $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c $(LOCK) pip
	# torch first, as above
	$(BIN)/pip install -q $(TORCH_INDEX) -c $(LOCK) torch==2.13.0
	$(BIN)/pip install -q -r $(LOCK) -e ".[test]"
	touch $(BIN)/nir $@

setup: $(if $(filter 1,$(LOCKED)),$(VENV)/.locked,$(BIN)/nir)

# $(LOCK): the exact version of every package in $(VENV), pip and setuptools included (pip
# freeze; the project itself left out). torch's build tag (+cpu, +cu126) is dropped: the build
# comes from the index torch is installed from (TORCH_INDEX_URL, see README)
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

# the two-group demo: study template built with NIR, then tensor-based morphometry
demo-tbm: setup
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --configfile config/tbm.yaml
	$(BIN)/snakemake --snakefile workflow/Snakefile --cores $(CORES) --configfile config/tbm.yaml \
		--report results-tbm/report.html

# one pytest worker per core; a module's tests stay on one worker, so its fixtures (a whole
# workflow run, say) are built once
test: setup
	$(BIN)/ruff check nir tests benchmarks workflow/scripts
	$(BIN)/pytest -q -n $(CORES) --dist loadfile

lint: setup
	$(BIN)/ruff check nir tests benchmarks workflow/scripts

clean:
	rm -rf results results-tbm .snakemake

# tsne-atlas: two commands do all set-up on a fresh machine.
#   make run    create .venv, install the pinned requirements, run the workflow on the demo data
#   make test   the same set-up (plus .venv-slurm, Debian's chromium for the browser tests and Debian's
#               Slurm + munge for the cluster test), then the test suite
#   make check  lint + unit tests in 2 processes: about a minute, no root, no network (after the first `make run`)
#   make slurm-env   .venv-slurm: .venv's packages plus Snakemake's SLURM executor plugin, for clusters
#   make compare-layers  the layer-comparison preset on the demo data (presets/compare-layers.yaml), then its table
#   make digits      write scikit-learn's digits as images + pixel features, run presets/digits.yaml
#   make methods     t-SNE, UMAP, PCA and PaCMAP side by side on the demo data (presets/methods.yaml)
#   make mutation    mutation testing (mutmut) of sampling, config, prepared input, suspects, comparison, shards,
#                    the stored top-5 and files/: hours on 2 cores, not in make test
PYTHON ?= python3
VENV ?= .venv
SLURM_VENV ?= .venv-slurm
CORES ?= all
CHECK_JOBS ?= 2
STAMP := $(VENV)/.requirements-installed
SLURM_STAMP := $(SLURM_VENV)/.requirements-installed

.PHONY: run test check system-deps slurm-env lint format readme-figures clean mutation compare-layers digits methods query

# --no-cache-dir: set-up's disk is the venv's ~7 GB (torch's CUDA build) and no copy of the wheels beside it
# (a CI run once found the disk full while installing).
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-cache-dir -r requirements.txt
	touch $@

# The SLURM plugin lives in its own venv: with it installed, every Snakemake call on a machine with
# Slurm's client tools but no answering controller waits ~9 s (README, "Run on a cluster").
# .venv-slurm sees .venv's packages through a .pth file, so torch is not installed twice.
$(SLURM_STAMP): $(STAMP) requirements-slurm.txt
	$(PYTHON) -m venv $(SLURM_VENV)
	$(SLURM_VENV)/bin/python tools/link_venv.py $(VENV)
	$(SLURM_VENV)/bin/pip install --quiet --no-cache-dir -r requirements-slurm.txt
	touch $@

slurm-env: $(SLURM_STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES)

# The set-up and the tests of functions (unit, slow; in CHECK_JOBS workers as make check runs them) while
# system-deps installs Chromium and Slurm in the background (apt's downloads and unpacking beside pip's, which
# keeps one core busy; those tests need neither); then the real runs (Snakemake, Slurm, Chromium, TensorBoard)
# in CHECK_JOBS workers too, a test file each: one worker's waits (Slurm's polling, a browser, a single-threaded
# step) are the other's CPU time. conftest gives each worker its share of the cores. The package's bytecode is
# written first: where PYTHONDONTWRITEBYTECODE is set (as on CI's machine), every job would compile it again.
# (The venvs' make is named through VENVS: a recipe line naming $(MAKE) itself would run, tests and all, under make -n.)
VENVS = $(MAKE) --no-print-directory $(STAMP) $(SLURM_STAMP)
test:
	@log=$$(mktemp); tools/install_system_deps.sh >$$log 2>&1 & deps=$$!; \
	$(VENVS); venvs=$$?; \
	if [ $$venvs -eq 0 ]; then \
		PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m compileall -q scripts benchmarks >/dev/null; \
		$(VENV)/bin/python -m pytest -v --durations=15 -m "unit or slow" -n $(CHECK_JOBS) --dist loadfile tests; \
	fi; unit=$$?; \
	wait $$deps; installed=$$?; cat $$log; rm -f $$log; \
	if [ $$venvs -ne 0 ]; then echo "tsne-atlas: building .venv or .venv-slurm failed (pip's output is above the system packages' log); fix it and run make test again" >&2; exit $$venvs; fi; \
	if [ $$installed -ne 0 ]; then echo "tsne-atlas: tools/install_system_deps.sh failed (its output above)" >&2; exit $$installed; fi; \
	exit $$unit
	$(VENV)/bin/python -m pytest -v --durations=30 -m "not unit and not slow" -n $(CHECK_JOBS) --dist loadfile tests

compare-layers: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile presets/compare-layers.yaml
	PYTHONPATH=scripts $(VENV)/bin/python tools/layers_table.py results/compare-layers

methods: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile presets/methods.yaml

# The demo's maps with new images placed on them (presets/query.yaml); the demo's own outputs are not redone.
query: run
	PYTHONPATH=scripts $(VENV)/bin/python tools/make_query_set.py results/sample/images.csv resources/animal-mnist results/query-images
	$(VENV)/bin/snakemake --cores $(CORES) --configfile presets/query.yaml

digits: $(STAMP)
	PYTHONPATH=scripts $(VENV)/bin/python tools/make_digits.py data/digits
	$(VENV)/bin/snakemake --cores $(CORES) --configfile presets/digits.yaml

# The unit tests in CHECK_JOBS pytest-xdist workers, each test file in one worker (its module fixtures and
# UMAP's numba compilation once); tests/conftest.py gives each worker its share of the cores.
check: lint
	$(VENV)/bin/python -m pytest -q -m unit -n $(CHECK_JOBS) --dist loadfile tests

# Mutation testing (docs/development.md, "Mutation testing": the modules, the run time); slow, not part of `make test`.
# mutmut names mutants after the file path and strips only `src.`, so it mutates scripts/ through a `src` link.
mutation: $(STAMP)
	$(VENV)/bin/pip install --quiet mutmut==3.8.1 && ln -sfn scripts src && OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2; status=$$?; rm -f src; exit $$status

# Debian's chromium + chromium-driver for the explorer's real-browser tests, and slurmctld, slurmd,
# slurm-client and munge for the cluster test (apt-get when root).
system-deps:
	tools/install_system_deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile rules/

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/snakefmt Snakefile rules/

# The README's pictures: the demo run's (with its query set), the layer comparison's, the digits' and the methods' outputs, downscaled for the page.
readme-figures: run query compare-layers digits methods system-deps
	$(VENV)/bin/python tools/make_readme_figures.py results docs --compare results/compare-layers --digits results/digits --methods results/methods
	# The explorer with the trained set's perplexity-30 seed-0 map (run 3) beside the random set's (run 12), by cluster.
	PYTHONPATH=scripts $(VENV)/bin/python tools/screenshot_page.py results/explorer.html docs/demo-explorer.png --click --width 1500 --height 900 --fragment "run=3&compare=12&colour=1"

clean:
	rm -rf results .snakemake

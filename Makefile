# tsne-atlas: two commands do all set-up on a fresh machine.
#   make run    create .venv, install the pinned requirements, run the workflow on the demo data
#   make test   the same set-up (plus .venv-slurm, Debian's chromium for the browser tests and Debian's
#               Slurm + munge for the cluster test), then the test suite
#   make slurm-env   .venv-slurm: .venv's packages plus Snakemake's SLURM executor plugin, for clusters
PYTHON ?= python3
VENV ?= .venv
SLURM_VENV ?= .venv-slurm
CORES ?= all
STAMP := $(VENV)/.requirements-installed
SLURM_STAMP := $(SLURM_VENV)/.requirements-installed

.PHONY: run test system-deps slurm-env lint format readme-figures clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# The SLURM plugin lives in its own venv: with it installed, every Snakemake call on a machine with
# Slurm's client tools but no answering controller waits ~9 s (README, "Run on a cluster").
# .venv-slurm sees .venv's packages through a .pth file, so torch is not installed twice.
$(SLURM_STAMP): $(STAMP) requirements-slurm.txt
	$(PYTHON) -m venv $(SLURM_VENV)
	$(SLURM_VENV)/bin/python scripts/slurm/link_venv.py $(VENV)
	$(SLURM_VENV)/bin/pip install --quiet -r requirements-slurm.txt
	touch $@

slurm-env: $(SLURM_STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(STAMP) $(SLURM_STAMP) system-deps
	$(VENV)/bin/python -m pytest -v tests

# Debian's chromium + chromium-driver for the explorer's real-browser tests, and slurmctld, slurmd,
# slurm-client and munge for the cluster test (apt-get when root).
system-deps:
	scripts/install_system_deps.sh

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile rules/

format: $(STAMP)
	$(VENV)/bin/snakefmt Snakefile rules/

# The README's pictures: the demo run's outputs, downscaled for the page.
readme-figures: run system-deps
	$(VENV)/bin/python scripts/make_readme_figures.py results docs
	$(VENV)/bin/python scripts/screenshot_page.py results/explorer.html docs/demo-explorer.png --hover --height 880

clean:
	rm -rf results .snakemake

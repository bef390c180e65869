# tsne-atlas: two commands do all set-up on a fresh machine.
#   make run    create .venv, install the pinned requirements, run the workflow on the demo data
#   make test   the same set-up (plus Debian's chromium for the browser tests), then the test suite
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
STAMP := $(VENV)/.requirements-installed

.PHONY: run test system-deps lint format readme-figures clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(STAMP) system-deps
	$(VENV)/bin/python -m pytest -v tests

# Debian's chromium + chromium-driver for the explorer's real-browser tests (apt-get when root).
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

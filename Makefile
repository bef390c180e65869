# tsne-atlas: two commands do all set-up on a fresh machine.
#   make run    create .venv, install the pinned requirements, run the workflow on the demo data
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint format readme-figures clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -v tests

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile rules/

format: $(STAMP)
	$(VENV)/bin/snakefmt Snakefile rules/

# The README's pictures: the demo run's outputs, downscaled for the page.
readme-figures: run
	$(VENV)/bin/python scripts/make_readme_figures.py results docs

clean:
	rm -rf results .snakemake

# Two commands for a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.installed

PYDIRS := compressflow scripts tests $(wildcard benchmarks)

.PHONY: run test test-slow lint format rulegraph paper results-doc clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(SNAKEMAKE) --profile profiles/default --cores all

# One pytest process. It used to be three, around a SIGSEGV after tests/test_runtimes.py; the cause (an
# openvino.Core per call, most likely: upstream openvinotoolkit/openvino#35338) is fixed in runtimes/openvino.core
# (docs/segfault.md). pytest's faulthandler prints the Python traceback of any crash.
test: $(STAMP)
	$(PY) -m pytest -q --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check $(PYDIRS)
	$(VENV)/bin/ruff format --check $(PYDIRS)
	$(VENV)/bin/snakefmt --check Snakefile rules
	$(SNAKEMAKE) --lint --cores 1

format: $(STAMP)
	$(VENV)/bin/ruff format $(PYDIRS)
	$(VENV)/bin/ruff check --fix $(PYDIRS)
	$(VENV)/bin/snakefmt Snakefile rules

# Tables, figures and the HTML report again from the artifacts already built: no retraining.
paper: $(STAMP)
	$(SNAKEMAKE) --profile profiles/default --cores all --forcerun make_report --allowed-rules make_report record_environment \
		results/report/summary.csv results/provenance/environment.txt
	$(SNAKEMAKE) --profile profiles/default --cores 1 --report results/report/report.html

# docs/results.md's "The study (latest run)" section again from results/report/*.csv (after a run of config/study.yaml).
results-doc: $(STAMP)
	$(PY) benchmarks/results_md.py --results results --doc docs/results.md

rulegraph: $(STAMP)
	$(SNAKEMAKE) --rulegraph --cores 1 | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results logs .snakemake

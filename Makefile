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

# Three pytest processes. With test_runtimes (ONNX Runtime, OpenVINO, NNCF) in the same process as the
# rest of the suite, that process died with SIGSEGV in the interpreter's eval loop in the first test after
# test_runtimes, whichever file followed it (test_slurm, test_stale; 2026-12-01, three times, once under gdb;
# test_runtimes passes alone). Not diagnosed further: a native library's state corrupts the process later.
# test_slurm runs beside the rest: it spends its ~100 s waiting on sbatch polls (it skips without SLURM).
# Its output is shown when it ends; the target fails if any of the three failed.
SLURM_LOG := .pytest-slurm.log
test: $(STAMP)
	@$(PY) -m pytest -q tests/test_slurm.py > $(SLURM_LOG) 2>&1 & slurm=$$!; \
	$(PY) -m pytest -q --durations=15 --ignore=tests/test_slurm.py --ignore=tests/test_runtimes.py; rest=$$?; \
	$(PY) -m pytest -q tests/test_runtimes.py; runtimes=$$?; \
	wait $$slurm; slurm=$$?; echo "--- tests/test_slurm.py (ran beside the rest)"; cat $(SLURM_LOG); \
	test $$rest -eq 0 && test $$runtimes -eq 0 && test $$slurm -eq 0

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

# docs/results.md's "Default config (latest run)" section again from results/report/*.csv (after `make run`).
results-doc: $(STAMP)
	$(PY) benchmarks/results_md.py --results results --doc docs/results.md

rulegraph: $(STAMP)
	$(SNAKEMAKE) --rulegraph --cores 1 | dot -Tsvg > docs/rulegraph.svg

clean:
	rm -rf results logs .snakemake

# Two commands: `make run` installs and starts okrsnap, `make test` installs and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install install-test bench screenshots audit clean cluster-test

run: $(VENV)/.installed   # ARGS="--verbose" shows every process's output here
	@$(BIN)/okrsnap up $(ARGS)

test: $(VENV)/.installed-test
	$(BIN)/pytest

bench: $(VENV)/.installed-test   # BENCH_ARGS="--parts weekview --kr 10000" re-measures some parts
	$(BIN)/python -m bench $(BENCH_ARGS)

screenshots: $(VENV)/.installed-test   # the README's screenshots, from the browser tests' stack
	OKRSNAP_WRITE_SCREENSHOTS=1 $(BIN)/pytest tests/e2e/browser -q -k "screenshots_for_the_readme"

chaos: $(VENV)/.installed-test   # the long chaos run (>= 10,000 Check-ins, 20-40 min); rewrites RELIABILITY.md's figures
	$(BIN)/python -m tests.chaos.long_run --target 10000

cluster-test: $(VENV)/.installed-test   # three RabbitMQ nodes, the leader stopped and killed under load (6-10 min); rewrites RELIABILITY.md's cluster figures
	OKRSNAP_CLUSTER_TEST=1 OKRSNAP_CLUSTER_ROUNDS=2 OKRSNAP_CLUSTER_WRITE_FIGURES=1 $(BIN)/pytest tests/cluster -s -p no:cacheprovider

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

audit:   # known vulnerabilities in constraints.txt (pip-audit); skipped with a message when offline
	PYTHON=$(PYTHON) .ci/audit

$(VENV)/bin/python:
	@echo "[setup] creating the virtual environment $(VENV) ..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip

# The exact releases of constraints.txt: every install runs what CI tested.
$(VENV)/.installed: pyproject.toml constraints.txt | $(VENV)/bin/python
	@echo "[setup] installing okrsnap and its dependencies into $(VENV) (about a minute the first time) ..."
	@start=$$(date +%s); $(BIN)/pip install --quiet --no-compile -c constraints.txt -e . && \
		echo "[setup] installed in $$(( $$(date +%s) - start )) s"
	@touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) .venv-audit var .pytest_cache

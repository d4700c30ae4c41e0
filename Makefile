# pyrollouts: the entry points. `make demo` and `make test` work on a fresh clone: they create the
# virtualenv (.venv) and install what they need; slow tool builds are cached outside the repo.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test test-fast lint demo demo-analysis demo-canary clean screenshots

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite: lint, then every test (unit, scenarios on every runtime, local integration, k8s,
# and the Terraform path: OpenTofu applying deploy/terraform with the providers `make tools` builds).
# Only the soak tests are left out (`make soak`).
test: install tools lint
	$(BIN)/pytest -q -p no:cacheprovider -m "not soak" $(PYTEST_ARGS)

# Without the Kubernetes control plane (for a quick loop while developing).
test-fast: install lint
	$(BIN)/pytest -q -p no:cacheprovider -m "not k8s and not terraform and not soak" $(PYTEST_ARGS)

# Refresh docs/img/dashboard-paused.png and dashboard-analysis.png from the browser tests (tests
# leave docs/ alone otherwise).
screenshots: install browser
	PYROLLOUTS_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/web/test_browser.py \
		tests/web/test_canary_browser.py \
		-k "promote_from_the_page or analysis_runs_and_the_run_page or canary_steps_and_measured_split"

# DEMO=canary: the canary story (measured traffic shares at each step, a bad version aborted).
demo: install
	$(BIN)/rollouts demo $(if $(DEMO),--$(DEMO)) $(DEMO_ARGS)

# The story with automated analysis: a broken version aborted and a good one promoted by the error
# rate the local proxy measured (no Prometheus).
demo-analysis: install
	$(BIN)/rollouts demo --analysis $(DEMO_ARGS)

demo-canary: install
	$(BIN)/rollouts demo --canary $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build

-include mk/*.mk

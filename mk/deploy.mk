# Installing on a cluster (issue 6): the Helm chart's release files, the Python packages.
#   make chart        dist/chart/pyrollouts-<version>.tgz and dist/chart/index.yaml (a chart repository:
#                     serve dist/chart over HTTP, or copy it to a web server; CHART_REPO_URL=https://...
#                     writes absolute URLs into the index, else they are relative to the repository)
#   make chart-crds   regenerate deploy/helm/pyrollouts/crds/ from pyrollouts.model.crd
#   make dist         dist/pyrollouts-<version>-py3-none-any.whl and dist/pyrollouts-<version>.tar.gz
#                     (DIST_OUT=dir to write elsewhere)
.PHONY: chart chart-crds dist

include tools/versions.env
CHART_DIR := deploy/helm/pyrollouts
CHART_OUT := dist/chart
CHART_REPO_URL ?=
HELM_BIN := $(shell bash tools/build-tools.sh --print-dir)/helm-$(HELM_VERSION)/helm

chart-crds: install
	$(BIN)/python deploy/helm/gen_crds.py

# Needs the helm that `make tools` builds, but does not build it (a test calls this target, and must
# never start a long build): without it, it stops and says so.
chart: install
	@test -x $(HELM_BIN) || { echo "make chart: $(HELM_BIN) is missing: run make tools" >&2; exit 1; }
	@$(BIN)/python deploy/helm/gen_crds.py --check
	$(HELM_BIN) lint --strict $(CHART_DIR)
	@mkdir -p $(CHART_OUT)
	$(HELM_BIN) package $(CHART_DIR) --destination $(CHART_OUT)
	$(HELM_BIN) repo index $(CHART_OUT) $(if $(CHART_REPO_URL),--url $(CHART_REPO_URL))
	@echo "chart repository in $(CHART_OUT): $$(ls $(CHART_OUT))"

DIST_OUT ?= dist
# --no-isolation: the build backend (hatchling) is a dev dependency already in the venv, so the build
# needs no network and takes a second.
dist: install
	@rm -f $(DIST_OUT)/pyrollouts-*.whl $(DIST_OUT)/pyrollouts-*.tar.gz
	$(BIN)/python -m build --no-isolation --wheel --sdist --outdir $(DIST_OUT) .

# Kubernetes test tools (issue 8): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok and helm, built from Go modules into ~/.cache/pyrollouts/tools (outside the repo);
# also OpenTofu and a filesystem mirror of the Terraform providers it needs (deploy/terraform), and
# Argo Rollouts' own kubectl plugin and controller (the parity and side-by-side tests).
# `make tools` is a quick no-op once they are built; versions are pinned in tools/versions.env.
.PHONY: tools cluster-up cluster-down

tools:
	@bash tools/build-tools.sh

# A control plane for manual use, left running in the background; prints the KUBECONFIG export.
cluster-up: install tools
	@PYTHONPATH=tests $(BIN)/python -m harness.k8s_cluster up

cluster-down: install
	@PYTHONPATH=tests $(BIN)/python -m harness.k8s_cluster down

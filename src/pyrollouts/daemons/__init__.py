"""The long-running processes, each wired from the layers below: ``local_server`` (the local
runtime, its proxy, the rollout controller, the HTTP API and the dashboard) and ``operator`` (the
rollout controller in a Kubernetes cluster: caches, leader election, metrics and health). The CLI
starts them (``rollouts server``, ``rollouts controller``)."""

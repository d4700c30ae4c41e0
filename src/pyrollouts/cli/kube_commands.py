"""`rollouts controller` (the operator on Kubernetes) and `rollouts install-crds`.

The operator's flags are Argo's: --kubeconfig, --namespace, --instance-id, --leader-elect,
--metrics-port, --healthz-port, --rollout-threads, --rollout-resync, --loglevel, --logformat, and
the leader election timings; and one of ours, --rollout-coalesce (a Rollout's changes within that
window make one reconcile: Argo's controller gets much the same from its client-side throttling,
which lengthens its reconciles under load so that changes pile up behind them; issue 15). This
module is where the app layer hands the RolloutController to the Kubernetes runtime.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ..controller import Clock, RolloutController
from ..controller.analysisruns import AnalysisRunController, Controllers
from ..controller.controller import DEFAULT_COALESCE_SECONDS
from ..model.cluster import ClusterError, Obj
from .client import CliError
from .common import echo, parse_duration, state


def _bool(value: str, flag: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise typer.BadParameter(f"{flag} {value!r}: use true or false")


def controller(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Kubeconfig file (else as kubectl finds it).")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="Only this namespace (default: all).")] = "",
    instance_id: Annotated[
        str, typer.Option("--instance-id", help="Handle only objects labelled with this id.")
    ] = "",
    leader_elect: Annotated[
        str, typer.Option("--leader-elect", help="Leader election with a Lease: true|false.")
    ] = "true",
    leader_election_namespace: Annotated[
        str,
        typer.Option(
            "--leader-election-namespace",
            help="Namespace of the Lease (default: $POD_NAMESPACE, else --namespace, else default).",
        ),
    ] = "",
    lease_duration: Annotated[str, typer.Option("--leader-election-lease-duration")] = "15s",
    renew_deadline: Annotated[str, typer.Option("--leader-election-renew-deadline")] = "10s",
    retry_period: Annotated[str, typer.Option("--leader-election-retry-period")] = "2s",
    metrics_port: Annotated[int, typer.Option("--metrics-port")] = 8090,
    healthz_port: Annotated[int, typer.Option("--healthz-port")] = 8080,
    listen_address: Annotated[
        str, typer.Option("--listen-address", help="Address for metrics and health.")
    ] = "0.0.0.0",
    rollout_threads: Annotated[int, typer.Option("--rollout-threads", min=1)] = 10,
    rollout_resync: Annotated[
        int,
        typer.Option(
            "--rollout-resync", min=0, help="Seconds between resyncs of every Rollout (Argo's; 0: never)."
        ),
    ] = 900,
    rollout_coalesce: Annotated[
        float,
        typer.Option(
            "--rollout-coalesce",
            min=0,
            help="Seconds a Rollout's changes are gathered into one reconcile (0: one per change).",
        ),
    ] = DEFAULT_COALESCE_SECONDS,
    loglevel: Annotated[str, typer.Option("--loglevel", help="debug|info|warn|error")] = "info",
    logformat: Annotated[str, typer.Option("--logformat", help="text|json")] = "text",
    test_clock: Annotated[
        bool,
        typer.Option("--test-clock", hidden=True, help="Tests only: POST /debug/clock on the healthz port."),
    ] = False,
) -> None:
    """Run the rollout controller against a Kubernetes cluster (the operator)."""
    from ..daemons.operator import run_operator
    from ..runtimes.kubernetes.leader import LeaseTimings

    st = state(ctx)
    timings = LeaseTimings(
        parse_duration(lease_duration), parse_duration(renew_deadline), parse_duration(retry_period)
    )
    try:
        timings.check()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if logformat not in ("text", "json"):
        raise typer.BadParameter(f"--logformat {logformat!r}: use text or json")
    clock = Clock()

    def factory(
        cluster: object, ns: str | None, iid: str | None, workers: int, on_reconcile: object
    ) -> Controllers:
        rollouts = RolloutController(
            cluster,  # type: ignore[arg-type]
            clock,
            namespace=ns,
            instance_id=iid,
            workers=workers,
            on_reconcile=on_reconcile,  # type: ignore[arg-type]
            coalesce=rollout_coalesce,
        )
        runs = AnalysisRunController(cluster, clock, namespace=ns, instance_id=iid)  # type: ignore[arg-type]
        return Controllers(rollouts, runs)

    code = run_operator(
        kubeconfig or st.kubeconfig,
        context or st.context,
        namespace or None,
        instance_id or None,
        _bool(leader_elect, "--leader-elect"),
        metrics_port,
        healthz_port,
        rollout_threads,
        loglevel,
        logformat,
        factory=factory,
        listen_address=listen_address,
        lease_namespace=leader_election_namespace or None,
        timings=timings,
        advance_clock=clock.advance if test_clock else None,
        resync_seconds=float(rollout_resync),
    )
    raise typer.Exit(code)


def install_crds(
    ctx: typer.Context,
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", help="Kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the CRDs as YAML instead of applying them.")
    ] = False,
) -> None:
    """Install (or update) the Rollout CRD and the analysis/experiment CRDs Argo's tools expect."""
    from ..model.crd import crds

    objs: list[Obj] = crds()
    if print_only:
        import yaml

        echo(yaml.safe_dump_all(objs, sort_keys=False))
        return
    from ..runtimes.kubernetes.cluster import make_client
    from ..runtimes.kubernetes.crds import install_crds as install

    st = state(ctx)

    async def go() -> list[str]:
        client = make_client(kubeconfig or st.kubeconfig, context or st.context)
        try:
            return await install(client, objs)
        finally:
            await client.close()

    try:
        names = asyncio.run(go())
    except ClusterError as exc:
        raise CliError(str(exc)) from None
    for n in names:
        echo(f"customresourcedefinition.apiextensions.k8s.io/{n} configured")

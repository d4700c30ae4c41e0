"""`rollouts dashboard [-p 3100]`: the dashboard of the current backend, on loopback by default.

local: a relay to the local server's own dashboard (web/relay.py), which adds the CLI's token.
kubernetes: the dashboard over a KubeCluster with the kubeconfig's credentials, its caches watching
Rollouts, ReplicaSets, Services and Pods in every namespace, or with ``--namespace NS`` in that one
alone (as ``rollouts controller --namespace`` scopes itself): then no Namespace list is made and any
path of another namespace answers 403, so credentials that reach one namespace (a Role) suffice.
Beyond loopback a token is required (--token-file or ROLLOUTS_TOKEN); open the page once as
``?token=TOKEN``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from ..daemons.dashboard import DashboardError, serve
from .client import CliError, read_token
from .common import err, state

#: A Kubernetes namespace name (an RFC 1123 label).
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to serve the dashboard on.")] = 3100,
    address: Annotated[
        str, typer.Option("--address", help="Address to bind; beyond loopback it needs --token-file.")
    ] = "127.0.0.1",
    # Deliberately no ROLLOUTS_NAMESPACE default (unlike the other verbs' -n): the kubectl plugin
    # exports the context's namespace there, and that must not quietly narrow the dashboard.
    namespace: Annotated[
        str,
        typer.Option(
            "--namespace",
            "-n",
            help="Kubernetes backend: serve only this namespace, watching nothing else and listing "
            "no namespaces (enough with a Role in it). Default: all namespaces.",
        ),
    ] = "",
) -> None:
    """Serve the rollouts dashboard for the current backend (local server or Kubernetes)."""
    st = state(ctx)
    if namespace and not _NAMESPACE_NAME.fullmatch(namespace):
        raise typer.BadParameter(
            f"--namespace {namespace!r} is not a namespace name (lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit)"
        )
    token = read_token(st.token_file)
    try:
        asyncio.run(
            serve(
                st.backend_name,
                host=address,
                port=port,
                server=st.server,
                token=token,
                kubeconfig=st.kubeconfig,
                context=st.context,
                namespace=namespace or None,
            )
        )
    except DashboardError as exc:
        raise CliError(exc.message, exc.details) from None
    except KeyboardInterrupt:
        err().print("dashboard stopped", markup=False)

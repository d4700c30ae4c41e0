"""What every verb shares: the global options, the backend, output helpers, option types."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Console

from .client import DEFAULT_SERVER, Backend, HttpBackend, read_token

BACKENDS = ("local", "kubernetes")


@dataclass
class State:
    """The global options, kept on the click context."""

    server: str = DEFAULT_SERVER
    token_file: str | None = None
    backend_name: str = "local"
    kubeconfig: str | None = None  # the Kubernetes backend's connection (kube_backend.py)
    context: str | None = None
    _backend: Backend | None = field(default=None, repr=False)

    def backend(self) -> Backend:
        """The backend the verbs talk to, made on first use (verbs like lint need none)."""
        if self._backend is None:
            if self.backend_name == "kubernetes":
                from .kube_backend import KubeBackend

                self._backend = KubeBackend(self.kubeconfig, self.context)
                return self._backend
            self._backend = HttpBackend(self.server, read_token(self.token_file))
        return self._backend


def state(ctx: typer.Context) -> State:
    """The global State of this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def out() -> Console:
    """A console on the current stdout (looked up per call, so tests capturing stdout see it)."""
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def err() -> Console:
    """A console on the current stderr."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def echo(text: str) -> None:
    """Plain text to stdout, no markup."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


Namespace = Annotated[
    str,
    typer.Option("--namespace", "-n", envvar="ROLLOUTS_NAMESPACE", help="Namespace of the objects."),
]


def kind_display(kind: str) -> str:
    """kubectl's resource prefix: rollout.argoproj.io, analysisrun.argoproj.io, service, pod, ..."""
    from ..model import kinds, names

    known = kinds.KINDS.get(kind)
    if known is not None and known.group == names.GROUP:
        return f"{kind.lower()}.{names.GROUP}"
    return kind.lower()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """A duration like 30s, 5m, 1h30m or a plain number of seconds; BadParameter otherwise."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        n = float(m.group(1))
        total += {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise typer.BadParameter(f"{text!r} is not a duration (examples: 30s, 5m, 1h30m)")
    return total

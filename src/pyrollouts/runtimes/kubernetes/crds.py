"""Install the CustomResourceDefinitions (Rollout, and the analysis/experiment kinds Argo's tools
wait for) with server-side apply, and wait until the API server serves them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from ...model.cluster import ClusterError
from .resources import CRD

FIELD_MANAGER = "rollouts-install-crds"


def _established(crd: dict[str, Any]) -> bool:
    for cond in (crd.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Established" and cond.get("status") == "True":
            return True
    return False


async def install_crds(
    client: AsyncClient, crds: Sequence[dict[str, Any]], *, timeout: float = 60.0
) -> list[str]:
    """Apply each CRD (creating or updating it) and wait until all are Established.

    Returns the names applied. Raises ClusterError with the API server's message when one is refused
    or does not become Established within ``timeout`` seconds."""
    applied: list[str] = []
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            await client.patch(
                CRD, name, crd, patch_type=PatchType.APPLY, field_manager=FIELD_MANAGER, force=True
            )
        except ApiError as exc:
            raise ClusterError(f"CustomResourceDefinition {name} was refused: {exc.status.message}") from None
        applied.append(name)
    deadline = time.monotonic() + timeout
    pending = set(applied)
    while pending:
        for name in sorted(pending):
            obj = dict((await client.get(CRD, name)).to_dict())
            if _established(obj):
                pending.discard(name)
        if pending:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"CustomResourceDefinitions not Established after {timeout:.0f}s: {sorted(pending)}"
                )
            await asyncio.sleep(0.2)
    return applied

"""Helpers of the CLI tests: the seed's manifest (examples/super-hello.yaml) in a namespace of its
own on free Service ports. The server itself is harness.serverharness.ServerProcess."""

from __future__ import annotations

import re
from pathlib import Path

from harness.serverharness import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "super-hello.yaml"


def seed_manifest(
    namespace: str,
    *,
    prod: int | None = None,
    preview: int | None = None,
    replicas: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[str, int, int]:
    """The seed's manifest in another namespace on free Service ports: (text, prod, preview)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    prod = prod or free_port()
    preview = preview or free_port()
    text = text.replace("my-app", namespace)
    text = re.sub(r"(\bport:\s*)8088\b", rf"\g<1>{prod}", text)
    text = re.sub(r"(\bport:\s*)8089\b", rf"\g<1>{preview}", text)
    if replicas is not None:
        text = text.replace("replicas: 3", f"replicas: {replicas}")
    for k, v in (extra_env or {}).items():
        text = text.replace(
            '              value: "VERSION V2"\n',
            f'              value: "VERSION V2"\n            - name: {k}\n              value: "{v}"\n',
        )
    return text, prod, preview

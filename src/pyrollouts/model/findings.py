"""Findings: what is wrong in a manifest, where, and what to do about it.

Every check in ``model`` (YAML loading, parsing, validation, lint) reports ``Finding`` values, so the
CLI, the local runtime's apply and the Kubernetes runtime's InvalidSpec condition all speak the same
language: file, line, field path, problem, fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

#: ``error``: Kubernetes or Argo would refuse the object, so apply refuses it too.
#: ``warning``: accepted, but probably not what was meant (or only one runtime can run it).
Severity = Literal["error", "warning"]

ERROR: Severity = "error"
WARNING: Severity = "warning"

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")


@dataclass(frozen=True)
class Finding:
    """One problem in a manifest.

    ``line`` is 1-based and None when unknown (objects that did not come from a file). ``path`` is
    the field path in the document, e.g. ``spec.template.spec.containers[0].image`` ("" for the
    whole document).
    """

    source: str
    line: int | None
    path: str
    severity: Severity
    problem: str
    fix: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        parts = [p for p in (where, self.path) if p]
        head = ": ".join(parts)
        body = f"{self.problem} ({self.fix})" if self.fix else self.problem
        return f"{head}: {body}" if head else body


class ManifestError(Exception):
    """A manifest that cannot be read at all (bad YAML, bad encoding, too large, unknown kind)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        super().__init__("\n".join(str(f) for f in self.findings) or "invalid manifest")


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """Only the findings that make an object unacceptable."""
    return [f for f in findings if f.severity == ERROR]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in reading order: by file, then line (unknown lines last), then path."""
    return sorted(findings, key=lambda f: (f.source, f.line if f.line is not None else 1 << 30, f.path))


def format_path(parts: Sequence[str | int]) -> str:
    """``("spec", "containers", 0, "name")`` -> ``spec.containers[0].name``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not _PLAIN_KEY.match(p):
            # Keys like annotation names contain dots; quote them so the path stays unambiguous.
            out += f'["{p}"]'
        elif out:
            out += f".{p}"
        else:
            out = p
    return out

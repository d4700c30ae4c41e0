"""Escaping for the dashboard's HTML: one function, used by every renderer."""

from __future__ import annotations

import html
from typing import Any


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)

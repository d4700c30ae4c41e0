"""Escaping for the dashboard's HTML, used by every renderer, and the log table they share."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def newest_first_table(
    items: Sequence[T], css_class: str, columns: Sequence[str], row: Callable[[T], str], none: str
) -> str:
    """A table of ``items`` newest first, as a log reads (``row`` gives each one's ``<tr>``), or
    the ``none`` sentence when there are none."""
    if not items:
        return f'<p class="none">{none}</p>'
    head = "".join(f"<th>{c}</th>" for c in columns)
    rows = "".join(row(item) for item in reversed(items))
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'

"""Label selectors as clients type them (``app=web,tier=front``): the one parser the HTTP API's
``labelSelector`` and the CLI's ``-l`` use."""

from __future__ import annotations


def parse_label_selector(text: str | None) -> dict[str, str] | None:
    """``key=value`` pairs joined by ``,`` (``==`` is taken as ``=``) as a dict; None for none.
    ValueError naming the selector for anything else (set-based and ``!=`` selectors included)."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or "!" in key:
            raise ValueError(f"label selector '{text}': only key=value pairs joined by ',' are supported")
        out[key.strip()] = value.strip().lstrip("=")
    return out

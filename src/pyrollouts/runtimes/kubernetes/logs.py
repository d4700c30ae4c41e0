"""Structured logs for the operator: structlog over the standard library's logging.

Every logger of the process (the controller's, lightkube's, ours) goes through one structlog
formatter, so ``--logformat json`` gives one JSON object per line and ``text`` a key=value line,
as Argo's controller offers.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(loglevel: str = "info", logformat: str = "text") -> None:
    """Send every log record to stderr as text (key=value) or JSON; ValueError on an unknown value."""
    level = LEVELS.get(loglevel.lower())
    if level is None:
        raise ValueError(f"--loglevel {loglevel!r}: use one of debug, info, warn, error")
    if logformat not in ("text", "json"):
        raise ValueError(f"--logformat {logformat!r}: use text or json")
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if logformat == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if logformat == "json" else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The HTTP client logs every request at INFO: useful only when debugging.
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _identity(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    return event

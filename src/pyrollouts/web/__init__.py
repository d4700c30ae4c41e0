"""The dashboard and its Argo-compatible HTTP API (/api/v1), over any Cluster.

``dashboard_routes`` mounts it into the local server's application; ``make_dashboard_app`` is the
standalone application of ``rollouts dashboard``.
"""

from ..service.guard import is_loopback
from .app import check_bind, dashboard_context, dashboard_routes, install, make_dashboard_app
from .rolloutinfo import InfoBuilder, argo_info, available_actions

__all__ = [
    "InfoBuilder",
    "argo_info",
    "available_actions",
    "check_bind",
    "dashboard_context",
    "dashboard_routes",
    "install",
    "is_loopback",
    "make_dashboard_app",
]

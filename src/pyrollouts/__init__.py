"""pyrollouts: progressive delivery for services, Argo Rollouts-compatible."""

__version__ = "0.1.0"

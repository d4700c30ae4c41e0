"""The reconcile loop shared by both runtimes."""

from .clock import Clock
from .controller import RolloutController

__all__ = ["Clock", "RolloutController"]

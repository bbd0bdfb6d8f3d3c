"""The in-process SDK for agent code: :class:`RunManager` records runs and steps, never raising."""

from hypermindlabs.sdk.run_manager import Run, RunManager, RunManagerStats, Step

__all__ = ["Run", "RunManager", "RunManagerStats", "Step"]

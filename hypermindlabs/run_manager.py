"""Contract path kept for importers: the in-process SDK lives in :mod:`hypermindlabs.sdk`."""

from hypermindlabs.sdk import Run, RunManager, RunManagerStats, Step

__all__ = ["Run", "RunManager", "RunManagerStats", "Step"]

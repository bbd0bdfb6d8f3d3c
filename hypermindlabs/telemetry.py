"""Contract path kept for importers: stored events → OTel lives in :mod:`hypermindlabs.export.telemetry`."""

from hypermindlabs.export.providers import (
    GuardedSpanExporter,
    LossCounter,
    RunExemplarFilter,
    make_meter_provider,
    make_tracer_provider,
    metric_views,
)
from hypermindlabs.export.telemetry import Telemetry

__all__ = [
    "GuardedSpanExporter",
    "LossCounter",
    "RunExemplarFilter",
    "Telemetry",
    "make_meter_provider",
    "make_tracer_provider",
    "metric_views",
]

"""What leaves the store for Prometheus and OpenTelemetry: capped labels, metrics, exemplars, spans.

- :mod:`~hypermindlabs.export.telemetry`: stored events → OTel metrics and spans.
- :mod:`~hypermindlabs.export.cardinality`: the label budgets (a policy, shared by every process).
- :mod:`~hypermindlabs.export.exposition`: OTel data → Prometheus text / OpenMetrics with exemplars.
"""

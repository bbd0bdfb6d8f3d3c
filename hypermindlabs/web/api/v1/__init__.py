"""``/api/v1``: one blueprint per resource (events, runs, metrics, failures, alerts)."""

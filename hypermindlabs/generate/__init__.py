"""Generators of committed artifacts (Grafana dashboards, Prometheus rules): pure functions of the
conventions module, written deterministically so CI can regenerate and diff."""

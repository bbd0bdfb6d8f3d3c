"""The pure core: the event contract, times, vocabulary, field errors, filters and the latency sketch.

No I/O, no clock, no environment: every other package builds on these, and nothing here imports
SQLAlchemy, Flask or the OpenTelemetry SDK (``tests/test_architecture.py`` checks it).
"""

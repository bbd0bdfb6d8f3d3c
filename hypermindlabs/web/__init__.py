"""The Flask application: JSON API (``web/api/v1/<resource>.py``), ``/metrics`` and pages.

:func:`create_app` takes what the composition root built and mutates nothing of it.
"""

from hypermindlabs.web.app import create_app

__all__ = ["create_app"]

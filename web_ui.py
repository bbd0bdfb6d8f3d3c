"""Entry point for WSGI servers and ``flask --app web_ui run``: exposes the app factory."""

from hypermindlabs.web import create_app

__all__ = ["create_app"]

"""``hypermind-obs``: the command line (serve, ingest, demo, triage, reclassify, rebuild-rollups)."""

from hypermindlabs.cli.main import build_parser, main, serve

__all__ = ["build_parser", "main", "serve"]

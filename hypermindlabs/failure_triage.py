"""Contract path kept for importers: failure triage lives in the :mod:`hypermindlabs.triage` package."""

from hypermindlabs.triage import *  # noqa: F403 - a facade: the package's surface, unchanged
from hypermindlabs.triage import __all__ as __all__

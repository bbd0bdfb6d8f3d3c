"""The JSON API, one module per resource under a version package."""

"""The package version, in one place; nothing here imports the package root."""

__version__ = "0.1.0"

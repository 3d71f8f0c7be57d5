"""Layered Python environments built incrementally as a doit task graph."""

__version__ = "0.1.0"

"""Locking a layer with uv against the pins of the layers below it; the PEP 751 lock files."""

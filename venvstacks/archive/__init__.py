"""Reproducible archives and the safe extractor: every archive venvstacks writes or unpacks
(published layers, runtimes packed from a local CPython, runtime downloads) goes through here.
Knows nothing of stacks or layers."""

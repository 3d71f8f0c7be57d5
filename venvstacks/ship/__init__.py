"""Getting built layers to a target: local export, reproducible archives and their metadata,
unpacking and deploying."""

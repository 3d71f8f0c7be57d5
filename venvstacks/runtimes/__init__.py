"""Where a layer's CPython comes from: request and policy, sources, local interpreters, the cache."""

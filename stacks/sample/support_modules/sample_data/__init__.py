"""Support package for scipy-client: a small data set."""

POINTS = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)]

"""scipy-client: fits a line with scipy and builds (but does not send) an HTTP request."""

"""The HTTP layer: the only package that knows about FastAPI, status codes and headers."""

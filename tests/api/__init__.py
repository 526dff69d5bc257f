"""Tests of the HTTP API as a whole: schemathesis over /openapi.json."""

"""atheris harnesses for every parser of untrusted input (RELIABILITY.md A18)."""

"""The hostile-input corpus (RELIABILITY.md section 3 A), generated at test time by ``make.py``."""

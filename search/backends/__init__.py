"""Search-index adapters: sqlite (embedded default) and elasticsearch."""

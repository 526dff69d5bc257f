"""The search index: a derived, rebuildable view of what the object store holds."""

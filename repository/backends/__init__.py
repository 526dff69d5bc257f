"""Object-store adapters, one module per technology: memory, filesystem, s3."""

"""The core of Ologies: domain model, object-store port and adapters, and the Repository service.

Nothing in this package knows about HTTP, boto3 or Elasticsearch; adapters for those live in
``repository.backends`` and ``search.backends`` and are chosen by URL (``repository.registry``).
"""

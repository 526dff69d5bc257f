"""The ingest pipeline (source -> sniff -> convert -> build -> store) and the ``ologies`` CLI."""

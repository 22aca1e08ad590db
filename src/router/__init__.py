"""Careline: the routing service (decisions, ingest, workers, API, CLI)."""

__version__ = "0.1.0"

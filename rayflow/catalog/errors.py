"""Catalog errors that commands catch without opening a catalog: importing them must not import
qdrant_client (0.6 s of CPU), which ``rayflow.catalog.store`` does."""

from __future__ import annotations

from rayflow.catalog.local_records import CatalogBusy as CatalogBusy


class ModelMismatch(RuntimeError):
    """Vectors (or a query encoder) from a model other than the one the catalog was built with."""

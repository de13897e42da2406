"""Names of the catalog's collections and private payload keys (described in
:mod:`rayflow.catalog.schema`). Plain strings, kept apart from the schema so that
reading records (:mod:`rayflow.catalog.local_records`) needs no ``qdrant_client``."""

CLIPS = "clips"
MOMENTS = "moments"

FILTER_KEY = "_f"
"""Payload key of the flat filter fields (same layout in both collections)."""
TEXT_KEY = "_text"
"""Payload key of the keyword-searchable text; carries the BM25-scored text index."""
PRIVATE_KEYS = (FILTER_KEY, TEXT_KEY)
"""Payload keys that are not part of the ClipRecord (stripped before validation)."""

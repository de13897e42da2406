"""rayflow: ingest folders of footage into a searchable catalog on Ray + Prefect."""

__version__ = "0.1.0"

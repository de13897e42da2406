"""The editor's handoff: verified card offload with ASC MHL, timeline export.

No ray or prefect here: the CLI calls these as plain functions.
"""

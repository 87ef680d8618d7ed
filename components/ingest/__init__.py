"""Ingest: read CSV/Parquet/JSON Lines from local, http(s), gs:// or s3:// into one Parquet Dataset."""

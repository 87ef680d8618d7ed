"""Validate: infer a schema or check data against one; statistics, anomalies, HTML report."""

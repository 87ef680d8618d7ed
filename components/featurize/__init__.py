"""Featurize: per-entity window features in a Feast feature store, point-in-time correct training sets."""

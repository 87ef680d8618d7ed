"""Hyperparameter sweeps in plain KFP: trial settings for a ParallelFor, then pick the best model."""

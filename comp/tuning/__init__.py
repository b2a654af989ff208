"""Hyperparameter search with keras-tuner: search spaces and a cross-validated tuner."""

"""Data loading: tabular preprocessing and streaming, image datasets, demo data."""

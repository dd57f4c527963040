"""kit: a Kaggle competition starter kit on PyTorch."""

__version__ = "0.1.0"

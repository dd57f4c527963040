"""kit: a Kaggle competition starter kit on PyTorch."""

import os

# OpenMP threads (LightGBM, XGBoost, scikit-learn, torch) sleep when they run out of work
# instead of spinning on a core another process needs. Each runtime reads this once, when it
# loads, so it is set here, before any of them is imported; an explicit value wins.
# Measured and explained in kit/runtime/threads.py (scripts/bench_threads.py --wait-policies).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

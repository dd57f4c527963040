#!/usr/bin/env python
"""A finished run's submission from its fold checkpoints and preprocessors: no training.

    python scripts/predict.py --run runs/titanic/<run>              # -> <run>/predict/
    python scripts/predict.py --run RUN_DIR --data DIR --summary-json FILE
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script
from kit.predict import predict_main

if __name__ == "__main__":
    sys.exit(run_script(predict_main))

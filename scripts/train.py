#!/usr/bin/env python
"""Cross-validated training -> OOF scores -> a checked submission.

    python scripts/train.py --comp titanic            # real data in data/titanic/
    python scripts/train.py --comp titanic --demo     # synthetic data, no Kaggle account needed
    python scripts/train.py --help                    # every option
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing

from kit.cli import run_script, train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_script(train_main))

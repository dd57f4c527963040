"""A competition's own metric: copy this file to competitions/<slug>/metric.py and set
competition.metric = NAME in that folder's config.toml (kit/metrics/competition.py has the contract).

score(labels, pred) gets the targets (class indices into the run's sorted classes, or a
regression's values) and the predictions in the form SCORES names:
  "labels"         pred (N,) predicted class indices
  "probabilities"  pred (N, C) class probabilities
  "ranked"         pred (N, K) class indices, best guess first (the submission holds these,
                   space-separated, as the sample shows them)
  "values"         pred (N,) a regression's values
Give score() a third parameter `weight=None` to take per-row weights (N,) when a run has
them; a score() without it is refused weights, never silently unweighted.
"""

import numpy as np

NAME = "top3_accuracy"  # competition.metric names it; not a built-in's name
MODE = "max"  # "max": higher is better, "min": lower is better (required)
SCORES = "ranked"  # labels, probabilities, ranked or values
K = 3  # ranked only: guesses per row


def score(labels: np.ndarray, pred: np.ndarray) -> float:
    """The share of rows whose true class is among their K guesses (top-k accuracy)."""
    return float((pred == labels[:, None]).any(axis=1).mean())

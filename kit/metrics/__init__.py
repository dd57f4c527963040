"""How a run is scored.

registry.py (the built-in metrics: name -> score function, direction, what it scores),
competition.py (a competition's own metric.py, and resolve_metric: the one lookup of a
run's metric), cut_points.py (labels from cut points fitted on OOF predictions: qwk, and
thresholds for mcc / f1_macro on two classes).
Imports: kit.errors, kit.paths, kit.config, kit.hooks and each other, in that order.
"""

"""Models: one registry, and the modules that register into it.

Where to add a model kind: write a builder in the module of its family and decorate it
with `@register("name", kind=..., task=...)` (kit/models/registry.py says what the kinds
and the builders' arguments are):

    kit/models/tabular.py    mlp (torch), gbdt, linear, rf, extratrees, blend (scikit-learn)
    kit/models/boosters/   lgbm, xgb, catboost (each library's own training API and format)
    kit/models/vision.py     small_cnn, mnist_cnn, lenet, timm:<name>, torchvision:<name>
    kit/models/heads.py      image heads: find / replace (Xavier) / multi-head, param groups
    kit/models/weights.py    pretrained weights from a local file, never the network

Imports go one way: registry <- tabular, boosters, vision; heads <- weights <- vision.
"""

from kit.models import boosters, tabular, vision  # noqa: F401  (they register their kinds)
from kit.models.registry import (
    DATA_ARGS,
    MODELS,
    ModelEntry,
    build_model,
    check_params,
    get_entry,
    n_outputs,
    param_names,
    register,
)

__all__ = ["DATA_ARGS", "MODELS", "ModelEntry", "build_model", "check_params", "get_entry",
           "n_outputs", "param_names", "register"]

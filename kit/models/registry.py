"""The model registry: a dict plus a decorator. A miss lists the valid names.

Each builder takes the data-derived arguments positionally (sizes and the problem kind the
task knows: any of DATA_ARGS, by name) and the config's `model.params` as keyword-only
arguments; an unknown param is a ConfigError that
lists the builder's valid ones.

    model = build_model("mlp", n_numeric=7, cardinalities=[4, 3], n_outputs=1, hidden=[64])
    model = build_model("gbdt", n_numeric=7, cardinalities=[4, 3], problem="regression")

Builders live in kit/models/tabular.py, boosters.py and vision.py, which import this
module and nothing imports back; kit/models/__init__.py imports them all, so the registry is
complete on `import kit.models`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    kind: str  # "torch": trained by kit.training.trainer; "sklearn": an estimator with fit/predict_proba;
    # "booster": LightGBM / XGBoost / CatBoost behind kit.models.boosters.base.Booster
    task: str  # "tabular" or "image"
    libraries: tuple[str, ...] = ()  # the packages whose files the fitted model is


MODELS: dict[str, ModelEntry] = {}
_LIBRARIES = {"torch": ("torch",), "sklearn": ("scikit-learn", "skops")}


def register(name: str, *, kind: str = "torch", task: str = "image",
             libraries: tuple[str, ...] = ()):
    """Decorator: `@register("small_cnn")` adds a builder to the registry."""

    def deco(builder):
        MODELS[name] = ModelEntry(name, builder, kind, task,
                                  libraries or _LIBRARIES.get(kind, ()))
        return builder

    return deco


def library_versions(name: str) -> dict[str, str]:
    """{package: installed version} for the libraries that save and load model `name`
    (run.json records them; kit.run_folder.check_library_versions compares on loading)."""
    from importlib.metadata import PackageNotFoundError, version

    entry = MODELS.get(name) or MODELS.get(name.partition(":")[0] + ":")
    out = {}
    for package in entry.libraries if entry else ():
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    if name in MODELS and (task is None or MODELS[name].task == task):
        return MODELS[name]
    valid = sorted(n for n, e in MODELS.items()
                   if (task is None or e.task == task) and not n.endswith(":"))
    raise ConfigError(
        f"unknown model {name!r} for a {task or 'any'} task; valid: {', '.join(valid)}"
        + (", timm:<name>, torchvision:<name> (list timm's with "
           "`python -c \"import timm; print(timm.list_models())\"`)" if task != "tabular" else "")
    )


def param_names(builder: Callable) -> list[str]:
    """The `model.params` a builder takes: its keyword-only arguments, and for a builder
    that passes the rest to a library (`**params`), that library's names."""
    sig = inspect.signature(builder)
    names = [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
    library = getattr(builder, "library_params", None)
    return names + sorted(set(library()) - set(names)) if library else names


def check_params(builder: Callable, params: dict, where: str = "model.params") -> None:
    """Refuse config params the builder does not take, listing the ones it does (a library
    builder checks its `**params` itself, naming the library)."""
    if getattr(builder, "library_params", None):
        return
    valid = param_names(builder)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"unknown {where} {unknown}; valid: {', '.join(valid) or 'none'}")


# What a task knows about the data; each builder declares the ones it needs.
# `member_params` ({model name: its model.params}) serves builders made of other models.
DATA_ARGS = ("n_numeric", "cardinalities", "n_outputs", "problem", "member_params", "bins")


def build_model(name: str, *args: Any, task: str | None = None, **params: Any) -> Any:
    entry = get_entry(name, task)
    wanted = _data_arg_names(entry.builder)
    given = {k: params.pop(k) for k in list(params) if k in DATA_ARGS}
    data_args = {k: v for k, v in given.items() if k in wanted}
    check_params(entry.builder, params)
    return entry.builder(*args, **data_args, **params)


def _data_arg_names(builder: Callable) -> set[str]:
    sig = inspect.signature(builder)
    return {p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD}


def n_outputs(num_classes: int) -> int:
    """Binary tasks use one logit (BCE-with-logits); multi-class tasks one per class."""
    return 1 if num_classes == 2 else num_classes

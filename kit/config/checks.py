"""The checks a loaded config passes: choices, ranges, and the settings that cannot go
together (each error names the file, the value and the fix)."""

from __future__ import annotations

from kit.config.sections import CHOICES, Config, CVConfig, ImageConfig
from kit.errors import ConfigError
from kit.paths import check_slug

RENAMED_BLEND = ("the \"blend\" model kind is renamed \"voting\" (scikit-learn's "
                 "VotingClassifier / VotingRegressor of kinds in one fold; ensemble.py blends "
                 "runs): write model.name = \"voting\" and [model.params.voting]")


def _dask_scheduler_ok(value: str) -> bool:
    if value.startswith("local:"):
        return value[6:].isdigit() and int(value[6:]) >= 1
    return value == "" or "://" in value


def validate(cfg: Config, source: str) -> None:
    if cfg.competition.slug:  # empty: the competition's folder name (load_config)
        check_slug(cfg.competition.slug, f"{source}: competition.slug")
    for (section, key), choices in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(
                f"{source}: {section}.{key} = {value!r} is not one of {', '.join(choices)}"
            )
    checks = [
        (cfg.cv.n_splits >= 2, "cv.n_splits must be at least 2"),
        (_dask_scheduler_ok(cfg.train.dask_scheduler),
         f"train.dask_scheduler = {cfg.train.dask_scheduler!r}: give \"local:N\" (N worker "
         "processes here), a scheduler address such as \"tcp://10.0.0.5:8786\", or \"\" (off)"),
        (cfg.data.out_of_core_mb > 0, "data.out_of_core_mb must be positive (the training "
                                      "files' size above which the run streams)"),
        (cfg.train.epochs >= 1, "train.epochs must be at least 1"),
        (cfg.train.batch_size >= 0, "train.batch_size must be at least 1 (0: a tabular task "
                                    "picks it from the training rows)"),
        (cfg.train.accum_steps >= 1, "train.accum_steps must be at least 1"),
        (cfg.optim.lr > 0, "optim.lr must be positive"),
        (0 <= cfg.train.min_lr <= cfg.optim.lr, "train.min_lr must lie in [0, optim.lr]"),
        (cfg.train.patience >= 1, "train.patience must be at least 1"),
        (cfg.train.refit_seeds >= 1, f"train.refit_seeds = {cfg.train.refit_seeds}: the refit "
                                     "trains that many models; give 1 or more (--seeds N)"),
        (0 <= cfg.train.ema_decay < 1, f"train.ema_decay = {cfg.train.ema_decay}: use 0 (off) "
                                       "or a decay in (0, 1), e.g. 0.999"),
        (cfg.cv.bins >= 2, "cv.bins must be at least 2"),
        *_image_checks(cfg.image, cfg.competition.problem),
        *_weight_checks(cfg),
        (cfg.cv.repeats >= 1, f"cv.repeats = {cfg.cv.repeats}: give 1 (one K-fold split) or "
                              "more (repeated CV)"),
        (cfg.optim.huber_delta > 0, "optim.huber_delta must be positive"),
        (cfg.features.log1p_skewed >= 0, "features.log1p_skewed must be >= 0 (0 = off)"),
        (cfg.competition.problem == "regression" or cfg.data.target_transform == "none",
         f"data.target_transform = {cfg.data.target_transform!r} applies to a regression; "
         "set competition.problem = \"regression\" or data.target_transform = \"none\""),
        (cfg.competition.problem == "regression" or cfg.optim.loss != "huber",
         "optim.loss = \"huber\" is a regression loss; use \"auto\" for a classification"),
        (cfg.competition.problem == "classification" or cfg.train.fold_vote == "soft",
         "train.fold_vote = \"hard\" is a vote over classes; a regression averages its "
         "folds: set train.fold_vote = \"soft\""),
        (cfg.model.name != "blend" and "blend" not in cfg.model.params, RENAMED_BLEND),
        (_kind_fits(cfg),
         f"submission.kind = {cfg.submission.kind!r} does not fit competition.problem = "
         f"{cfg.competition.problem!r}; use \"auto\" (what the metric scores), or \"label\" / "
         "\"proba\" for a classification, \"value\" for a regression"),
        (
            cfg.cv.strategy not in ("group", "stratified_group") or bool(cfg.cv.group),
            f"cv.strategy = {cfg.cv.strategy!r} needs cv.group (the column holding group ids)",
        ),
        *_time_checks(cfg.cv),
        # an image task's only where the kit sets it: a column's run of several targets
        (cfg.competition.task == "tabular" or not cfg.cv.stratify_on
         or (cfg.competition.task == "image" and len(cfg.cv.stratify_on) > 1
             and cfg.data.target in cfg.cv.stratify_on),
         f"cv.stratify_on = {list(cfg.cv.stratify_on)}: a tabular task's split, or the one the "
         "kit sets in a column's run of an image task's several targets; unset it"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")


def _weight_checks(cfg: Config) -> list[tuple[bool, str]]:
    """data.weight names a column of its own: never the id, the target or a feature."""
    weight = cfg.data.weight
    if not weight:
        return []
    listed = [c for c in (*cfg.features.numeric, *cfg.features.categorical) if c == weight]
    return [(cfg.competition.task == "tabular",
             f"data.weight = {weight!r}: row weights are for a tabular task; unset it"),
            (weight not in (cfg.data.id, *cfg.data.targets),
             f"data.weight = {weight!r} is the data.id or data.target column; name the column "
             "of per-row weights"),
            (not listed, f"data.weight = {weight!r} is listed under [features]: a weight is "
                         "never a feature (test rows have none); drop it from the lists")]


def _time_checks(cv: CVConfig) -> list[tuple[bool, str]]:
    """cv.time / cv.gap belong to strategy "time", which keeps one split in time order."""
    time = cv.strategy == "time"
    return [
        (not time or bool(cv.time), "cv.strategy = \"time\" needs cv.time (the column of "
                                    "numbers or dates the folds follow)"),
        (time or not cv.time, f"cv.time = {cv.time!r} applies to cv.strategy = \"time\" only "
                              f"(not {cv.strategy!r}); set cv.strategy = \"time\" or drop cv.time"),
        (time or cv.gap == 0, f"cv.gap = {cv.gap} applies to cv.strategy = \"time\" only; set "
                              "cv.strategy = \"time\" or drop cv.gap"),
        (cv.gap >= 0, f"cv.gap = {cv.gap}: give 0 or more distinct timestamps"),
        (not time or cv.repeats == 1, f"cv.repeats = {cv.repeats} under cv.strategy = \"time\": "
                                      "time order gives one split; set cv.repeats = 1"),
    ]


def _image_checks(image: ImageConfig, problem: str) -> list[tuple[bool, str]]:
    c = image.channels
    checks = [
        (c in (1, 3), f"image.channels = {c}; valid: 1 (gray), 3 (RGB)"),
        (len(image.size) == 2 and min(image.size) >= 1,
         f"image.size = {list(image.size)}; give [height, width] in pixels"),
        (0 <= image.mix_prob <= 1, f"image.mix_prob = {image.mix_prob}: give the share of "
                                   "training batches to mix, in [0, 1]"),
        (0 <= image.max_bad_fraction <= 1,
         f"image.max_bad_fraction = {image.max_bad_fraction}: give a share in [0, 1]"),
    ]
    for key in ("mean", "std"):
        values = getattr(image, key)
        checks.append((len(values) in (1, c), f"image.{key} = {list(values)} has {len(values)} "
                                              f"values for {c} channels; give 1 or {c} values"))
    for key in ("mixup", "cutmix"):
        alpha = getattr(image, key)
        checks.append((alpha >= 0, f"image.{key} = {alpha}: give the Beta alpha, a number > 0 "
                                   "(e.g. 0.2 MixUp, 1.0 CutMix), or 0 for off"))
        checks.append((not alpha or problem != "regression",
                       f"image.{key} = {alpha} on a regression: MixUp and CutMix mix class "
                       f"labels; set image.{key} = 0"))
    return checks


def _kind_fits(cfg: Config) -> bool:
    kind = cfg.submission.kind
    return kind == "auto" or (kind == "value") == (cfg.competition.problem == "regression")

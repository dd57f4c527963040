"""Competition config: frozen dataclasses with defaults in code, one TOML file per competition.

`competitions/<slug>/config.toml` holds only what differs from the defaults below.
`--set section.key=value` overrides are cast to the field's type. An unknown section or
key is an error that names the file and lists the valid keys; nothing is silently ignored.

    cfg = load_config("titanic", overrides=["train.epochs=5", "model.name=gbdt"])
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.paths import check_slug

# The problem kind decides the loss, the head size, the metrics that apply, the prediction
# columns (p_<class> or pred) and what the ensemble may do (kit/objective.py).
PROBLEMS = ("classification", "regression")
AUTO = ("auto",)  # features.numeric / categorical = "auto": inferred from dtypes

# Fields whose value must be one of a fixed set: (section, key) -> choices.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("competition", "task"): ("tabular", "image"),
    ("competition", "problem"): PROBLEMS,
    ("data", "target_transform"): ("none", "log1p"),
    ("features", "scaling"): ("standard", "quantile"),
    ("optim", "loss"): ("auto", "mse", "huber"),
    ("train", "scheduler"): ("cosine", "plateau"),
    ("train", "monitor"): ("auto", "metric", "loss"),
    ("train", "min_delta_mode"): ("abs", "rel"),
    ("train", "amp"): ("auto", "off", "bf16", "fp16"),
    ("train", "device"): ("auto", "cpu", "cuda", "mps"),
    ("cv", "strategy"): ("stratified", "kfold", "group", "stratified_group", "hash", "time"),
    ("data", "out_of_core"): ("auto", "on", "off"),
    ("submission", "kind"): ("auto", "label", "proba", "value"),
    ("ensemble", "fold_vote"): ("soft", "hard"),
}


@dataclass(frozen=True)
class CompetitionConfig:
    slug: str = ""
    task: str = "tabular"
    problem: str = "classification"  # or "regression"; explicit, never guessed from the data
    kaggle: bool = True  # false: not a Kaggle competition (no download / submit / kernel)
    metric: str = "accuracy"  # a name in kit.metrics.registry.METRICS
    description: str = ""


@dataclass(frozen=True)
class DataConfig:
    train: str = "train.csv"
    test: str = "test.csv"
    sample_submission: str = "sample_submission.csv"
    id: str = "id"
    target: str = "target"
    classes: tuple[str, ...] = ()  # expected target values; others are an error (empty: any)
    # regression: "log1p" fits every model on log(1 + y) (the metric's space under rmsle);
    # predictions are inverted to the original scale before anything is scored or written
    target_transform: str = "none"
    params: dict = field(default_factory=dict)  # keyword arguments for the layout.py hook
    # tabular: column types where the first rows mislead ({"col": "float64"}; int64,
    # float64, string, bool), and the CSV size above which a CSV is converted once to a
    # parquet cache, streamed (kit/data/sources.py)
    dtypes: dict = field(default_factory=dict)
    csv_cache_mb: float = 256.0
    # tables larger than memory (kit/out_of_core/): "auto" streams the whole run when the
    # training files exceed out_of_core_mb on disk; "on" / "off" force either path
    out_of_core: str = "auto"
    out_of_core_mb: float = 2048.0
    # out of core, xgb: the memory its quantized training matrix may take before it goes to
    # XGBoost's external memory (0 = half the memory available at the fold's start). 1 GB:
    # on 20M rows external memory matched the in-memory matrix's AUC and time in 41 % of
    # its peak memory (README: Tables larger than memory)
    out_of_core_xgb_mb: float = 1024.0


@dataclass(frozen=True)
class FeaturesConfig:
    name: str = "raw"  # shows in the run folder name
    # column lists, taken as they are, or "auto": the columns train and test both hold
    # after features.py, numbers as numeric and the rest categorical (kit/data/columns.py);
    # id, target, cv.group, the other list's columns and `exclude` left out
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # columns "auto" must not take (an id-like code, a leak)
    # log1p of non-negative numeric columns whose training-fold skewness exceeds this
    # (0 = off; 0.75 is the usual choice for linear models on skewed sizes and areas)
    log1p_skewed: float = 0.0
    # numeric columns as networks and linear models see them, after median imputation:
    # "standard" (z-scores) or "quantile" (QuantileTransformer to a normal, then z-scores;
    # fitted per fold; kit/data/tabular.py). Trees take raw values either way.
    scaling: str = "standard"
    # columns target-encoded inside each fold (scikit-learn's TargetEncoder, fitted on the
    # fold's training rows; those rows get theirs by an inner K-fold): te_<column>[_<class>]
    target_encode: tuple[str, ...] = ()
    # free-text columns (titles, descriptions): TF-IDF of word 1-2-grams and char 2-4-grams
    # fitted per fold; `linear` reads it sparse, other kinds 32 SVD components of it
    # (kit/data/text.py). "auto": the free-text columns categorical "auto" would otherwise
    # take (kit/data/columns.py is_free_text); nothing when categorical is a list
    text: tuple[str, ...] = AUTO
    fold_hook: bool = True  # false: ignore features.py fold_features (an ablation)
    params: dict = field(default_factory=dict)  # keyword arguments for the features.py hook


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mlp"  # a name in kit.models (or timm:<name>, torchvision:<name>)
    pretrained: bool = False
    weights: str = ""  # local .pth / .safetensors file (Kaggle kernels have no internet)
    # Keyword arguments of the model builder: shared keys, plus one table per model name
    # ([model.params.gbdt]) so `--set model.name=gbdt` picks up that model's own settings.
    params: dict = field(default_factory=dict)

    def params_for(self, name: str | None = None) -> dict:
        name = name or self.name
        shared = {k: v for k, v in self.params.items() if not isinstance(v, dict)}
        own = self.params.get(name, {})
        return {**shared, **(own if isinstance(own, dict) else {})}


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    backbone_lr_mult: float = 1.0  # backbone LR = lr * this (pretrained models)
    label_smoothing: float = 0.0
    # auto: cross-entropy (BCE-with-logits for two classes) or MSE on the standardized
    # target; "huber" (regression) is less pulled by outliers, delta in target std units
    loss: str = "auto"
    huber_delta: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64  # tabular: 0 = from the fold's training rows (kit/tasks/tabular/task.py)
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5  # cosine floor; 0 freezes the end of training (warned)
    scheduler: str = "cosine"
    plateau_patience: int = 2  # epochs without improvement before the LR is cut
    plateau_factor: float = 0.5
    patience: int = 6  # early stopping: epochs without improvement (wait >= patience stops)
    min_delta: float = 0.0
    min_delta_mode: str = "abs"
    # What early stopping, the plateau LR cut and the best checkpoint follow: "metric",
    # "loss" (the validation loss), or "auto": the loss when the metric scores labels
    # (accuracy, f1_macro: a step function of the argmax, noisy on a few hundred validation
    # rows; README "Early stopping"), else the metric (logloss, auc, rmse: smooth)
    monitor: str = "auto"
    amp: str = "auto"  # auto: bf16 on CUDA with support, fp16 + GradScaler on other CUDA, off on CPU
    clip_grad: float = 0.0  # max gradient norm; 0 = off
    accum_steps: int = 1
    device: str = "auto"
    num_workers: int = 0
    # CPU threads for torch and BLAS/OpenMP (0 = the kit chooses: half the cores, the rest
    # for pyarrow; kit/runtime/threads.py). Tiny batches (Titanic) run several times faster on 1
    # thread: the sync costs more than the math.
    num_threads: int = 0
    device_data: bool = False  # keep the whole tensor dataset on the device (small data)
    # xgb on a Dask cluster (xgboost.dask over the out-of-core run's parquet): "local:N" for
    # a LocalCluster of N worker processes here, or a scheduler address ("tcp://host:8786");
    # "" = off. The run folder must be on a filesystem every worker reads (README)
    dask_scheduler: str = ""
    compile: bool = False
    channels_last: bool = False
    freeze_epochs: int = 0  # backbone frozen for the first N epochs (pretrained models)
    # exponential moving average of the weights (timm's ModelEmaV3, with its decay warm-up:
    # min(ema_decay, 1 - (1 + step)^(-2/3))); 0 = off, e.g. 0.999. Raw and EMA weights are
    # both validated each epoch; early stopping and the best checkpoint follow the better.
    ema_decay: float = 0.0
    max_time: float = 0.0  # seconds for the whole run; 0 = no limit
    deterministic: bool = False
    max_steps_per_epoch: int = 0  # 0 = the whole epoch (dry runs use a few)
    # The model seed: initial weights, batch order, scikit-learn's random_state (--seed).
    # The split has its own (cv.seed), so seed averaging keeps the folds.
    seed: int = 42


@dataclass(frozen=True)
class ImageConfig:
    """An image competition's input settings (kit/tasks/image.py); the arguments its
    layout.py takes stay free-form in data.params."""

    size: tuple[int, ...] = (224, 224)  # [height, width] image files are resized to
    channels: int = 3  # 1 (gray) or 3 (RGB); pixels are converted to match
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # normalization, 0..1 units: 1 or
    std: tuple[float, ...] = (0.229, 0.224, 0.225)  # `channels` values
    # hflip / affine / rotate / scale / translate / brightness_contrast / extra (the
    # defaults and what each does: kit/data/images.py AUGMENT)
    augment: dict = field(default_factory=dict)
    # test-time views averaged on top of identity: "hflip", "shift"; [] = no TTA
    tta: tuple[str, ...] = ()
    tta_shift: int = 2  # pixels per shift view
    predecode: bool = False  # decode image files once to uint8 and batch them like pixels
    max_bad_fraction: float = 0.01  # unreadable train images above this share: an error
    # MixUp / CutMix Beta alphas (0 = off) and the share of training batches mixed
    # (kit/data/mixing.py); classification only
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0


@dataclass(frozen=True)
class CVConfig:
    n_splits: int = 5
    seed: int = 42  # the split's seed; repeat r of a repeated CV uses seed + r
    repeats: int = 1  # R x n_splits fold fits, each repeat another shuffle of the rows
    # "hash": a stable hash of the id (of cv.group when set) mod n_splits, row-local, as
    # the out-of-core path splits (kit/splits/folds.py hash_folds); not stratified
    strategy: str = "stratified"
    group: str = ""  # column holding the group id (group / stratified_group / time)
    bins: int = 10  # regression + stratified: folds stratified on this many target quantiles
    # "time": expanding-window folds in the order of this column (numbers or dates), as
    # scikit-learn's TimeSeriesSplit; a group sits at its first timestamp (kit/splits/folds.py)
    time: str = ""
    gap: int = 0  # time: distinct timestamps left out between each fit's training and valid rows


@dataclass(frozen=True)
class SubmissionConfig:
    id: str = ""  # id column in the submission (default: data.id)
    target: str = ""  # prediction column (default: data.target)
    # auto: what the metric scores (kit.submission.submission_form, the one rule):
    # probabilities for auc / logloss, labels for accuracy / f1_macro, values for a
    # regression; label: argmax class; proba: one probability per sample column (the
    # positive class's for one column); value: the regression prediction
    kind: str = "auto"


@dataclass(frozen=True)
class TrackConfig:
    wandb: bool = False
    project: str = "kit"
    entity: str = ""  # machine-specific: set WANDB_ENTITY or local.toml, not a committed config


@dataclass(frozen=True)
class EnsembleConfig:
    fold_vote: str = "soft"


@dataclass(frozen=True)
class Config:
    competition: CompetitionConfig = field(default_factory=CompetitionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    # Overrides applied by --dry-run: {"model.name": "small_cnn", "train.epochs": 1, ...}
    dry_run: dict = field(default_factory=dict)
    # Overrides applied by --demo: a recipe for the small demo data on a CPU (a GPU-sized
    # default config would take many minutes on it), applied before [dry_run] and --set
    demo: dict = field(default_factory=dict)
    # Device profiles: overrides applied on that device, after the config and before [demo],
    # [dry_run] and --set ([gpu] also on MPS unless [mps] exists); --profile none skips them
    cpu: dict = field(default_factory=dict)
    gpu: dict = field(default_factory=dict)
    mps: dict = field(default_factory=dict)
    # Search spaces for scripts/tune.py, one table per model: [tune.gbdt] learning_rate =
    # {low = 0.01, high = 0.3, log = true}; checked by kit/tuning/study.py against the builder
    tune: dict = field(default_factory=dict)

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}


def _cast(value: Any, hint: Any, where: str) -> Any:
    """Cast a TOML or --set value to a field's type; strings from --set are parsed."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint in (int, float):  # an int is a valid float; "3.5" is not a valid int
        numbers = (int, float) if hint is float else int
        if isinstance(value, numbers) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str):  # --set: a TOML list, or comma-separated words
            parsed = _parse_literal(value)
            value = parsed if isinstance(parsed, list) else [
                v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            item = typing.get_args(hint)[0]
            if item is str:
                return tuple(str(v) for v in value)
            return tuple(_cast(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    elif (hint is dict or origin is dict) and isinstance(value, dict):
        return dict(value)
    type_name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} = {value!r} is not a valid {type_name}; give a {type_name} value")


def _parse_literal(text: str) -> Any:
    """Parse a --set value for a free-form table (model.params.x=...) as a TOML literal."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


PROFILES = ("cpu", "gpu", "mps")
# tables of "section.key" = value, applied on request
OVERRIDE_SECTIONS = ("dry_run", "demo", *PROFILES)
FREE_SECTIONS = (*OVERRIDE_SECTIONS, "tune")  # tables kept as they are, checked where used


def _moved(section: str, key: str) -> str:
    """The fix for a key that an older kit read ("" for a plain unknown key)."""
    if (section, key) == ("train", "tta"):
        return ("train.tta is gone: TTA runs when image.tta lists views, e.g. image.tta = "
                "[\"hflip\"], and not when image.tta = []")
    return ""


def _check_image_params(raw: dict, source: str) -> None:
    """An image competition's settings moved from data.params to [image]; data.params
    holds only its layout.py arguments now."""
    if raw.get("competition", {}).get("task") != "image":
        return
    params = raw.get("data", {}).get("params", {})
    for key in typing.get_type_hints(ImageConfig):
        if key in params:
            raise ConfigError(f"{source}: data.params.{key} moved to image.{key}: write "
                              f"{key} = {_toml_value(params[key])} under [image]")


def _build(raw: dict, source: str) -> Config:
    types_ = _section_types()
    _check_image_params(raw, source)
    sections: dict[str, Any] = {}
    for name, values in raw.items():
        if name in FREE_SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of 'section.key' = value")
            sections[name] = dict(values)
            continue
        if name not in types_:
            raise ConfigError(
                f"{source}: unknown section [{name}]; valid sections: "
                f"{', '.join(sorted([*types_, *FREE_SECTIONS]))}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {values!r}")
        cls = types_[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: " + (
                    _moved(name, key) or f"unknown key '{name}.{key}'; valid keys in "
                                         f"[{name}]: {', '.join(hints)}"))
            kwargs[key] = _cast(value, hints[key], f"{source}: {name}.{key}")
        sections[name] = cls(**kwargs)
    cfg = Config(**sections)
    _validate(cfg, source)
    return cfg


def _dask_scheduler_ok(value: str) -> bool:
    if value.startswith("local:"):
        return value[6:].isdigit() and int(value[6:]) >= 1
    return value == "" or "://" in value


def _validate(cfg: Config, source: str) -> None:
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
        (0 <= cfg.train.ema_decay < 1, f"train.ema_decay = {cfg.train.ema_decay}: use 0 (off) "
                                       "or a decay in (0, 1), e.g. 0.999"),
        (cfg.cv.bins >= 2, "cv.bins must be at least 2"),
        *_image_checks(cfg.image, cfg.competition.problem),
        (cfg.cv.repeats >= 1, f"cv.repeats = {cfg.cv.repeats}: give 1 (one K-fold split) or "
                              "more (repeated CV)"),
        (cfg.optim.huber_delta > 0, "optim.huber_delta must be positive"),
        (cfg.features.log1p_skewed >= 0, "features.log1p_skewed must be >= 0 (0 = off)"),
        (cfg.competition.problem == "regression" or cfg.data.target_transform == "none",
         f"data.target_transform = {cfg.data.target_transform!r} applies to a regression; "
         "set competition.problem = \"regression\" or data.target_transform = \"none\""),
        (cfg.competition.problem == "regression" or cfg.optim.loss != "huber",
         "optim.loss = \"huber\" is a regression loss; use \"auto\" for a classification"),
        (cfg.competition.problem == "classification" or cfg.ensemble.fold_vote == "soft",
         "ensemble.fold_vote = \"hard\" is a vote over classes; a regression averages its "
         "folds: set ensemble.fold_vote = \"soft\""),
        (_kind_fits(cfg),
         f"submission.kind = {cfg.submission.kind!r} does not fit competition.problem = "
         f"{cfg.competition.problem!r}; use \"auto\" (what the metric scores), or \"label\" / "
         "\"proba\" for a classification, \"value\" for a regression"),
        (
            cfg.cv.strategy not in ("group", "stratified_group") or bool(cfg.cv.group),
            f"cv.strategy = {cfg.cv.strategy!r} needs cv.group (the column holding group ids)",
        ),
        *_time_checks(cfg.cv),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")


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


def _to_raw(cfg: Config) -> dict:
    raw = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        raw[f.name] = dict(value) if isinstance(value, dict) else dataclasses.asdict(value)
    return raw


def apply_overrides(cfg: Config, overrides: list[str] | dict, source: str = "--set") -> Config:
    """Apply 'section.key=value' overrides (a list of strings or a {key: value} dict)."""
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    raw = _to_raw(cfg)
    types_ = _section_types()
    for dotted, value in items:
        parts = dotted.split(".")
        section = parts[0]
        if section not in types_ or len(parts) < 2:
            raise ConfigError(
                f"{source} {dotted}={value!r}: expected section.key with a section among "
                f"{', '.join(sorted(types_))}"
            )
        key = parts[1]
        hints = typing.get_type_hints(types_[section])
        if key not in hints:
            raise ConfigError(f"{source} {dotted}: " + (
                _moved(section, key) or f"unknown key '{key}' in [{section}]; valid keys: "
                                        f"{', '.join(hints)}"))
        if len(parts) > 2:
            if hints[key] is not dict and typing.get_origin(hints[key]) is not dict:
                raise ConfigError(f"{source} {dotted}: {section}.{key} is not a table")
            table = raw[section][key] = _deep_copy(raw[section][key])
            for part in parts[2:-1]:  # model.params.gbdt.max_iter -> nested tables
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    raise ConfigError(f"{source} {dotted}: {part!r} is not a table")
            table[parts[-1]] = _parse_literal(value) if isinstance(value, str) else value
        elif isinstance(value, str) and (hints[key] is dict or typing.get_origin(hints[key]) is dict):
            raw[section][key] = _parse_literal(value)
        else:
            raw[section][key] = value
    return _build(raw, source)


def _deep_copy(table: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in table.items()}


def _split(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the line it names") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_config(
    path: str | Path, *, overrides: list[str] | None = None, dry_run: bool = False,
    demo: bool = False, profile: str | None = None
) -> Config:
    """Load a competition's config.toml, then the device `profile` ("cpu", "gpu", "mps"),
    its [demo] and [dry_run] sections (if asked), then --set."""
    path = Path(path)
    cfg = _build(read_toml(path), str(path))
    if not cfg.competition.slug:
        cfg = cfg.replace(competition=dataclasses.replace(cfg.competition, slug=path.parent.name))
    for name in PROFILES:  # every profile's keys checked, whichever device runs
        if getattr(cfg, name):
            apply_overrides(cfg, getattr(cfg, name), source=f"{path} [{name}]")
    section = profile_section(cfg, profile)
    if section:
        cfg = apply_overrides(cfg, getattr(cfg, section), source=f"{path} [{section}]")
    if demo and cfg.demo:
        cfg = apply_overrides(cfg, cfg.demo, source=f"{path} [demo]")
    if dry_run and cfg.dry_run:
        cfg = apply_overrides(cfg, cfg.dry_run, source=f"{path} [dry_run]")
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def profile_section(cfg: Config, profile: str | None) -> str:
    """The section a device profile applies ("" for none): [mps] falls back to [gpu]."""
    if profile == "mps" and not cfg.mps:
        profile = "gpu"
    return profile if profile in PROFILES and getattr(cfg, profile) else ""


def load_resolved(path: str | Path) -> Config:
    """Load a config.toml that a run saved (all keys present); a run saved before the
    [image] section existed is read as it ran (_migrate)."""
    path = Path(path)
    return _build(_migrate(read_toml(path)), str(path))


def _migrate(raw: dict) -> dict:
    """A saved run's config from before [image]: `train.tta` (a bool) and an image task's
    settings in data.params become the [image] section they mean. A competition's own
    config.toml gets an error naming the new key instead (_moved, _check_image_params)."""
    tta_on = raw.get("train", {}).pop("tta", None)
    if raw.get("competition", {}).get("task") != "image" or "image" in raw:
        return raw
    params = raw.get("data", {}).get("params", {})
    image = raw["image"] = {k: params.pop(k) for k in typing.get_type_hints(ImageConfig)
                            if k in params}
    image["tta"] = image.get("tta", ["hflip"]) if tta_on else []  # then train.tta's list
    return raw


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML: every section, every key."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for section, values in _to_raw(cfg).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                tables.append((f"{section}.{key}", value))
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
        for name, table in tables:
            lines.append(f"[{name}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
        tables = []
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def field_names(section: str) -> list[str]:
    """Valid keys of a section, for error messages and templates."""
    return list(typing.get_type_hints(_section_types()[section]))


__all__ = [
    "Config",
    "ConfigError",
    "apply_overrides",
    "field_names",
    "load_config",
    "load_resolved",
    "to_toml",
]

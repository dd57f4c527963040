"""The config's sections: frozen dataclasses with their defaults in code, the fixed
choices of some fields (CHOICES) and the problem kinds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
    ("train", "refit"): ("off", "only", "with_folds"),
    ("cv", "strategy"): ("stratified", "kfold", "group", "stratified_group", "hash", "time"),
    ("data", "out_of_core"): ("auto", "on", "off"),
    ("submission", "kind"): ("auto", "label", "proba", "value"),
    ("train", "fold_vote"): ("soft", "hard"),
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
    # the column to predict, or a list of columns (several targets: several binary or class
    # columns under classification, several numbers under regression; each column is its
    # own run on one split, kit/pipeline/targets.py). A string is one column, commas and all
    target: str | tuple[str, ...] = "target"
    classes: tuple[str, ...] = ()  # expected target values; others are an error (empty: any)
    # regression: "log1p" fits every model on log(1 + y) (the metric's space under rmsle);
    # predictions are inverted to the original scale before anything is scored or written
    target_transform: str = "none"
    params: dict = field(default_factory=dict)  # keyword arguments for the layout.py hook
    # a train.csv column of per-row weights (sample weights): every tabular kind trains on
    # them, every fold and OOF score is the weighted one (scores.json "weight"), cut points
    # (qwk, mcc / f1_macro thresholds) are fitted on them, ensembles weigh the rows alike and
    # out-of-core runs (XGBoost on Dask too) stream them; "" = every row counts once. Never a
    # feature; test rows need none
    weight: str = ""
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
    # its peak memory (docs/out-of-core.md)
    out_of_core_xgb_mb: float = 1024.0

    @property
    def targets(self) -> tuple[str, ...]:
        """data.target as a tuple of columns: one for a string."""
        return (self.target,) if isinstance(self.target, str) else tuple(self.target)


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
    # several targets (data.target a list) and a network kind (mlp, tabm): one network with
    # an output per target, trained once per fold (true), or one network per column (false)
    multi_output: bool = True
    # written by the kit into each column's run of such a network (targets/<column>/
    # config.toml): every target, in the network's output order; leave it unset
    joint_targets: tuple[str, ...] = ()

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
    # rows; docs/training.md "Early stopping"), else the metric (logloss, auc, rmse: smooth)
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
    # how a run combines its own fold models' test predictions: "soft" (their mean) or
    # "hard" (a majority vote of their classes); ensemble.py combines runs, not this
    fold_vote: str = "soft"
    # xgb on a Dask cluster (xgboost.dask over the out-of-core run's parquet): "local:N" for
    # a LocalCluster of N worker processes here, or a scheduler address ("tcp://host:8786");
    # "" = off. The run folder must be on a filesystem every worker reads (docs/out-of-core.md)
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
    # Refit on all rows after the CV (--refit; kit/pipeline/refit.py): "off", "only" (the
    # submission is the refit models' mean) or "with_folds" (half the refit mean, half the
    # folds' mean). Off by default: its measured gain is not a win everywhere
    # (docs/benchmarks.md, "Refit on all rows")
    refit: str = "off"
    refit_seeds: int = 1  # refit models, model seeds train.seed + 0 .. refit_seeds - 1 (--seeds)


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
    # the columns the split is made on (default: data.target). A run with several targets
    # sets every target here for each column's run, so all share one split: iterative
    # multi-label stratification (iterstrat) on their classes, or on quantile bins of each
    # under a regression; its hash covers every column
    stratify_on: tuple[str, ...] = ()


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

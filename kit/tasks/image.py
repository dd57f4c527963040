"""The image task: layout.py hook -> arrays or files -> batches -> CNN / timm / torchvision.

The competition's `layout.py` defines `load(data, data_dir, cache_dir, **params) -> ImageData`
(kit/data/images.py): ids, class indices (regression: target values; a hook with a
`problem` parameter is told competition.problem), groups, and either uint8 pixels (digit-recognizer)
or image paths (mask). Its arguments are `data.params`; everything generic is the [image]
section (kit/config.py ImageConfig):

    size = [h, w]        resize for image files (pixels keep their own size)
    channels, mean, std  input channels and normalization (0..1 units)
    augment = {...}      hflip / affine / rotate / scale / translate / brightness_contrast / extra
    tta = ["shift"]      test-time views on top of identity; [] = no TTA
    tta_shift = 2        pixels per shift view
    predecode = false    decode image files once to uint8 and batch them like pixels
    max_bad_fraction     unreadable train images above this fraction are an error
    mixup, cutmix        Beta alphas of MixUp / CutMix (0 = off), mix_prob the share mixed

Pixels (and predecoded files) go through DeviceBatches with a batch-wise GPU affine; files
through a DataLoader of ImageFileDataset with albumentations. Fold 0 leaves its first
augmented batch, de-normalized to [0, 1], in its FoldOutput (`sample_batch`) for the run's
sample grid. Fine-tuning: `train.freeze_epochs` trains only the head (and norm layers)
for the first N epochs; `optim.backbone_lr_mult` scales the backbone's LR
(kit.models.heads.param_groups).

Several targets (data.target a list, multi-label): the hook returns the labels as a
DataFrame with a column per target (ImageSet.labels) and is handed data.target as every
target's list; each column's run (kit/pipeline/targets.py) takes its own column as `y` and
all of them as `strata` (the split), and one CNN per fold with a sigmoid per target (a value
per number) serves every column's run (kit/tasks/joint.py): the first column's fold trains
it in `<run>/network/fold<k>/`, the others read their output from there.

    python scripts/train.py --comp mask --demo --dry-run
"""

from __future__ import annotations

import inspect
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kit.config import Config, ImageConfig
from kit.data.images import (
    DeviceBatches,
    ImageData,
    ImageFileDataset,
    RandomAffine,
    TTAModel,
    augment_settings,
    build_transforms,
    cache_root,
    check_images,
    decode_all,
    label_columns,
    match_channels,
    reduce_factor,
    tta_transforms,
)
from kit.data.mixing import batch_mix
from kit.errors import ConfigError, DataError
from kit.hooks import call_with_params, load_hook
from kit.io import write_json
from kit.metrics.competition import resolve_metric
from kit.models.heads import set_backbone_trainable
from kit.models.vision import build_image_model
from kit.models.weights import cached_weights, missing_weights_error
from kit.objective import Objective, TargetTransform, check_target
from kit.runtime import distributed as dist
from kit.runtime.seed import worker_init_fn
from kit.tasks import FoldContext, FoldOutput, Prepared
from kit.tasks.joint import column_pred, joint_for, joint_labels, network_folder, shared_fit
from kit.training.checkpoints import best_checkpoint, load_checkpoint
from kit.training.trainer import Trainer

SAMPLE_IMAGES = 64  # images of the first augmented batch kept for the sample grid


def check_image(cfg: Config) -> None:
    """The [image] checks that need kit/data/images.py, before any file is read: an unknown
    augment key or TTA view (kit/config.py checks the rest)."""
    augment_settings(cfg.image.augment)
    tta_transforms(cfg.image.tta)
    if not cfg.train.batch_size:
        raise ConfigError("train.batch_size = 0 (picked from the rows) is for tabular tasks; "
                          "give the images per batch, e.g. train.batch_size = 64")


def prepare(cfg: Config, comp_dir: Path, data_dir: Path, cache_dir: Path) -> Prepared:
    check_image(cfg)
    image, hook_params = cfg.image, dict(cfg.data.params)
    load = load_hook(comp_dir, "layout", "load", required=True)
    if "problem" in inspect.signature(load).parameters:  # a hook that serves both kinds
        hook_params = {**hook_params, "problem": cfg.competition.problem}
    cache = cache_root(data_dir, cache_dir)
    source = str(comp_dir / "layout.py")
    data: ImageData = call_with_params(load, hook_params, "data.params", _hook_data(cfg),
                                       data_dir, cache)
    train, test = data.train, data.test
    if train.labels is None or len(train) == 0:
        raise DataError(f"{source}: load() returned no labelled train images")
    train, classes = _labelled(cfg, train, data.classes, source)
    if train.paths is not None:  # skip unreadable train images; blanks stand in for test ones
        ok = check_images(train.paths, max_bad_fraction=image.max_bad_fraction, what="train")
        train = _subset(train, ok)
        check_images(test.paths, max_bad_fraction=image.max_bad_fraction, what="test")
    state = {"train": train, "test": test, "reduce": 1,
             "demo": (Path(data_dir) / "DEMO_README.txt").exists()}
    if train.paths is not None and len(train):
        state["reduce"] = reduce_factor(train.paths[0], image.size)
        if image.predecode:
            for part, split in (("x_train", train), ("x_test", test)):
                state[part] = decode_all(split.paths, image.size, channels=image.channels,
                                         cache_dir=cache)
    else:  # gray pixels for an RGB backbone (or the reverse): convert once, vectorized
        state["x_train"] = match_channels(train.pixels, image.channels, "train pixels")
        state["x_test"] = match_channels(test.pixels, image.channels, "test pixels")
    y, strata = train.labels, None
    if cfg.cv.stratify_on:  # (N, T): every target's codes, the split's; y is data.target's
        strata, y = y, y[:, list(cfg.cv.stratify_on).index(cfg.data.target)]
    if cfg.competition.problem == "regression":
        check_target("regression", y, cfg.data.target, source)
        y = np.asarray(y, dtype=np.float64)
    else:
        y = np.asarray(y, dtype=np.int64)
    prep = Prepared(ids=np.asarray(train.ids), y=y, classes=classes, groups=train.groups,
                    test_ids=np.asarray(test.ids), state=state, strata=strata)
    # what the network learns per row: y, or every target's (N, T) (model.joint_targets)
    state["labels"] = joint_labels(cfg, strata, source) if cfg.model.joint_targets else y
    return prep


def _hook_data(cfg: Config):
    """cfg.data as layout.py's load() gets it: under several targets data.target lists every
    target (a column's run holds its own in data.target, all of them in cv.stratify_on)."""
    from dataclasses import replace

    if not cfg.cv.stratify_on:
        return cfg.data
    return replace(cfg.data, target=tuple(cfg.cv.stratify_on))


def _labelled(cfg: Config, train, classes: list, source: str):
    """The train split with its labels as one array: (N,) as the hook gave them, or from a
    labels DataFrame data.target's codes (N,), or (N, T) of cv.stratify_on's columns; and
    data.target's classes."""
    from dataclasses import replace

    columns = list(cfg.cv.stratify_on) or [cfg.data.target]
    if isinstance(train.labels, pd.DataFrame):
        codes, each = label_columns(train.labels, columns, cfg.competition.problem, source)
        j = columns.index(cfg.data.target)
        if cfg.competition.problem == "classification" and len(each[j]) < 2:
            raise DataError(f"{source}: label {cfg.data.target!r} has one value {each[j]}; "
                            "nothing to learn")
        return replace(train, labels=codes if cfg.cv.stratify_on else codes[:, 0]), each[j]
    if cfg.cv.stratify_on:
        raise DataError(f"{source}: load() returned one label per image; data.target = "
                        f"{columns} needs the labels as a DataFrame with a column per target "
                        "(ImageSet.labels, docs/images.md: several targets)")
    return train, ([] if cfg.competition.problem == "regression" else list(classes))


def _subset(split, ok: np.ndarray):
    from dataclasses import replace

    if ok.all():
        return split
    pick = lambda a: None if a is None else np.asarray(a)[ok]  # noqa: E731
    return replace(split, ids=pick(split.ids), labels=pick(split.labels),
                   groups=pick(split.groups), paths=pick(split.paths), pixels=pick(split.pixels))


def build(cfg: Config, prep: Prepared, objective: Objective) -> torch.nn.Module:
    m = cfg.model
    if m.pretrained and not m.weights and prep.state.get("demo") and cached_weights(m.name) is None:
        warnings.warn(f"demo data and no weights file for {m.name}: training from scratch "
                      f"(real runs need {missing_weights_error(m.name)})", stacklevel=2)
        m = _no_download(cfg)
    model = build_image_model(m.name, len(prep.classes), in_chans=cfg.image.channels,
                              pretrained=m.pretrained, weights=m.weights,
                              params=m.params_for(m.name), outputs=objective.n_outputs)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _augment(image: ImageConfig) -> RandomAffine | None:
    """The GPU version of the augment settings (colour jitter and `extra` are file-only)."""
    a = augment_settings(image.augment)
    if not a["affine"] and not a["hflip"]:
        return None
    return RandomAffine(degrees=a["rotate"], scale=a["scale"], translate=a["translate"],
                        hflip=a["hflip"], p=a["affine"])


def loader(prep: Prepared, cfg: Config, part: str, rows: np.ndarray | None, device, *,
           objective: Objective, train: bool = False, seed: int = 0):
    """Batches of the train rows `rows` (part "train") or of the whole test set."""
    image, st, t = cfg.image, prep.state, cfg.train
    split = st[part]
    rows = np.arange(len(split)) if rows is None else rows
    labels = objective.batch_target(prep.state["labels"][rows]) if part == "train" else None
    x = st.get(f"x_{part}")
    if x is not None:  # pixels / predecoded images: slices of one uint8 tensor
        where = device if t.device_data else "cpu"
        return DeviceBatches(x[rows], labels, t.batch_size, train, seed, where,
                             _augment(image) if train else None, mean=image.mean,
                             std=image.std, index=rows, drop_last=train)
    tf = build_transforms(image.size, train=train, mean=image.mean, std=image.std,
                          augment=image.augment, seed=seed)
    ds = ImageFileDataset(split.paths[rows], labels, tf, channels=image.channels, index=rows,
                          reduce=st["reduce"], on_error="blank" if part == "test" else "skip")
    workers, drop_last = t.num_workers, train and len(ds) > t.batch_size
    shard = dist.sampler(ds, shuffle=train, seed=seed, drop_last=drop_last)  # None: one process
    return torch.utils.data.DataLoader(
        ds, batch_size=t.batch_size, shuffle=train and shard is None, sampler=shard,
        drop_last=drop_last, num_workers=workers, pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0, worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(seed))


def _predict(trainer, model, batches, rows: np.ndarray, cfg: Config) -> np.ndarray:
    """Probabilities in `rows` order, averaged over image.tta's views (and identity)."""
    if cfg.image.tta:
        outputs = "classes"  # one target: as every run before several targets predicted
        if cfg.model.joint_targets:
            outputs = "values" if cfg.competition.problem == "regression" else "labels"
        model = TTAModel(model, tta_transforms(cfg.image.tta, cfg.image.tta_shift), outputs)
    return trainer.predict_rows(model, batches, rows)


def _predict_test(trainer, model, prep: Prepared, cfg: Config, objective: Objective) -> np.ndarray:
    """The test set's predictions in id order, TTA as configured: a fold fit's and predict.py's."""
    batches = loader(prep, cfg, "test", None, trainer.device, objective=objective)
    return _predict(trainer, model, batches, np.arange(len(prep.test_ids)), cfg)


def sample_batch(batches, image: ImageConfig) -> dict:
    """The first augmented batch as the model sees it, de-normalized to [0, 1] on the CPU:
    {"x": N x C x H x W float, "y": class indices} (at most SAMPLE_IMAGES images)."""
    batch = next(iter(batches))
    x = batch["x"][:SAMPLE_IMAGES].detach().float().cpu()
    mean = torch.tensor(image.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(image.std, dtype=torch.float32).view(1, -1, 1, 1)
    return {"x": (x * std + mean).clamp(0, 1), "y": batch["y"][:SAMPLE_IMAGES].cpu()}


def _column_sample(shown: dict, cfg: Config) -> dict:
    """A sample batch of several targets' (N, T) labels titled with the run's column: its
    0/1 as class indices (a value as it is)."""
    targets = list(cfg.model.joint_targets)
    if not targets:
        return shown
    y = shown["y"][:, targets.index(cfg.data.target)]
    return {**shown, "y": y if cfg.competition.problem == "regression" else y.round().long()}


def fine_tuning_config(cfg: Config, *, quiet: bool = False) -> Config:
    """`optim.backbone_lr_mult` and `train.freeze_epochs` only where there is a pretrained
    backbone to fine-tune: a network trained from scratch learns at one LR, all of it (a
    from-scratch body at a tenth of the LR learns a fraction as well). Says so once."""
    from dataclasses import replace

    o, t, m = cfg.optim, cfg.train, cfg.model
    if m.pretrained or m.weights or (o.backbone_lr_mult == 1.0 and not t.freeze_epochs):
        return cfg
    if not quiet and dist.is_main():
        print(f"optim.backbone_lr_mult = {o.backbone_lr_mult} and train.freeze_epochs = "
              f"{t.freeze_epochs} are ignored: {m.name} has no pretrained weights "
              "(model.pretrained / model.weights), so all of it trains at optim.lr")
    return cfg.replace(optim=replace(o, backbone_lr_mult=1.0),
                       train=replace(t, freeze_epochs=0))


def fit_fold(prep: Prepared, ctx: FoldContext) -> FoldOutput:
    """The fold's network, trained here; or, for one column of several targets, its output
    of the run's shared network (kit/tasks/joint.py: trained by the first column's fold)."""
    return shared_fit(ctx.cfg, ctx, lambda ctx: _fit(prep, ctx))


def _fit(prep: Prepared, ctx: FoldContext) -> FoldOutput:
    cfg = fine_tuning_config(ctx.cfg, quiet=ctx.fold > 0)
    started = time.monotonic()
    seed = cfg.train.seed * 1000 + ctx.fold
    torch.manual_seed(seed)  # same fold, same initial weights
    labels = prep.state["labels"]  # (N,), or (N, T) for a network of several targets
    objective = Objective.for_fold(cfg, prep.classes, labels[ctx.train_idx], standardize=True)
    if objective.regression:  # predict_fold inverts with the same fitted transform
        write_json(ctx.fold_dir / "target.json", objective.target.state_dict())
    model = build(cfg, prep, objective)
    train_b = loader(prep, cfg, "train", ctx.train_idx, ctx.device, objective=objective,
                     train=True, seed=seed)
    valid_b = loader(prep, cfg, "train", ctx.valid_idx, ctx.device, objective=objective)
    shown = None  # fold 0's first batch: the run's sample grid
    if ctx.fold == 0:
        shown = _column_sample(sample_batch(train_b, cfg.image), cfg)

    def on_epoch_start(model, epoch: int) -> None:  # the trainer sets the loader's epoch
        if cfg.train.freeze_epochs:
            set_backbone_trainable(model, epoch >= cfg.train.freeze_epochs)

    trainer = ctx.trainer(cfg, objective)
    trainer.train_batch_transform = batch_mix(cfg.image, len(prep.classes),
                                             objective.problem)
    result = trainer.fit(model, train_b, valid_b, labels, resume=ctx.resume,
                         on_epoch_start=on_epoch_start)
    if result.best_path is None:
        raise DataError(f"fold {ctx.fold}: no epoch finished ({result.stop_reason})")
    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    valid = _predict(trainer, model, valid_b, ctx.valid_idx, cfg)
    test = _predict_test(trainer, model, prep, cfg, objective)
    info = {"best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
            "best_score": result.best_score, "tta": bool(cfg.image.tta),
            "seconds": time.monotonic() - started}
    return FoldOutput(valid.astype(np.float64), test.astype(np.float64), info,
                      history=result.history, sample_batch=shown)


def predict_fold(prep: Prepared, cfg: Config, fold_dir: Path, device) -> np.ndarray:
    """Test predictions from a finished fold's best checkpoint (TTA as configured); a column
    of several targets: its output of the shared network (in the run's network/ folder)."""
    folder = network_folder(cfg, fold_dir)
    best = best_checkpoint(folder)
    target = None
    if cfg.competition.problem == "regression":
        target = TargetTransform.from_state(json.loads((folder / "target.json").read_text()))
    objective = Objective.for_config(cfg, prep.classes, target)
    model = build(cfg.replace(model=_no_download(cfg)), prep, objective)
    model.load_state_dict(load_checkpoint(best, cfg.model.name)["model"])
    trainer = Trainer(cfg, folder, device, resolve_metric(cfg), objective)
    model.to(device)
    pred = _predict_test(trainer, model, prep, cfg, objective).astype(np.float64)
    joint = joint_for(cfg, fold_dir)
    return pred if joint is None else column_pred(pred, joint.column, joint.regression)


def _no_download(cfg: Config):
    """The checkpoint holds every weight: build without pretrained weights."""
    from dataclasses import replace

    return replace(cfg.model, pretrained=False, weights="")

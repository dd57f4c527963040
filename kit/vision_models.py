"""Image models: built-in CNNs, `timm:<name>`, `torchvision:<name>`, head replacement.

Registered into kit.models.MODELS (kit/models.py imports this module at its end). Image
builders take `(num_classes, in_chans)` positionally and `model.params` as keywords; the
`timm:` and `torchvision:` prefixes take the architecture name first.

    model = build_image_model("timm:resnet18", 18, pretrained=True, weights="r18.safetensors")
    replace_head(model, 10)            # new nn.Linear, Xavier-uniform weight, zero bias
    groups = param_groups(model, lr=1e-3, backbone_lr_mult=0.1, weight_decay=1e-4)
"""

from __future__ import annotations

import difflib
import math

import torch
from torch import nn

from kit.errors import ConfigError
from kit.models import MODELS, ModelEntry, check_params, n_outputs, register

# Attribute names that hold the output layer, in the order they are tried (torchvision:
# resnet `fc`, mobilenet/efficientnet/convnext `classifier`, vit `heads`; timm: `head`).
HEAD_ATTRS = ("fc", "classifier", "head", "heads")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _cbr(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """conv -> batchnorm -> relu; no conv bias (the BN shift replaces it)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """A plain CNN: `features` (any input size) -> global average pool -> `fc`."""

    def __init__(self, features: nn.Sequential, width: int, num_classes: int, dropout: float):
        super().__init__()
        self.features = features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


@register("small_cnn")
def small_cnn(num_classes: int, in_chans: int = 3, *, width: int = 16,
              dropout: float = 0.0) -> nn.Module:
    """Three conv blocks, ~25k parameters at width 16: for dry runs and smoke tests."""
    w = width
    features = nn.Sequential(_cbr(in_chans, w), nn.MaxPool2d(2), _cbr(w, 2 * w), nn.MaxPool2d(2),
                             _cbr(2 * w, 4 * w))
    return ConvNet(features, 4 * w, num_classes, dropout)


@register("mnist_cnn")
def mnist_cnn(num_classes: int, in_chans: int = 1, *, width: int = 32,
              dropout: float = 0.3) -> nn.Module:
    """Stacked 3x3 convs with strided 5x5 downsampling (the "25 million images" CNN recipe,
    cdeotte/MNIST-CNN-99.75: ~99.6% single model on MNIST with augmentation), BN, dropout.
    ~0.35M parameters at width 32; 28x28 -> 14 -> 7 -> global pool."""
    w = width

    def stage(c_in: int, c_out: int) -> list[nn.Module]:
        return [_cbr(c_in, c_out), _cbr(c_out, c_out), _cbr(c_out, c_out, 5, 2), nn.Dropout(dropout)]

    features = nn.Sequential(*stage(in_chans, w), *stage(w, 2 * w), _cbr(2 * w, 4 * w))
    return ConvNet(features, 4 * w, num_classes, dropout)


class LeNet(nn.Module):
    """Two conv-pool stages -> a hidden dense layer -> `fc`. Cheap per image (~3M MACs at
    width 16 on 28 x 28), so it reaches 99% on MNIST-sized digits in minutes on a CPU."""

    def __init__(self, num_classes: int, in_chans: int, width: int, hidden: int, dropout: float):
        super().__init__()
        w = width
        self.features = nn.Sequential(_cbr(in_chans, w, 5), nn.MaxPool2d(2), _cbr(w, 2 * w, 5),
                                      nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(7))  # 28 -> 7 x 7
        self.neck = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 49, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.neck(self.features(x)))


@register("lenet")
def lenet(num_classes: int, in_chans: int = 1, *, width: int = 16, hidden: int = 128,
          dropout: float = 0.3) -> nn.Module:
    """LeNet-style digits CNN for CPUs: 5x5 conv (w) -> pool -> 5x5 conv (2w) -> pool ->
    dense `hidden` -> fc; ~0.23M parameters at width 16."""
    return LeNet(num_classes, in_chans, width, hidden, dropout)


def _close(name: str, names: list[str]) -> str:
    hits = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    return f"; close matches: {', '.join(hits)}" if hits else ""


@register("timm:")
def timm_model(arch: str, num_classes: int, in_chans: int = 3, **params) -> nn.Module:
    """Any timm architecture, built without downloading (weights are loaded separately)."""
    import timm

    if not timm.is_model(arch):
        raise ConfigError(f"unknown timm model {arch!r}{_close(arch, timm.list_models())}; "
                          "list them with `python -c \"import timm; print(timm.list_models())\"`")
    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes,
                                 in_chans=in_chans, **params)
    except TypeError as exc:
        raise ConfigError(f"model.params {params} rejected by timm:{arch}: {exc}") from None


@register("torchvision:")
def torchvision_model(arch: str, num_classes: int, in_chans: int = 3, **params) -> nn.Module:
    """A torchvision classifier built at `num_classes` without weights; in_chans != 3
    swaps the stem conv (torchvision builders have no in_chans argument)."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ConfigError(f"unknown torchvision model {arch!r}{_close(arch, names)}; "
                          f"valid: {', '.join(names)}")
    try:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **params)
    except TypeError as exc:
        raise ConfigError(f"model.params {params} rejected by torchvision:{arch}: {exc}") from None
    if in_chans != 3:
        _set_first_conv_channels(model, in_chans)
    return model


def _set_first_conv_channels(model: nn.Module, in_chans: int) -> None:
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 3:
            new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride,
                            conv.padding, conv.dilation, conv.groups, conv.bias is not None)
            _set_module(model, name, new)
            return
    raise ConfigError(f"found no 3-channel input conv to adapt to in_chans={in_chans}")


def resolve(name: str) -> tuple[ModelEntry, tuple[str, ...]]:
    """Registry entry and the leading builder arguments: ("timm:resnet18") -> (entry, ("resnet18",))."""
    if ":" in name:
        prefix, arch = name.split(":", 1)
        if f"{prefix}:" in MODELS and arch:
            return MODELS[f"{prefix}:"], (arch,)
    from kit.models import get_entry

    entry = get_entry(name, task="image")
    return entry, ()


def build_image_model(name: str, num_classes: int, *, in_chans: int = 3, pretrained: bool = False,
                      weights: str = "", params: dict | None = None,
                      outputs: int | None = None) -> nn.Module:
    """Build from the registry; load offline weights; optionally three heads -> 18 classes.

    `params["heads"] = "multi"` with `params["head_sizes"] = [3, 2, 3]` builds one linear
    head per factor on the shared backbone (see MultiHead)."""
    from kit.weights import load_pretrained

    params = dict(params or {})
    heads = params.pop("heads", "single")
    head_sizes = tuple(params.pop("head_sizes", ()))
    if heads not in ("single", "multi"):
        raise ConfigError(f"model.params.heads = {heads!r} is not one of single, multi")
    entry, lead = resolve(name)
    if not lead:
        check_params(entry.builder, params)
    if outputs is None:  # a regression passes its 1 (kit.objective.Objective.n_outputs)
        outputs = n_outputs(num_classes)  # binary: one logit for BCE
    model = entry.builder(*lead, outputs, in_chans, **params)
    if pretrained or weights:
        load_pretrained(model, name, weights, outputs)
    if heads == "multi":
        if num_classes == 2 or not head_sizes or math.prod(head_sizes) != num_classes:
            raise ConfigError(f"model.params.head_sizes = {list(head_sizes)} must multiply to "
                              f"num_classes = {num_classes} (mask: [3, 2, 3] -> 18); a binary "
                              "task needs heads = \"single\"")
        model = MultiHead(model, head_sizes)
    return model


class MultiHead(nn.Module):
    """Shared backbone, one linear head per factor (mask 3, gender 2, age 3).

    forward returns log p(class) over the product classes in row-major order
    (mask*6 + gender*3 + age): the sum of the heads' log-softmaxes. Its softmax is the
    outer product of the heads' softmaxes, and cross-entropy on it is the sum of the
    three per-head cross-entropies, so the trainer needs nothing special."""

    def __init__(self, backbone: nn.Module, sizes: tuple[int, ...]):
        super().__init__()
        in_features = strip_head(backbone)
        self.backbone = backbone
        self.sizes = tuple(sizes)
        self.heads = nn.ModuleList(xavier_linear(in_features, n) for n in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        total = 0
        for i, head in enumerate(self.heads):
            shape = [feats.shape[0]] + [1] * len(self.sizes)
            shape[i + 1] = self.sizes[i]
            total = total + torch.log_softmax(head(feats).float(), 1).view(shape)
        return total.reshape(feats.shape[0], -1)


def xavier_linear(in_features: int, out_features: int) -> nn.Linear:
    """nn.Linear with Xavier-uniform weight (bound sqrt(6/(fan_in+fan_out))) and zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """(dotted name, module) of the output layer: timm's get_classifier(), then fc /
    classifier / head / heads (the last nn.Linear inside containers, e.g. ConvNeXt
    head.fc, torchvision classifier[-1]), else the model's last nn.Linear."""
    if isinstance(model, MultiHead):
        return "heads", model.heads
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, (nn.Linear, nn.Conv2d)):
            return _name_of(model, head), head
    for attr in HEAD_ATTRS:
        sub = getattr(model, attr, None)
        if isinstance(sub, nn.Linear):
            return attr, sub
        if isinstance(sub, nn.Module):
            linears = [(n, m) for n, m in sub.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                return f"{attr}.{linears[-1][0]}", linears[-1][1]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear output layer to replace; "
                          "give it an `fc` or `classifier` attribute")
    return linears[-1]


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the output layer for a new Xavier-initialized nn.Linear with num_classes outputs."""
    if isinstance(model, MultiHead):
        raise ConfigError("replace_head on a multi-head model: set model.params.head_sizes instead")
    name, old = find_head(model)
    if isinstance(old, nn.Conv2d):  # timm 1x1-conv classifiers: keep the layer type
        new = nn.Conv2d(old.in_channels, num_classes, 1)
        nn.init.xavier_uniform_(new.weight)
        nn.init.zeros_(new.bias)
    else:
        new = xavier_linear(old.in_features, num_classes)
    _set_module(model, name, new.to(old.weight.device, old.weight.dtype))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def strip_head(model: nn.Module) -> int:
    """Replace the output layer by nn.Identity; return its input width (for MultiHead)."""
    name, old = find_head(model)
    _set_module(model, name, nn.Identity())
    return old.in_features if isinstance(old, nn.Linear) else old.in_channels


def _name_of(model: nn.Module, target: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is target)


def _set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 1.0,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer groups: head vs backbone LR (when backbone_lr_mult != 1), and no weight
    decay on biases and norm weights (1-D tensors), the timm / nanoGPT convention. Each
    group keeps `lr_mult` so a scheduler that sets the LR per step can scale it:
    group["lr"] = lr_at(step) * group["lr_mult"]."""
    head_ids = set()
    if backbone_lr_mult != 1.0:  # one LR for all: two groups, half the optimizer's calls
        _, head = find_head(model)
        head_ids = {id(p) for p in head.parameters()}
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        part = "all" if backbone_lr_mult == 1.0 else "head" if id(p) in head_ids else "backbone"
        buckets.setdefault((part, p.ndim > 1), []).append(p)
    groups = []
    for (part, decay), params in sorted(buckets.items()):
        mult = backbone_lr_mult if part == "backbone" else 1.0
        groups.append({"params": params, "lr": lr * mult, "lr_mult": mult,
                       "weight_decay": weight_decay if decay else 0.0,
                       "name": f"{part}_{'decay' if decay else 'no_decay'}"})
    return groups


def set_backbone_trainable(model: nn.Module, flag: bool, *, train_bn: bool = True) -> None:
    """Freeze (flag=False) or unfreeze everything but the head. Norm layers stay trainable
    when train_bn (fastai's default: frozen BN statistics hurt transfer to new data)."""
    _, head = find_head(model)
    head_ids = {id(p) for p in head.parameters()}
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES)
                for p in m.parameters(recurse=False)} if train_bn else set()
    for p in model.parameters():
        if id(p) not in head_ids:
            p.requires_grad_(flag or id(p) in norm_ids)


def image_model_names() -> list[str]:
    """Registered image models (the `timm:` / `torchvision:` prefixes excluded)."""
    return sorted(n for n, e in MODELS.items() if e.task == "image" and not n.endswith(":"))

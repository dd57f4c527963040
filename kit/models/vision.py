"""Image models: built-in CNNs, `timm:<name>`, `torchvision:<name>`, offline weights.

Registered into the model registry (kit/models/registry.py). Image builders take
`(num_classes, in_chans)` positionally and `model.params` as keywords; the `timm:` and
`torchvision:` prefixes take the architecture name first. Heads: kit/models/heads.py.

    model = build_image_model("timm:resnet18", 18, pretrained=True, weights="r18.safetensors")
"""

from __future__ import annotations

import difflib
import math

import torch
from torch import nn

from kit.errors import ConfigError
from kit.models.heads import MultiHead, set_module
from kit.models.registry import MODELS, ModelEntry, check_params, get_entry, n_outputs, register
from kit.models.weights import load_pretrained


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
            set_module(model, name, new)
            return
    raise ConfigError(f"found no 3-channel input conv to adapt to in_chans={in_chans}")


def resolve(name: str) -> tuple[ModelEntry, tuple[str, ...]]:
    """Registry entry and the leading builder arguments: ("timm:resnet18") -> (entry, ("resnet18",))."""
    if ":" in name:
        prefix, arch = name.split(":", 1)
        if f"{prefix}:" in MODELS and arch:
            return MODELS[f"{prefix}:"], (arch,)
    entry = get_entry(name, task="image")
    return entry, ()


def build_image_model(name: str, num_classes: int, *, in_chans: int = 3, pretrained: bool = False,
                      weights: str = "", params: dict | None = None,
                      outputs: int | None = None) -> nn.Module:
    """Build from the registry; load offline weights; optionally three heads -> 18 classes.

    `params["heads"] = "multi"` with `params["head_sizes"] = [3, 2, 3]` builds one linear
    head per factor on the shared backbone (see MultiHead)."""
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


def image_model_names() -> list[str]:
    """Registered image models (the `timm:` / `torchvision:` prefixes excluded)."""
    return sorted(n for n, e in MODELS.items() if e.task == "image" and not n.endswith(":"))

"""Output layers of image networks: find, replace (Xavier), strip, several heads, and the
optimizer's parameter groups and backbone freezing that hinge on knowing the head.

    replace_head(model, 10)            # new nn.Linear, Xavier-uniform weight, zero bias
    groups = param_groups(model, lr=1e-3, backbone_lr_mult=0.1, weight_decay=1e-4)
    set_backbone_trainable(model, False)

Used by kit/models/vision.py (building) and kit/models/weights.py (loading a checkpoint
whose head has another shape); it imports neither.
"""

from __future__ import annotations

import torch
from torch import nn

from kit.errors import ConfigError

# Attribute names that hold the output layer, in the order they are tried (torchvision:
# resnet `fc`, mobilenet/efficientnet/convnext `classifier`, vit `heads`; timm: `head`).
HEAD_ATTRS = ("fc", "classifier", "head", "heads")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


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
    set_module(model, name, new.to(old.weight.device, old.weight.dtype))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return model


def strip_head(model: nn.Module) -> int:
    """Replace the output layer by nn.Identity; return its input width (for MultiHead)."""
    name, old = find_head(model)
    set_module(model, name, nn.Identity())
    return old.in_features if isinstance(old, nn.Linear) else old.in_channels


def _name_of(model: nn.Module, target: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is target)


def set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
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

"""MixUp and CutMix on a training batch (torchvision.transforms.v2), on whatever device the
batch is on: after the trainer moved it, so device-resident pixels are mixed on the GPU.

    mix = BatchMix(num_classes=10, mixup=0.2, cutmix=1.0, prob=0.5)
    batch = mix(batch)   # x mixed; y soft targets (N, C) rows summing to 1, or (N,) in [0, 1]

`image.mixup` / `cutmix` are the Beta alphas (0 = off; both on: one of the two per
batch, at random), `mix_prob` the share of training batches mixed. Validation and test
batches never pass through it. A multi-class head learns from the soft targets with
cross-entropy; a binary single-logit head gets the positive class's mixed share with BCE.
"""

from __future__ import annotations

import torch


class BatchMix:
    def __init__(self, num_classes: int, *, mixup: float = 0.0, cutmix: float = 0.0,
                 prob: float = 1.0):
        from torchvision.transforms import v2

        mixes = ([v2.MixUp(alpha=mixup, num_classes=num_classes)] if mixup else []) + \
            ([v2.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix else [])
        if not mixes:
            raise ValueError("BatchMix needs mixup > 0 or cutmix > 0")
        self.mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
        self.binary, self.prob = num_classes == 2, prob

    def __call__(self, batch: dict) -> dict:
        if self.prob < 1 and torch.rand(()) >= self.prob:
            return batch
        x, y = self.mix(batch["x"], batch["y"])
        return {**batch, "x": x, "y": y[:, 1] if self.binary else y}


def batch_mix(image, num_classes: int, problem: str) -> BatchMix | None:
    """The training batches' mix from the [image] settings (kit/config/sections.py ImageConfig), or
    None."""
    if not (image.mixup or image.cutmix) or problem == "regression":
        return None
    return BatchMix(num_classes, mixup=image.mixup, cutmix=image.cutmix, prob=image.mix_prob)

"""Model registry, head replacement (Xavier), fine-tuning controls, offline pretrained weights."""

import math
import socket

import numpy as np
import pytest
import torch
from torch import nn

from kit.errors import ConfigError
from kit.models import MODELS, build_model, get_entry
from kit.models.heads import (
    MultiHead,
    find_head,
    param_groups,
    replace_head,
    set_backbone_trainable,
)
from kit.models.vision import build_image_model, image_model_names
from kit.models.weights import load_pretrained, save_weights

# (name, input size): small inputs keep the sweep fast; ViT needs its patch grid size.
ARCHS = [
    ("timm:resnet18", 64), ("timm:efficientnet_b0", 64), ("timm:convnext_nano", 64),
    ("timm:vit_tiny_patch16_224", 224), ("timm:mobilenetv3_small_100", 64),
    ("torchvision:resnet18", 64), ("torchvision:efficientnet_b0", 64),
    ("torchvision:mobilenet_v3_small", 64),
]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test: offline means offline."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def assert_xavier(layer: nn.Module, fan_in: int, fan_out: int):
    """Uniform(-b, b) with b = sqrt(6 / (fan_in + fan_out)): max near b, std b / sqrt(3)."""
    w = layer.weight.detach().flatten().double()
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert w.abs().max() <= bound + 1e-6
    assert w.abs().max() >= 0.9 * bound  # not a narrower init (PyTorch's default is 1/sqrt(fan_in))
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    assert abs(w.mean().item()) < 0.1 * bound
    assert torch.count_nonzero(layer.bias) == 0


def registered_image_models():
    return [(name, 32) for name in image_model_names()]


@pytest.mark.parametrize("name,size", registered_image_models() + ARCHS)
def test_replace_head_gives_new_xavier_head_and_right_output(name, size, no_network):
    in_chans = 1 if name == "mnist_cnn" else 3
    model = build_image_model(name, 1000 if ":" in name else 10, in_chans=in_chans)
    head_name, old = find_head(model)
    replace_head(model, 7)
    new_name, new = find_head(model)
    assert new_name == head_name and new is not old and new.out_features == 7
    assert_xavier(new, new.in_features, 7)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 7)


def test_registry_sweep_covers_every_registered_model():
    image = set(image_model_names())
    assert {"small_cnn", "mnist_cnn"} <= image
    tabular = {n for n, e in MODELS.items() if e.task == "tabular" and e.kind == "torch"}
    bins = [np.linspace(-2, 2, 5)] * 3
    for name in tabular - {"tabm"}:  # tabular torch models have a head too
        model = build_model(name, task="tabular", n_numeric=3, cardinalities=[4], n_outputs=5,
                            bins=bins)
        replace_head(model, 4)
        _, head = find_head(model)
        assert_xavier(head, head.in_features, 4)
        out = model(torch.randn(6, 3), torch.zeros(6, 1, dtype=torch.long))
        assert out.shape == (6, 4)
    # TabM's head is k members' heads in one ensemble layer (tests/test_tabm.py); no
    # pretrained tabular backbone exists whose head it would replace
    tabm = build_model("tabm", task="tabular", n_numeric=3, cardinalities=[4], n_outputs=5,
                       bins=bins)
    assert tabm(torch.randn(6, 3), torch.zeros(6, 1, dtype=torch.long)).shape == (6, 8, 5)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"valid: .*mnist_cnn.*small_cnn.*timm:<name>.*timm.list_models"):
        get_entry("resnet", task="image")
    with pytest.raises(ConfigError, match=r"unknown timm model 'resnet181'.*close matches: .*resnet18"):
        build_image_model("timm:resnet181", 3)
    with pytest.raises(ConfigError, match=r"unknown torchvision model 'resnet19'.*resnet18"):
        build_image_model("torchvision:resnet19", 3)
    with pytest.raises(ConfigError, match=r"unknown model.params \['depth'\]; valid: width, dropout"):
        build_image_model("small_cnn", 3, params={"depth": 3})


def test_binary_image_model_has_one_logit():
    model = build_image_model("small_cnn", 2, in_chans=3, params={"width": 4})
    assert model(torch.randn(3, 3, 16, 16)).shape == (3, 1)


def test_torchvision_gray_input_swaps_the_stem():
    model = build_image_model("torchvision:resnet18", 10, in_chans=1)
    assert model.conv1.in_channels == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_multi_head_softmax_is_the_product_of_the_heads():
    torch.manual_seed(0)
    model = build_image_model("small_cnn", 18, params={"width": 4, "heads": "multi",
                                                      "head_sizes": [3, 2, 3]})
    assert isinstance(model, MultiHead)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        p = model(x).softmax(1)
        feats = model.backbone(x)
        mask, gender, age = (h(feats).softmax(1) for h in model.heads)
    expected = torch.einsum("ni,nj,nk->nijk", mask, gender, age).reshape(4, 18)
    torch.testing.assert_close(p, expected)
    for head, n in zip(model.heads, (3, 2, 3)):
        assert_xavier(head, head.in_features, n)
    with pytest.raises(ConfigError, match="must multiply to num_classes = 18"):
        build_image_model("small_cnn", 18, params={"heads": "multi", "head_sizes": [3, 2]})


def test_param_groups_split_head_backbone_and_decay():
    model = build_image_model("small_cnn", 5, params={"width": 4})
    groups = {g["name"]: g for g in param_groups(model, lr=1e-3, backbone_lr_mult=0.1,
                                                 weight_decay=0.05)}
    assert set(groups) == {"backbone_decay", "backbone_no_decay", "head_decay", "head_no_decay"}
    assert groups["head_decay"]["lr"] == pytest.approx(1e-3)
    assert groups["backbone_decay"]["lr"] == pytest.approx(1e-4)
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0  # BN weights, biases
    assert groups["head_decay"]["params"] == [model.fc.weight]
    same_lr = {g["name"]: g for g in param_groups(model, lr=1e-3, weight_decay=0.05)}
    assert set(same_lr) == {"all_decay", "all_no_decay"}
    assert sum(len(g["params"]) for g in same_lr.values()) == len(list(model.parameters()))
    n = sum(len(g["params"]) for g in groups.values())
    assert n == len(list(model.parameters()))


def test_freezing_keeps_head_and_norms_trainable_then_unfreezes():
    model = build_image_model("small_cnn", 5, params={"width": 4})
    set_backbone_trainable(model, False)
    conv = model.features[0][0]
    bn = model.features[0][1]
    assert not conv.weight.requires_grad and bn.weight.requires_grad and model.fc.weight.requires_grad
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_offline_weights_round_trip_into_a_new_head(tmp_path, suffix, no_network):
    torch.manual_seed(0)
    source = build_image_model("timm:resnet18", 1000)  # as published: a 1000-class head
    path = save_weights(source, tmp_path / f"resnet18{suffix}")
    model = build_image_model("timm:resnet18", 18, pretrained=True, weights=str(path))
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.fc.out_features == 18
    assert_xavier(model.fc, 512, 18)
    # the same class count keeps the saved head (resuming from one's own weights)
    same = build_image_model("timm:resnet18", 1000, pretrained=True, weights=str(path))
    torch.testing.assert_close(same.fc.weight, source.fc.weight)


def test_offline_weights_into_gray_input_and_from_a_kit_checkpoint(tmp_path, no_network):
    source = build_image_model("timm:resnet18", 1000)
    torch.save({"model": source.state_dict(), "meta": {"epoch": 3}}, tmp_path / "best.pt")
    model = build_image_model("timm:resnet18", 10, in_chans=1, pretrained=True,
                              weights=str(tmp_path / "best.pt"))
    # timm's rule for one channel: the RGB filters summed
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))


def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match=r"scripts/fetch_weights.py timm:resnet18.*model.weights"):
        build_image_model("timm:resnet18", 18, pretrained=True)
    with pytest.raises(ConfigError, match=r"'.*nope.pth': no such file; attach"):
        build_image_model("timm:resnet18", 18, pretrained=True, weights=str(tmp_path / "nope.pth"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ConfigError, match="junk.safetensors.*not a readable safetensors"):
        build_image_model("timm:resnet18", 18, weights=str(tmp_path / "junk.safetensors"))


def test_weights_of_another_architecture_are_refused(tmp_path, no_network):
    path = save_weights(build_image_model("small_cnn", 10), tmp_path / "small.safetensors")
    with pytest.raises(ConfigError, match=r"does not fit model 'timm:resnet18': only \d of 122 tensors"):
        load_pretrained(build_image_model("timm:resnet18", 10), "timm:resnet18", str(path), 10)


@pytest.mark.parametrize("name,message", [
    ("timm:resnet181", "unknown timm model 'resnet181'"),
    ("small_cnn", "give timm:<arch> or torchvision:<arch>"),
])
def test_fetch_weights_refuses_bad_names_before_any_download(name, message):
    import subprocess
    import sys

    from conftest import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_weights.py"), name],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-1000:]


@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_every_sklearn_kind_saves_and_loads_through_skops(tmp_path, problem):
    """Every registered scikit-learn kind is fitted, written as model.skops and loaded back
    with only the kit's trusted types (an untrusted type would refuse the run's folds)."""
    import skops.io as sio

    from kit.tasks.tabular.task import _load_sklearn

    rng = np.random.default_rng(0)
    x = np.hstack([rng.normal(size=(60, 2)), rng.integers(0, 4, (60, 1))]).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) if problem == "classification" else x[:, 0] * 2.0
    names = [n for n, e in MODELS.items() if e.kind == "sklearn"]
    assert {"gbdt", "linear", "voting"} <= set(names)
    for name in names:
        model = build_model(name, task="tabular", n_numeric=2, cardinalities=[4],
                            problem=problem, member_params={"gbdt": {"max_iter": 5}})
        model.fit(x, y)
        sio.dump(model, tmp_path / f"{name}.skops")
        again = _load_sklearn(tmp_path / f"{name}.skops")
        np.testing.assert_allclose(again.predict(x).astype(float), model.predict(x).astype(float))

"""TabM: k ensemble members through the objective's contract, numeric bins as fold state,
and the kind's builder on real tensors."""

import numpy as np
import pandas as pd
import pytest
import torch

from kit.data.bins import NumericBins
from kit.data.tabular import (
    CategoricalPreprocessor,
    NumericPreprocessor,
    load_bins,
    load_preprocessors,
    save_preprocessors,
)
from kit.models.registry import build_model
from kit.objective import Objective, TargetTransform

# --- k members: the mean of their losses, the mean of their probabilities ------------------


@pytest.mark.parametrize(("problem", "classes"), [("classification", 2),
                                                  ("classification", 3), ("regression", 0)])
def test_member_outputs_train_on_the_mean_member_loss_and_predict_their_mean(problem, classes):
    torch.manual_seed(0)
    target = TargetTransform().fit(np.arange(5.0)) if problem == "regression" else None
    objective = Objective(problem, classes, target=target)
    n, k, d = 6, 4, objective.n_outputs
    outputs = torch.randn(n, k, d)
    y = torch.randn(n) if problem == "regression" else torch.randint(0, classes, (n,))
    each = [objective.loss(outputs[:, m], y) for m in range(k)]
    torch.testing.assert_close(objective.loss(outputs, y), torch.stack(each).mean())
    # not the loss of the averaged output: that would train one model, not k
    assert not torch.allclose(objective.loss(outputs, y), objective.loss(outputs.mean(1), y))
    members = torch.stack([objective.predict(outputs[:, m]) for m in range(k)])
    torch.testing.assert_close(objective.predict(outputs), members.mean(0))
    if problem == "classification":  # probabilities averaged, not logits
        torch.testing.assert_close(objective.predict(outputs).sum(1), torch.ones(n))


def test_soft_targets_repeat_for_every_member():
    objective = Objective("classification", 3)
    outputs = torch.randn(5, 2, 3)
    soft = torch.softmax(torch.randn(5, 3), 1)  # MixUp-style rows summing to 1
    each = [objective.loss(outputs[:, m], soft) for m in range(2)]
    torch.testing.assert_close(objective.loss(outputs, soft), torch.stack(each).mean())


# --- numeric bins -----------------------------------------------------------------------------


def test_bins_are_quantile_edges_per_column_and_a_constant_column_gets_two(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=500), np.full(500, 3.0), rng.integers(0, 3, 500)])
    bins = NumericBins(n_bins=8).fit(x.astype(np.float32))
    assert len(bins.edges) == 3
    assert len(bins.edges[0]) == 9 and np.all(np.diff(bins.edges[0]) > 0)
    np.testing.assert_allclose(bins.edges[0][[0, -1]], [x[:, 0].min(), x[:, 0].max()], rtol=1e-6)
    np.testing.assert_array_equal(bins.edges[1], [2.0, 4.0])
    assert len(bins.edges[2]) == 3  # three distinct values: no more edges than that
    path = tmp_path / "preprocessors.json"
    frame = pd.DataFrame({"a": x[:, 0], "c": ["u"] * 500})
    num, cat = NumericPreprocessor().fit(frame, ["a"]), CategoricalPreprocessor().fit(frame, ["c"])
    save_preprocessors(path, num, cat, bins=bins)
    again = load_bins(path)
    assert again.n_bins == 8
    for a, b in zip(again.edges, bins.edges, strict=True):
        np.testing.assert_array_equal(a, b)
    save_preprocessors(path, num, cat)
    assert load_bins(path) is None  # a model without bins saves none


# --- the builder -------------------------------------------------------------------------------


@pytest.mark.parametrize("embeddings", ["ple", "periodic", "none"])
def test_tabm_gives_k_member_outputs_and_learns(embeddings):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x_num = torch.as_tensor(rng.normal(size=(256, 3)), dtype=torch.float32)
    x_cat = torch.as_tensor(rng.integers(0, 4, (256, 2)))
    y = ((x_num[:, 0] + (x_cat[:, 0] == 2).float()) > 0.5).long()
    bins = NumericBins(16).fit(x_num.numpy()).edges
    model = build_model("tabm", n_numeric=3, cardinalities=[4, 4], n_outputs=1, bins=bins,
                        k=4, d_block=32, embeddings=embeddings, task="tabular")
    assert model(x_num, x_cat).shape == (256, 4, 1)
    objective, opt = Objective("classification", 2), torch.optim.AdamW(model.parameters(), 3e-3)
    first = objective.loss(model(x_num, x_cat), y).item()
    for _ in range(30):
        opt.zero_grad()
        objective.loss(model(x_num, x_cat), y).backward()
        opt.step()
    assert objective.loss(model(x_num, x_cat), y).item() < 0.8 * first
    members = model(x_num, x_cat)[:, :, 0]
    assert members.std(dim=1).mean() > 1e-3  # k distinct members, not one model copied


def test_tabm_without_numeric_or_categorical_columns():
    only_cat = build_model("tabm", n_numeric=0, cardinalities=[3], n_outputs=2, bins=[], k=2,
                           d_block=8, task="tabular")
    assert only_cat(torch.zeros(5, 0), torch.zeros(5, 1, dtype=torch.long)).shape == (5, 2, 2)
    only_num = build_model("tabm", n_numeric=2, cardinalities=[], n_outputs=1,
                           bins=NumericBins(4).fit(np.random.rand(50, 2)).edges, k=2,
                           d_block=8, task="tabular")
    assert only_num(torch.rand(5, 2), torch.zeros(5, 0, dtype=torch.long)).shape == (5, 2, 1)


def test_an_unknown_embedding_is_a_config_error():
    from kit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"embeddings = 'pl'; valid: ple, periodic, none"):
        build_model("tabm", n_numeric=1, cardinalities=[], n_outputs=1, bins=[np.array([0, 1])],
                    embeddings="pl", task="tabular")


# --- quantile scaling ---------------------------------------------------------------------------


def test_quantile_scaling_is_sklearns_fitted_on_the_fold_and_survives_the_json(tmp_path):
    from sklearn.preprocessing import QuantileTransformer

    rng = np.random.default_rng(2)
    train = pd.DataFrame({"area": rng.lognormal(3, 1, 900), "age": rng.normal(40, 9, 900)})
    train.loc[::50, "area"] = np.nan  # imputed with the median before the transform
    test = pd.DataFrame({"area": [1e6, 0.5, np.nan], "age": [40.0, -5.0, 120.0]})
    num = NumericPreprocessor(scaling="quantile").fit(train, ["area", "age"])
    filled = train.fillna({"area": train["area"].median()}).to_numpy()
    expected = QuantileTransformer(n_quantiles=30, output_distribution="normal",
                                   subsample=None).fit(filled)
    z = expected.transform(test.fillna({"area": train["area"].median()}).to_numpy())
    z = (z - expected.transform(filled).mean(0)) / expected.transform(filled).std(0)
    np.testing.assert_allclose(num.transform(test), z, rtol=1e-5, atol=1e-5)
    assert np.abs(num.transform(test)).max() < 6  # an outlier lands in the tail, not at 1e6
    cat = CategoricalPreprocessor().fit(train.assign(c="x"), ["c"])
    save_preprocessors(tmp_path / "p.json", num, cat)
    again = load_preprocessors(tmp_path / "p.json")[0]
    np.testing.assert_array_equal(again.transform(test), num.transform(test))
    standard = NumericPreprocessor().fit(train, ["area", "age"])
    assert standard.quantile is None and np.abs(standard.transform(test)).max() > 100


# --- train.batch_size = 0 ------------------------------------------------------------------------


def test_batch_size_zero_scales_with_the_training_rows(tmp_path):
    import json
    from pathlib import Path

    from conftest import ROOT

    from kit.cli import train_main
    from kit.hooks import load_hook
    from kit.tasks.tabular.models import batch_size_for

    assert [batch_size_for(n) for n in (10, 713, 876, 5_000, 18_200, 533_000)] == [
        32, 32, 32, 256, 1024, 1024]
    data = tmp_path / "data"
    load_hook(ROOT / "competitions" / "titanic", "demo", "make_demo")(data)
    summary = train_main(["--comp", "titanic", "--data", str(data), "--runs", str(tmp_path / "r"),
                          "--submissions", str(tmp_path / "s"), "--fits", "1",
                          "--set", "model.name=tabm", "--set", "train.batch_size=0",
                          "--set", "train.epochs=1", "--set", "cv.repeats=1"])
    run = Path(summary["run_dir"])
    train_rows = int((pd.read_csv(run / "folds.csv")["fold"] != 0).sum())
    steps = pd.read_csv(run / "fold0" / "history.csv")["step"].iloc[0]
    assert steps == train_rows // batch_size_for(train_rows)  # full batches of the picked size
    assert json.loads((run / "scores.json").read_text())["n_folds_trained"] == 1

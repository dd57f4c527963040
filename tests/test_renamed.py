"""One meaning per word a user types (issue 32, item 7): each renamed key, flag or file field
is refused under its old name in a competition's config or on the command line, naming the
new one, and read under its new name from a run folder an older kit wrote."""

import json
from pathlib import Path

import pandas as pd
import pytest

from kit.cli import run_script, train_main
from kit.config import Config, apply_overrides, load_config
from kit.config.load import load_resolved, to_toml
from kit.errors import ConfigError
from kit.run_folder import read_history, read_scores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, new", [
    ("[ensemble]\nfold_vote = \"hard\"\n", "train.fold_vote"),
    ("[model]\nname = \"blend\"\n", "model.name = \"voting\""),
    ("[model.params.blend]\nmembers = [\"linear\", \"gbdt\"]\n", "[model.params.voting]"),
])
def test_an_old_key_in_a_competition_config_is_refused_naming_the_new(tmp_path, text, new):
    path = tmp_path / "comp" / "config.toml"
    path.parent.mkdir()
    path.write_text("[competition]\ntask = \"tabular\"\n" + text)
    with pytest.raises(ConfigError, match="renamed") as info:
        load_config(path)
    assert new in str(info.value) and str(path) in str(info.value)


def test_an_old_key_in_set_is_refused_naming_the_new():
    with pytest.raises(ConfigError, match="train.fold_vote"):
        apply_overrides(Config(), ["ensemble.fold_vote=hard"])
    assert apply_overrides(Config(), ["train.fold_vote=hard"]).train.fold_vote == "hard"


@pytest.mark.parametrize("flags", [["--comp", "titanic", "--folds", "2"],
                                   ["--resume", "runs/titanic/x", "--folds", "2"]])
def test_folds_on_the_command_line_is_refused_naming_fits(flags, capsys):
    with pytest.raises(ConfigError, match="--folds is renamed --fits") as info:
        train_main(flags)
    assert "write --fits 2" in str(info.value)
    assert run_script(train_main, flags) == 2
    assert "--folds is renamed --fits" in capsys.readouterr().err


def test_kernel_py_refuses_folds_too(capsys):
    from importlib import util

    spec = util.spec_from_file_location("kernel_script", ROOT / "scripts" / "kernel.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert run_script(module.main, ["--comp", "titanic", "--demo", "--folds", "1"]) == 2
    assert "--folds is renamed --fits" in capsys.readouterr().err


def test_a_run_folders_old_names_are_read_as_the_new(tmp_path):
    """config.toml's [ensemble] fold_vote and "blend" kind, scores.json's "folds",
    history.csv's val_ columns: what an older kit wrote, read in today's names."""
    cfg = apply_overrides(Config(), ["train.fold_vote=hard", "model.name=voting",
                                     'model.params.voting={members = ["linear", "rf"]}'])
    text = to_toml(cfg).replace('fold_vote = "hard"\n', "").replace(
        'name = "voting"', 'name = "blend"').replace("[model.params.voting]",
                                                     "[model.params.blend]")
    (tmp_path / "config.toml").write_text(text + '\n[ensemble]\nfold_vote = "hard"\n')
    loaded = load_resolved(tmp_path / "config.toml")
    assert loaded.train.fold_vote == "hard" and loaded.model.name == "voting"
    assert loaded.model.params["voting"] == {"members": ["linear", "rf"]}
    (tmp_path / "scores.json").write_text(json.dumps(
        {"folds": [0.8, 0.9], "folds_argmax": [0.7, 0.8], "targets": {"a": {"folds": [1.0]}}}))
    scores = read_scores(tmp_path)
    assert scores["fold_scores"] == [0.8, 0.9] and scores["fold_scores_argmax"] == [0.7, 0.8]
    assert "folds" not in scores and scores["targets"]["a"]["fold_scores"] == [1.0]
    fold = tmp_path / "fold0"
    fold.mkdir()
    pd.DataFrame({"epoch": [0], "train_loss": [0.5], "val_loss": [0.6], "val_metric": [0.7],
                  "ema_val_metric": [0.71], "lr": [1e-3]}).to_csv(fold / "history.csv",
                                                                 index=False)
    (row,) = read_history(fold)
    assert (row["valid_loss"], row["valid_metric"], row["ema_valid_metric"]) == (0.6, 0.7, 0.71)

import re

import pytest

from kit.config import Config, apply_overrides, load_config, load_resolved, to_toml
from kit.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "comp" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_and_slug_from_folder(tmp_path):
    cfg = load_config(write(tmp_path, "[train]\nepochs = 3\n"))
    assert cfg.train.epochs == 3 and cfg.train.batch_size == Config().train.batch_size
    assert cfg.competition.slug == "comp"


def test_unknown_section_names_file_and_lists_sections(tmp_path):
    path = write(tmp_path, "[trian]\nepochs = 3\n")
    with pytest.raises(ConfigError, match=r"config\.toml.*unknown section \[trian\].*train"):
        load_config(path)


def test_unknown_key_lists_valid_keys(tmp_path):
    path = write(tmp_path, "[train]\nepoch = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epoch'.*epochs"):
        load_config(path)


def test_wrong_type_and_bad_choice(tmp_path):
    with pytest.raises(ConfigError, match="train.epochs = 'many'"):
        load_config(write(tmp_path, '[train]\nepochs = "many"\n'))
    with pytest.raises(ConfigError, match="cv.strategy = 'random' is not one of stratified"):
        apply_overrides(Config(), ["cv.strategy=random"])


def test_set_overrides_cast_to_field_types():
    cfg = apply_overrides(Config(), ["train.epochs=7", "optim.lr=0.01", "image.tta=hflip",
                                     "features.numeric=a,b", "model.params.gbdt.max_iter=9"])
    assert (cfg.train.epochs, cfg.optim.lr, cfg.image.tta) == (7, 0.01, ("hflip",))
    assert cfg.features.numeric == ("a", "b")
    assert cfg.model.params_for("gbdt") == {"max_iter": 9}


def test_set_errors_are_clear():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(Config(), ["train.epochs"])
    with pytest.raises(ConfigError, match="is not a valid int"):
        apply_overrides(Config(), ["train.epochs=1.5"])
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        apply_overrides(Config(), ["optim.lrr=1"])


def test_params_for_merges_shared_and_model_table():
    cfg = apply_overrides(Config(), ["model.params.dropout=0.1", "model.params.mlp.hidden=[8]"])
    assert cfg.model.params_for("mlp") == {"dropout": 0.1, "hidden": [8]}
    assert cfg.model.params_for("gbdt") == {"dropout": 0.1}


def test_dry_run_section_applies_only_when_asked(tmp_path):
    path = write(tmp_path, '[train]\nepochs = 30\n[dry_run]\n"train.epochs" = 1\n')
    assert load_config(path).train.epochs == 30
    assert load_config(path, dry_run=True).train.epochs == 1


def test_demo_section_applies_before_dry_run_and_set(tmp_path):
    path = write(tmp_path, '[train]\nepochs = 30\nbatch_size = 64\n'
                           '[demo]\n"train.epochs" = 6\n"train.batch_size" = 16\n'
                           '[dry_run]\n"train.epochs" = 1\n')
    assert load_config(path).train.epochs == 30
    demo = load_config(path, demo=True)
    assert (demo.train.epochs, demo.train.batch_size) == (6, 16)
    both = load_config(path, demo=True, dry_run=True, overrides=["train.batch_size=8"])
    assert (both.train.epochs, both.train.batch_size) == (1, 8)
    bad = write(tmp_path, '[demo]\n"train.epohcs" = 6\n')
    with pytest.raises(ConfigError, match="epohcs"):
        load_config(bad, demo=True)


def test_resolved_config_round_trips(tmp_path):
    cfg = apply_overrides(Config(), ["train.epochs=4", "model.params.mlp.hidden=[16, 8]",
                                     "features.categorical=Sex"])
    path = tmp_path / "config.toml"
    path.write_text(to_toml(cfg))
    assert load_resolved(path) == cfg


def test_group_strategy_needs_group_column():
    with pytest.raises(ConfigError, match="needs cv.group"):
        apply_overrides(Config(), ["cv.strategy=group"])


# --- device profiles ---------------------------------------------------------------------

PROFILED = """
[competition]
task = "tabular"

[train]
epochs = 30
batch_size = 64

[cpu]
"train.epochs" = 3
"train.batch_size" = 16

[gpu]
"train.epochs" = 50

[demo]
"train.batch_size" = 8
"""


def test_a_profile_applies_only_on_its_device_before_demo_and_set(tmp_path):
    path = tmp_path / "c" / "config.toml"
    path.parent.mkdir()
    path.write_text(PROFILED)
    assert load_config(path).train.epochs == 30  # no profile asked: the config as written
    assert load_config(path, profile="cpu").train.epochs == 3
    assert load_config(path, profile="gpu").train.epochs == 50
    assert load_config(path, profile="mps").train.epochs == 50  # no [mps]: [gpu]
    both = load_config(path, profile="cpu", demo=True, overrides=["train.epochs=7"])
    assert (both.train.epochs, both.train.batch_size) == (7, 8)  # profile < demo < --set


def test_an_unknown_key_in_any_profile_is_an_error_on_every_device(tmp_path):
    path = tmp_path / "c" / "config.toml"
    path.parent.mkdir()
    path.write_text(PROFILED.replace('"train.epochs" = 50', '"train.epohcs" = 50'))
    with pytest.raises(ConfigError, match=r"\[gpu\].*epohcs.*valid keys"):
        load_config(path, profile="cpu")
    path.write_text(PROFILED + '\n[tpu]\n"train.epochs" = 1\n')
    with pytest.raises(ConfigError, match=r"unknown section \[tpu\].*cpu.*gpu.*mps"):
        load_config(path)


# --- the [image] section -------------------------------------------------------------------


def test_image_settings_are_typed_and_an_old_data_params_key_names_the_new_one(tmp_path):
    path = tmp_path / "digits" / "config.toml"
    path.parent.mkdir()
    path.write_text('[competition]\ntask = "image"\n\n[data.params]\nshape = [1, 28, 28]\n\n'
                    '[image]\nsize = [28, 28]\nchannels = 1\nmean = [0]\nstd = [1]\n'
                    'tta = ["shift"]\n')
    cfg = load_config(path, overrides=["image.tta_shift=1"])
    assert (cfg.image.size, cfg.image.mean, cfg.image.tta) == ((28, 28), (0.0,), ("shift",))
    assert cfg.data.params == {"shape": [1, 28, 28]}  # layout.py's arguments, as written
    assert load_config(path, overrides=["image.tta=[]"]).image.tta == ()  # TTA off
    with pytest.raises(ConfigError, match=r"image.size\[1\] = 'x' is not a valid int"):
        load_config(path, overrides=["image.size=28,x"])
    with pytest.raises(ConfigError, match=r"unknown key 'image.tta_views'; valid keys in "
                                          r"\[image\]: size, channels"):
        path.write_text(path.read_text() + "tta_views = 2\n")
        load_config(path)
    # a tabular competition's data.params may use any name for its features.py hook
    assert apply_overrides(Config(), ["data.params.size=3"]).data.params == {"size": 3}
    for old, new in (("augment = { hflip = 0.5 }", "augment = {hflip = 0.5} under [image]"),
                     ("mixup = 0.2", "mixup = 0.2 under [image]")):
        path.write_text(f'[competition]\ntask = "image"\n\n[data.params]\n{old}\n')
        with pytest.raises(ConfigError, match=rf"data.params.\w+ moved to image.\w+: write "
                                              rf"{re.escape(new)}"):
            load_config(path)


@pytest.mark.parametrize(("setting", "fragment"), [
    ("image.channels=2", "image.channels = 2; valid: 1 (gray), 3 (RGB)"),
    ("image.mean=[0.1, 0.2]", "image.mean = [0.1, 0.2] has 2 values for 3 channels"),
    ("image.size=[64]", "image.size = [64]; give [height, width]"),
])
def test_bad_image_values_name_the_key(setting, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        apply_overrides(Config(), [setting])


def test_a_run_saved_before_the_image_section_loads_as_it_ran(tmp_path):
    tabular = to_toml(Config()).replace("[train]\n", "[train]\ntta = false\n")
    (tmp_path / "tabular.toml").write_text(tabular)
    assert load_resolved(tmp_path / "tabular.toml") == Config()
    old_image = to_toml(apply_overrides(Config(), ["competition.task=image"]))
    old_image = old_image.replace("[image]", "[old_image]").replace("[train]\n",
                                                                    "[train]\ntta = true\n")
    old_image = old_image.split("[old_image]")[0] + "[track]" + old_image.split("[track]")[1]
    old_image = old_image.replace("[data.params]\n", "")
    old_image += ('\n[data.params]\nsize = [64, 48]\nchannels = 1\nmean = [0.5]\nstd = [0.25]\n'
                  'age_bounds = [30, 60]\n')
    (tmp_path / "image.toml").write_text(old_image)
    cfg = load_resolved(tmp_path / "image.toml")
    assert (cfg.image.size, cfg.image.channels, cfg.image.tta) == ((64, 48), 1, ("hflip",))
    assert cfg.data.params == {"age_bounds": [30, 60]}  # the layout's own arguments stay
    (tmp_path / "image.toml").write_text(old_image.replace("tta = true", "tta = false"))
    assert load_resolved(tmp_path / "image.toml").image.tta == ()


def test_batch_size_zero_is_for_tabular_tasks_only():
    from kit.tasks.image import check_image

    cfg = apply_overrides(Config(), ["competition.task=image", "train.batch_size=0"])
    with pytest.raises(ConfigError, match=r"train.batch_size = 0 .* is for tabular tasks; give "
                                          r"the images per batch"):
        check_image(cfg)
    with pytest.raises(ConfigError, match=r"train.batch_size must be at least 1 \(0: a tabular"):
        apply_overrides(Config(), ["train.batch_size=-1"])

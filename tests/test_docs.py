"""The manual cannot drift from the code (issue 32 item 2): README.md, docs/*.md and
competitions/*/README.md are checked against the kit itself, and kit/'s docstring examples run.

- TOML: every ```toml block loads through kit.config.load_config, as a competition's
  config.toml does. A block with a [competition] table is a whole config and loads alone.
  Any other block is a fragment, merged onto a base config table by table and key by key
  (the fragment wins): on competitions/<slug>/README.md the base is that competition's
  config.toml, on every other page the kit's defaults (an empty config.toml). The free-form
  tables are checked where the kit checks them: the profiles ([cpu] / [gpu] / [mps]) by
  load_config, [demo] and [dry_run] by loading with demo=True and dry_run=True,
  model.params.<kind> (and the shared model.params keys, for model.name) by building that
  kind as its task does with toy sizes (kit.models.build_model, or
  kit.models.vision.build_image_model: unknown keys and the boosters' unknown library
  names are refused), [tune.<kind>] by kit.tuning.study.search_space.
- Commands: a line of a code block that starts with python, torchrun, make or bash (after
  any VAR=value words), and every inline code span.
- --set: every `--set KEY=VALUE` in a command goes through
  kit.config.apply_overrides onto the base config (the command's `--comp SLUG` when it names
  a competition folder, else the page's base as above), then the model.params and [tune]
  checks. Placeholders: a KEY in PLACEHOLDER_KEYS is the generic form and is not checked; a
  VALUE in capitals (N, VALUE, WEIGHTS_FILE) stands for any value: the key is checked with
  the value it already has.
- Paths: every kit/, scripts/, competitions/, templates/, docs/ and tests/ path a page names
  exists (so does every scripts/X.py a command runs). A path is checked up to its first
  placeholder part (<slug>, SLUG, fold<k>, *); competitions/NAME is skipped where the same
  page makes it with `new_competition.py NAME`.
- Scripts and flags: every --flag after `scripts/X.py` (or `X.py`, for a script of
  scripts/) in a command is one that script's argparse parser takes (the parser is built
  in-process: each script runs as __main__ with --help until it calls parse_args). A flag
  in inline code outside such a command is some script's, unless the span runs another
  program (OTHER_TOOLS). Every `make TARGET` is a Makefile target.
- Links: every relative Markdown link resolves to a file, and its #anchor to a heading of
  that file (GitHub's anchor rule). Every ```python block parses.
- Doctests: every kit module holding `>>>` runs under doctest in a temporary working
  directory, except SKIP_MODULES (each entry says why; take it out once its examples run).
  An example that needs files a run writes carries `# doctest: +SKIP` and says so.

Each check is a function that returns the problems it finds, and a planted bad example
proves that it finds them (the test_*_catches_* tests).
"""

from __future__ import annotations

import argparse
import ast
import doctest
import functools
import importlib
import math
import re
import runpy
import shlex
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
from conftest import ROOT

from kit.config import Config, apply_overrides, load_config, read_toml, toml_value
from kit.errors import KitError

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                *(ROOT / "competitions").glob("*/README.md")])
SCRIPTS = {p.name: p for p in (ROOT / "scripts").glob("*.py")}
PATH_ROOTS = ("kit", "scripts", "competitions", "templates", "docs", "tests")
PLACEHOLDER_KEYS = {"section.key", "KEY", "k"}  # the generic `--set` forms
# Inline code that runs another program: its flags are that program's.
OTHER_TOOLS = ("kaggle", "pip", "dask", "torchrun", "pytest")
# kit modules whose docstring examples are not run, each with the reason (none today).
SKIP_MODULES: dict[str, str] = {}


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


# --- reading a page -----------------------------------------------------------------------

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def code_blocks(text: str, lang: str | None = None) -> list[str]:
    """The fenced blocks of `text` (those of language `lang` when given)."""
    return [body for kind, body in FENCE.findall(text) if lang is None or kind == lang]


def prose(text: str) -> str:
    """`text` without its fenced blocks."""
    return FENCE.sub("", text)


def inline_code(text: str) -> list[str]:
    """Inline code spans of the prose (a span may run over a line break); `\\|` is a table's |."""
    spans = re.findall(r"(?<!`)`([^`]+)`(?!`)", prose(text))
    return [re.sub(r"\s+", " ", s).replace("\\|", "|") for s in spans]


# A line of a code block that runs something (the other lines are file trees, module maps,
# program output): optional VAR=value words, then the program.
COMMAND = re.compile(r"^(?:\w+=\S*\s+)*(?:python\S*|\.venv/bin/python|torchrun|make|bash)\s")


def shell_lines(text: str) -> list[str]:
    """Every command line of the code blocks (continuations joined, comments dropped), then
    every inline code span."""
    lines = []
    for kind, body in FENCE.findall(text):
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()
            if kind not in ("toml", "python") and COMMAND.match(line + " "):
                lines.append(line)
    return lines + inline_code(text)


def words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in a prose span
        return command.split()


def base_slug(path: Path) -> str | None:
    """The competition a page is about (competitions/<slug>/README.md), else None."""
    return path.parent.name if path.parent.parent == ROOT / "competitions" else None


# --- TOML and --set -----------------------------------------------------------------------

def merged(base: dict, fragment: dict) -> dict:
    """`fragment` over `base`, table by table and key by key."""
    out = dict(base)
    for key, value in fragment.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


def raw_to_toml(raw: dict) -> str:
    lines = []
    for section, table in raw.items():
        lines.append(f"[{toml_value(section)}]")
        lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def base_raw(slug: str | None) -> dict:
    return read_toml(ROOT / "competitions" / slug / "config.toml") if slug else {}


def check_toml_block(block: str, slug: str | None, tmp: Path) -> None:
    """Load a TOML block as the docstring says; raise KitError (or TOMLDecodeError)."""
    import tomllib

    fragment = tomllib.loads(block)
    raw = fragment if "competition" in fragment else merged(base_raw(slug), fragment)
    path = tmp / (slug or "docs-example") / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw_to_toml(raw))
    check_config(load_config(path))
    check_config(load_config(path, demo=True, dry_run=True))


def check_config(cfg: Config) -> None:
    """The free-form tables, checked where the kit checks them."""
    from kit.tuning.study import search_space

    kinds = {cfg.model.name, *(k for k, v in cfg.model.params.items() if isinstance(v, dict))}
    for kind in sorted(kinds):
        build_kind(cfg, kind)
    for kind in cfg.tune:
        search_space(cfg, kind)


def build_kind(cfg: Config, kind: str) -> None:
    """Build `kind` with its model.params as its task does (toy data sizes)."""
    from kit.models import MODELS, build_model
    from kit.models.vision import build_image_model

    params = cfg.model.params_for(kind)
    if cfg.competition.task == "image":
        sizes = params.get("head_sizes", ())
        classes = math.prod(sizes) if params.get("heads") == "multi" and sizes else 10
        build_image_model(kind, classes, in_chans=cfg.image.channels, params=params)
        return
    members = {name: cfg.model.params_for(name) for name in MODELS}
    build_model(kind, task="tabular", n_numeric=2, cardinalities=[3], n_outputs=1,
                problem=cfg.competition.problem, member_params=members,
                bins=[[0.0, 0.5, 1.0]] * 2, **params)


def set_overrides(command: str) -> list[str]:
    """The KEY=VALUE of each --set in `command`, placeholder keys left out."""
    parts = words(command)
    pairs = [parts[i + 1] for i, w in enumerate(parts[:-1]) if w == "--set"]
    return [p for p in pairs if p.split("=", 1)[0] not in PLACEHOLDER_KEYS]


def command_slug(command: str, slug: str | None) -> str | None:
    parts = words(command)
    named = [parts[i + 1] for i, w in enumerate(parts[:-1]) if w == "--comp"]
    if named and (ROOT / "competitions" / named[0] / "config.toml").is_file():
        return named[0]
    return slug


def check_set(pair: str, slug: str | None, tmp: Path) -> None:
    """One --set KEY=VALUE through the kit's override parser; raise KitError."""
    path = tmp / (slug or "docs-example") / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw_to_toml(base_raw(slug)))
    cfg = load_config(path)
    key, _, value = pair.partition("=")
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", value):  # a placeholder: the key with its own value
        check_config(apply_overrides(cfg, {key: current_value(cfg, key)}))
    else:
        check_config(apply_overrides(cfg, [pair]))


def current_value(cfg: Config, key: str):
    """The value `key` (section.key[.table...]) has in `cfg` (1 where a table lacks it)."""
    from kit.config import to_raw

    value = to_raw(cfg)
    for part in key.split("."):
        value = value.get(part, 1) if isinstance(value, dict) else 1
    return value


def toml_problems(path: Path, tmp: Path) -> list[str]:
    problems = []
    for block in code_blocks(path.read_text(), "toml"):
        try:
            check_toml_block(block, base_slug(path), tmp)
        except Exception as exc:  # noqa: BLE001 - a TOML error or a KitError, reported
            problems.append(f"{page_id(path)}: ```toml block {block[:60]!r}: {exc}")
    return problems


def set_problems(path: Path, tmp: Path) -> list[str]:
    problems = []
    for command in shell_lines(path.read_text()):
        for pair in set_overrides(command):
            try:
                check_set(pair, command_slug(command, base_slug(path)), tmp)
            except KitError as exc:
                problems.append(f"{page_id(path)}: --set {pair}: {exc}")
    return problems


# --- paths, scripts, flags, make targets ------------------------------------------------

PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(PATH_ROOTS) + r")/[\w.*<>{}/-]*)")


def checked_part(path: str) -> str:
    """`path` up to its first placeholder part (<slug>, SLUG, fold<k>, *, ...)."""
    kept = []
    for part in path.rstrip(".,:;").split("/"):
        if re.search(r"[<>*{}]|\.\.\.", part) or re.fullmatch(r"[A-Z][A-Z_]+", part):
            break
        kept.append(part)
    return "/".join(kept).rstrip(".")


def made_here(text: str) -> set[str]:
    """Competition folders the page makes with `new_competition.py NAME`."""
    return set(re.findall(r"new_competition\.py\s+([a-z0-9][a-z0-9-]*)", text))


def path_problems(path: Path) -> list[str]:
    text = path.read_text()
    made = made_here(text)
    problems = []
    for found in sorted(set(PATH.findall(re.sub(r"https?://\S+", "", text)))):
        part = checked_part(found)
        if part.split("/")[0] == "competitions" and part.split("/")[1:2] and \
                part.split("/")[1] in made:
            continue
        if not (ROOT / part).exists():
            problems.append(f"{page_id(path)}: {found} does not exist")
    return problems


class _Parsed(Exception):
    """Raised in place of parse_args: carries the script's parser."""


def _capture(self, *args, **kwargs):
    raise _Parsed(self)


@functools.cache
def script_flags(name: str) -> frozenset[str]:
    """The option strings scripts/<name>'s parser takes (built in-process, nothing run)."""
    with mock.patch.object(argparse.ArgumentParser, "parse_args", _capture), \
            mock.patch.object(argparse.ArgumentParser, "parse_known_args", _capture), \
            mock.patch.object(sys, "argv", [str(SCRIPTS[name]), "--help"]), \
            mock.patch.object(sys, "path", list(sys.path)):
        try:
            runpy.run_path(str(SCRIPTS[name]), run_name="__main__")
        except _Parsed as parsed:
            return frozenset(parsed.args[0]._option_string_actions)
    raise AssertionError(f"scripts/{name} never called parse_args")


def script_commands(command: str) -> list[tuple[str, list[str]]]:
    """(script, the flags after it) for each kit script `command` runs."""
    out = []
    for word in words(command):
        name = Path(word).name
        if word.endswith(".py") and name in SCRIPTS and word in (name, f"scripts/{name}"):
            out.append((name, []))
        elif out and word in ("|", "&&", ";"):
            out.append(("", []))
        elif out and out[-1][0]:
            out[-1][1].extend(re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", word))
    return [(name, flags) for name, flags in out if name]


def flag_problems(path: Path) -> list[str]:
    text = path.read_text()
    problems = []
    for command in shell_lines(text):
        for name, flags in script_commands(command):
            problems += [f"{page_id(path)}: {name} takes no {flag} ({command!r})"
                         for flag in flags if flag not in script_flags(name)]
    every = set().union(*(script_flags(n) for n in SCRIPTS))
    for span in inline_code(text):
        if not script_commands(span) and not span.startswith(OTHER_TOOLS):
            problems += [f"{page_id(path)}: no script takes {flag} (`{span}`)"
                         for flag in re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", span)
                         if flag not in every]
    return problems


def make_problems(path: Path) -> list[str]:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    found = {t for line in shell_lines(path.read_text())
             for t in re.findall(r"(?:^|\s)make\s+([a-z][\w-]*)", line)}
    return [f"{page_id(path)}: make {t}: no such Makefile target" for t in sorted(found - targets)]


# --- links --------------------------------------------------------------------------------

def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", prose(path.read_text()), re.M)}


def link_problems(path: Path) -> list[str]:
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, frag = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{page_id(path)}: link {target}: no such file")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            problems.append(f"{page_id(path)}: link {target}: no heading #{frag}")
    return problems


# --- doctests -----------------------------------------------------------------------------

def doctest_modules() -> list[str]:
    names = []
    for file in sorted((ROOT / "kit").rglob("*.py")):
        if ">>>" in file.read_text():
            parts = file.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def run_doctests(module: types.ModuleType) -> tuple[int, int]:
    """(failed, attempted) over `module`'s docstring examples."""
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(test)
    result = runner.summarize(verbose=False)
    return result.failed, result.attempted


# --- the checks over every page -----------------------------------------------------------

@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_toml_blocks_load_through_the_config_loader(path, tmp_path):
    assert toml_problems(path, tmp_path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_set_overrides_parse(path, tmp_path):
    assert set_problems(path, tmp_path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_named_paths_exist(path):
    assert path_problems(path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_scripts_take_the_flags_shown(path):
    assert flag_problems(path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_make_targets_exist(path):
    assert make_problems(path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_links_resolve(path):
    assert link_problems(path) == []


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_python_blocks_parse(path):
    for block in code_blocks(path.read_text(), "python"):
        ast.parse(block)


def test_every_page_is_checked():
    names = {page_id(p) for p in PAGES}
    assert {"README.md", "docs/architecture.md", "docs/training.md",
            "competitions/titanic/README.md"} <= names


@pytest.mark.parametrize("name", doctest_modules())
def test_kit_doctests_run(name, tmp_path, monkeypatch):
    if name in SKIP_MODULES:
        pytest.skip(SKIP_MODULES[name])
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    monkeypatch.setenv("KIT_COMPETITIONS_ROOT", str(tmp_path / "competitions"))
    failed, attempted = run_doctests(importlib.import_module(name))
    assert failed == 0, f"{name}: {failed} of {attempted} examples failed (printed above)"


def test_skipped_doctest_modules_still_exist():
    assert set(SKIP_MODULES) <= set(doctest_modules())


# --- planted bad examples: each check finds what it is for --------------------------------

def write_page(tmp_path: Path, text: str, name: str = "page.md") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_toml_check_catches_a_bad_block(tmp_path):
    check_toml_block('[train]\nmonitor = "loss"\n', None, tmp_path)  # a good fragment loads
    with pytest.raises(KitError, match="unknown key 'train.monitr'"):
        check_toml_block('[train]\nmonitr = "loss"\n', None, tmp_path)
    with pytest.raises(KitError, match="not a valid int"):
        check_toml_block("[cv]\nn_splits = \"five\"\n", "titanic", tmp_path)
    with pytest.raises(KitError, match="dry_run"):
        check_toml_block('[dry_run]\n"train.epochz" = 1\n', None, tmp_path)


def test_toml_check_catches_bad_free_form_tables(tmp_path):
    with pytest.raises(KitError, match="num_leafs"):
        check_toml_block("[model.params.lgbm]\nnum_leafs = 31\n", None, tmp_path)
    with pytest.raises(KitError, match="hiden"):
        check_toml_block("[model.params.mlp]\nhiden = [8]\n", None, tmp_path)
    with pytest.raises(KitError, match=r"\[tune.lgbm\] num_leaves: low = 9 > high = 3"):
        check_toml_block("[tune.lgbm]\nnum_leaves = {low = 9, high = 3}\n", None, tmp_path)


def test_set_check_catches_a_bad_override(tmp_path):
    command = "python scripts/train.py --comp titanic --set model.params.gbdt.max_iter=400"
    assert set_overrides(command) == ["model.params.gbdt.max_iter=400"]
    assert command_slug(command, None) == "titanic"
    check_set("cv.seed=N", "titanic", tmp_path)  # a placeholder value: the key alone
    with pytest.raises(KitError, match="unknown key 'sed'"):
        check_set("cv.sed=N", "titanic", tmp_path)
    with pytest.raises(KitError, match="unknown key 'epoch'"):
        check_set("train.epoch=5", "titanic", tmp_path)
    with pytest.raises(KitError, match="max_iters"):
        check_set("model.params.gbdt.max_iters=400", None, tmp_path)
    page = write_page(tmp_path, "`python scripts/train.py --comp titanic --set cv.seeds=3`")
    assert len(set_problems(page, tmp_path / "cfg")) == 1


def test_path_check_catches_a_missing_path(tmp_path):
    page = write_page(tmp_path, "See `kit/no_such_module.py`, `kit/config/`, "
                                "`competitions/<slug>/metric.py` and `scripts/new_competition.py"
                                " demo-x`, which makes competitions/demo-x/config.toml.")
    assert path_problems(page) == [f"{page_id(page)}: kit/no_such_module.py does not exist"]


def test_flag_check_catches_an_unknown_flag(tmp_path):
    page = write_page(tmp_path, "```\npython scripts/train.py --comp titanic --fold 2  # typo\n"
                                "```\nand `ensemble.py --comp titanic --methd hill`, `--no-such`")
    assert sorted(flag_problems(page)) == sorted([
        f"{page_id(page)}: train.py takes no --fold "
        "('python scripts/train.py --comp titanic --fold 2')",
        f"{page_id(page)}: ensemble.py takes no --methd ('ensemble.py --comp titanic --methd hill')",
        f"{page_id(page)}: no script takes --no-such (`--no-such`)"])


def test_make_check_catches_an_unknown_target(tmp_path):
    page = write_page(tmp_path, "```\nmake demo COMP=titanic\nmake tests\n```")
    assert make_problems(page) == [f"{page_id(page)}: make tests: no such Makefile target"]


def test_link_check_catches_a_broken_link(tmp_path):
    write_page(tmp_path, "# Other page\n\n## Time-ordered CV: `cv.time`\n", "other.md")
    page = write_page(tmp_path, "# Page\n\n[ok](other.md#time-ordered-cv-cvtime) [self](#page) "
                                "[web](https://example.com) [gone](missing.md) "
                                "[anchor](other.md#no-such)")
    assert link_problems(page) == [f"{page_id(page)}: link missing.md: no such file",
                                   f"{page_id(page)}: link other.md#no-such: no heading #no-such"]


def test_doctest_run_catches_a_wrong_example():
    module = types.ModuleType("planted")
    module.__doc__ = ">>> 1 + 1\n2\n"
    assert run_doctests(module) == (0, 1)
    module.__doc__ = ">>> 1 + 1\n3\n"
    assert run_doctests(module) == (1, 1)

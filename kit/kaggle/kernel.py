"""Kaggle kernel folders: one self-contained script plus a validated kernel-metadata.json.

Kernels run without internet and without the repository, so the script carries the `kit`
package, `competitions/<slug>/` and the entry script as a base64 xz tar, unpacked at
start (templates/kernel_script.py.tmpl). Inference kernels also get a dataset folder
holding the run (config, fold checkpoints, preprocessors) to attach as a source.

    build = build_kernel("titanic", user="me", gpu=True)  # build/kernels/titanic/
    push_kernel(build["kernel_dir"])                       # kit.kaggle.client

Nothing credential-like is packed (local.toml, dot folders, token files) and the result
is scanned for the token values of this machine before anyone can push it.
"""

from __future__ import annotations

import base64
import io
import lzma
import os
import pprint
import re
import shutil
import subprocess
import tarfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from kit.config import load_config
from kit.errors import KaggleError
from kit.io import write_json, write_text
from kit.kaggle.client import check_no_secrets, find_secrets, kaggle_config, secret_values
from kit.metrics.competition import resolve_metric
from kit.paths import ROOT, competition_dir

CODE_FILE = "kernel.py"
TEMPLATE = ROOT / "templates" / "kernel_script.py.tmpl"
SCRIPTS = ROOT / "scripts"  # where the entry scripts come from (tests point it at stubs)
ENTRY = {"train": "train.py", "predict": "predict.py"}
LICENSE = "CC0-1.0"
_SECRET_NAMES = {
    "local.toml", "kaggle.json", "access_token", "access_token.txt", "credentials.json",
    "client_secrets.json", "secrets.toml", "netrc",
}
# Run files an inference kernel does not need: predictions, plots, logs; the parquet
# cache of the training data (cache/) and earlier predict outputs (predict/). folds.csv
# stays: fold features are fitted again on each fold's training rows.
_RUN_SKIP = re.compile(
    r"(oof|test_pred)\..*|history\.csv|submission\.csv|.*\.(png|jpe?g|svg|log)",
    re.IGNORECASE,
)
_RUN_SKIP_DIRS = {"cache", "predict"}
# Pure-Python single-file modules the kit imports that Kaggle's image lacks (the tabm kind):
# packed beside `kit/`, so an offline kernel trains and predicts with them.
VENDORED = ("tabm", "rtdl_num_embeddings")


def slugify(text: str) -> str:
    """The slug Kaggle derives from a title (python-slugify's rules for ASCII titles)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def resolve_user(user: str | None) -> str:
    """The Kaggle user owning the kernel: --user, else KAGGLE_USERNAME."""
    user = user or os.environ.get("KAGGLE_USERNAME", "")
    if not user:
        raise KaggleError(
            "no Kaggle user name: kernel and dataset ids are '<user>/<slug>'. Pass --user NAME "
            "or `export KAGGLE_USERNAME=NAME` (NAME is the last part of your profile URL, "
            "https://www.kaggle.com/NAME)"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", user):
        raise KaggleError(f"Kaggle user name {user!r} is not valid: letters, digits, '-', '_' only")
    return user


def _check_source(ref: str, what: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][\w-]*/[a-z0-9][a-z0-9-]*", ref):
        raise KaggleError(
            f"{what} {ref!r} must read OWNER/SLUG (e.g. me/timm-weights): the owner's user name "
            "and the dataset's slug from its URL, without a version or 'datasets/' prefix"
        )


def validate_kernel_metadata(meta: dict, folder: Path, *, code_dir: Path | None = None) -> None:
    """Check kernel-metadata.json the way `kaggle kernels push` does, and a bit stricter;
    the code file is looked for in `code_dir` (a build's staging folder) or `folder`."""
    where = folder / "kernel-metadata.json"
    ident, title = meta.get("id", ""), meta.get("title", "")
    if not re.fullmatch(r"[^/\s]+/[^/\s]+", str(ident)):
        raise KaggleError(f"{where}: id {ident!r} must read '<user>/<kernel-slug>'")
    if not isinstance(title, str) or len(title) < 5:
        raise KaggleError(f"{where}: title {title!r} must have at least 5 characters")
    if slugify(title) != ident.split("/")[1]:
        raise KaggleError(
            f"{where}: title {title!r} gives slug {slugify(title)!r}, not the id's "
            f"{ident.split('/')[1]!r}; Kaggle would create a differently named kernel"
        )
    fixed = {"language": "python", "kernel_type": "script"}
    for key, want in fixed.items():
        if meta.get(key) != want:
            raise KaggleError(f"{where}: {key} = {meta.get(key)!r}, the kit writes {want!r}")
    for key in ("is_private", "enable_gpu", "enable_internet"):
        # enable_internet defaults to true in the client: it must be written explicitly.
        if not isinstance(meta.get(key), bool):
            raise KaggleError(f"{where}: {key} must be written as true or false")
    sources = meta.get("competition_sources")
    if not sources or not all(isinstance(s, str) and s for s in sources):
        raise KaggleError(f"{where}: competition_sources must list the competition slug")
    for ref in meta.get("dataset_sources", []):
        _check_source(ref, f"{where}: dataset source")
    code = (code_dir or folder) / str(meta.get("code_file", ""))
    if not meta.get("code_file") or not code.is_file():
        raise KaggleError(f"{where}: code_file {meta.get('code_file')!r} is not a file in {folder}")


def validate_dataset_metadata(meta: dict, folder: Path) -> None:
    """Check dataset-metadata.json the way `kaggle datasets create` does."""
    where = folder / "dataset-metadata.json"
    _check_source(str(meta.get("id", "")), f"{where}: id")
    slug, title = meta["id"].split("/")[1], meta.get("title", "")
    if not 6 <= len(slug) <= 50:
        raise KaggleError(f"{where}: dataset slug {slug!r} must have 6 to 50 characters")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        raise KaggleError(f"{where}: title {title!r} must have 6 to 50 characters")
    if meta.get("licenses") != [{"name": LICENSE}]:
        raise KaggleError(f"{where}: licenses must be [{{'name': '{LICENSE}'}}]")


def _excluded(rel: PurePosixPath) -> bool:
    """Files never packed: caches, dot files (.kaggle, .env, .git) and credential files."""
    if any(p.startswith(".") or p in ("__pycache__", "wandb", "plots") for p in rel.parts):
        return True
    name = rel.name.lower()
    if name in _SECRET_NAMES or name.endswith((".pyc", ".env")) or name.startswith("env."):
        return True
    return name.endswith(".json") and bool(re.search(r"token|secret|credential|kaggle", name))


def _tree(folder: Path, arcroot: str) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(folder.rglob("*")):
        rel = PurePosixPath(path.relative_to(folder).as_posix())
        if path.is_file() and not path.is_symlink() and not _excluded(rel):
            found.append((f"{arcroot}/{rel}", path))
    return found


def _members(slug: str, mode: str) -> list[tuple[str, Path]]:
    """(name in the archive, file) for the kit, the competition folder, the entry and the
    vendored modules."""
    entry = SCRIPTS / ENTRY[mode]
    if not entry.is_file():
        raise KaggleError(f"{entry} is missing: the {mode} kernel runs it; restore it from git")
    members = _tree(ROOT / "kit", "kit") + _tree(competition_dir(slug), f"competitions/{slug}")
    return members + [(f"scripts/{ENTRY[mode]}", entry)] + _vendored()


def _vendored() -> list[tuple[str, Path]]:
    """The installed copies of VENDORED, packed beside `kit/` (on the kernel's sys.path)."""
    import importlib.util

    found = []
    for module in VENDORED:
        spec = importlib.util.find_spec(module)
        if spec is None or not str(spec.origin).endswith(".py") or spec.submodule_search_locations:
            raise KaggleError(f"{module} is not installed as one .py file here; the kernel "
                              f"packs it (Kaggle's image lacks it): pip install -e .")
        found.append((f"{module}.py", Path(spec.origin)))
    return found


def _pack(members: list[tuple[str, Path]]) -> str:
    """A reproducible xz tar of `members`, base64 in 76-character lines."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        for name, path in members:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)  # no owner, mtime 0: same sources, same script
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return base64.encodebytes(buffer.getvalue()).decode("ascii")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, check=False, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _commit(packed: list[str]) -> str:
    """HEAD's short hash, '+dirty' when a packed path differs from it (the kernel log says so)."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    return head + ("+dirty" if _git("status", "--porcelain", "--", *packed) else "")


def _check_clearable(folder: Path, marker: str) -> None:
    """Refuse to replace a folder the kit did not build (files, but no `marker`)."""
    if folder.exists() and any(folder.iterdir()) and not (folder / marker).exists():
        raise KaggleError(f"refusing to clear {folder}: it has files but no {marker}; pass an "
                          "empty or new --out folder")


@contextmanager
def _staged(folder: Path, marker: str) -> Iterator[Path]:
    """An empty staging folder beside `folder`, put in its place when the block completes:
    an interrupted or refused build leaves the previous folder, never half a new one (which
    would also lack `marker`, so the next build would refuse to clear it)."""
    _check_clearable(folder, marker)
    stage = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        shutil.rmtree(folder, ignore_errors=True)
        stage.rename(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _script(spec: dict, members: list) -> str:
    """The kernel's one script: the template with its title, `spec` (plus the commit of
    what it packs) and the packed members."""
    packed = ["kit", str(competition_dir(spec["slug"])), f"scripts/{ENTRY[spec['mode']]}"]
    spec = {**spec, "commit": _commit(packed)}
    script = TEMPLATE.read_text(encoding="utf-8")
    script = script.replace("__KIT_TITLE__", spec["title"])
    script = script.replace("__KIT_SPEC__", pprint.pformat(spec))
    return script.replace("__KIT_PAYLOAD__", "\n" + _pack(members))


def build_run_dataset(slug: str, run: str | Path, user: str, dest_root: Path, *,
                      secrets: list[str] | None = None) -> dict:
    """Copy what inference needs from a run folder into a Kaggle dataset folder."""
    from kit.run_folder import is_run_folder

    run = Path(run)
    if not is_run_folder(run):
        raise KaggleError(f"--run {run} is not a run folder (no config.toml); pass a folder "
                          f"under runs/{slug}/")
    ds_slug = slugify(f"{slug}-{run.name}")[:50].strip("-")
    meta = {"title": f"kit {slug} {run.name}"[:50].strip(), "id": f"{user}/{ds_slug}",
            "licenses": [{"name": LICENSE}]}
    folder = dest_root / ds_slug
    validate_dataset_metadata(meta, folder)
    with _staged(folder, "dataset-metadata.json") as stage:
        for _, path in _tree(run, "."):
            rel = path.relative_to(run)
            best = list(path.parent.glob("best*.pt"))
            if rel.parts[0] in _RUN_SKIP_DIRS or _RUN_SKIP.fullmatch(path.name) or (
                    path.name == "last.pt" and best):
                continue  # last.pt only matters for resuming; the best checkpoint predicts
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / rel)
        write_json(stage / "dataset-metadata.json", meta)
        check_no_secrets(stage, secrets)
    return {"dataset_dir": str(folder), "dataset_id": meta["id"], "dataset_slug": ds_slug}


def build_kernel(
    slug: str, *, mode: str = "train", user: str | None = None, gpu: bool = False,
    run: str | Path | None = None, weights_dataset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (), folds: int | None = None,
    out: str | Path | None = None,
    dataset_out: str | Path | None = None, title: str | None = None,
) -> dict:
    """Build the kernel folder (and the run dataset for --mode predict); returns a summary."""
    if mode not in ENTRY:
        raise KaggleError(f"--mode {mode!r} is not one of {', '.join(ENTRY)}")
    if (mode == "predict") != (run is not None):
        raise KaggleError("--mode predict needs --run RUN_DIR, and --run needs --mode predict")
    if mode == "predict" and (overrides or folds):
        raise KaggleError("--set and --fits change training; a predict kernel uses the run's "
                          "saved config and every fold it finished")
    if folds is not None and folds < 1:
        raise KaggleError(f"--fits {folds}: train at least 1 fold fit (or leave it out for all)")
    kaggle_config(slug)
    cfg = load_config(competition_dir(slug) / "config.toml", overrides=list(overrides))
    resolve_metric(cfg)  # fail here, not on Kaggle: a metric.py travels in the competition folder
    user = resolve_user(user)
    title = title or f"kit {slug} {mode}"
    folder = Path(out) if out else ROOT / "build" / "kernels" / slug
    _check_clearable(folder, "kernel-metadata.json")  # before a run dataset is built
    summary: dict = {"competition": slug, "mode": mode, "kernel_dir": str(folder)}
    sources = [weights_dataset] if weights_dataset else []
    for ref in sources:
        _check_source(ref, "--weights-dataset")
    if mode == "predict":
        dest_root = Path(dataset_out) if dataset_out else ROOT / "build" / "datasets"
        summary.update(build_run_dataset(slug, run, user, dest_root, secrets=secret_values()))
        sources.append(summary["dataset_id"])
    members = _members(slug, mode)
    secrets = secret_values()
    leaked = find_secrets(((str(p), p.read_bytes()) for _, p in members), secrets)
    if leaked:
        raise KaggleError(f"credential values found in {', '.join(leaked)}; remove them before "
                          "building a kernel (everything there is uploaded to Kaggle)")
    spec = {"slug": slug, "mode": mode, "title": title,
            "args": [a for o in overrides for a in ("--set", o)]
            + (["--fits", str(folds)] if folds else []),
            "overrides": list(overrides),  # the kernel's final check reads the same config
            "dataset": summary.get("dataset_slug", "")}
    script = _script(spec, members)
    meta = {
        "id": f"{user}/{slugify(title)}", "title": title, "code_file": CODE_FILE,
        "language": "python", "kernel_type": "script", "is_private": True,
        "enable_gpu": gpu, "enable_internet": False,  # the client's default is true
        "dataset_sources": sources, "competition_sources": [slug],
        "kernel_sources": [], "model_sources": [],
    }
    with _staged(folder, "kernel-metadata.json") as stage:
        write_text(stage / CODE_FILE, script)
        validate_kernel_metadata(meta, folder, code_dir=stage)
        write_json(stage / "kernel-metadata.json", meta)
        check_no_secrets(stage, secrets)
    return {**summary, "kernel_id": meta["id"], "script": str(folder / CODE_FILE),
            "metadata": meta, "files": [name for name, _ in members]}

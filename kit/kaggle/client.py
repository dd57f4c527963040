"""The `kaggle` CLI, run as a subprocess: download (safe unzip), submit, push; errors translated.

The kit never imports the `kaggle` package: importing it authenticates on the spot and
prints or exits when no credentials are set. The executable is found on PATH, else beside
sys.executable (a virtualenv that is not activated).

Credentials never leave the CLI: its output is scrubbed of token values before it is
shown or put in an error, and built folders are scanned for them (`find_secrets`).

    download("titanic")                       # data/titanic/ with the extracted files
    submit("titanic", "sub.csv", "baseline")  # validated first, then submitted
"""

from __future__ import annotations

import json
import netrc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from kit.config import Config, load_config
from kit.data.archive import MARKER, is_extracted, read_marker, safe_extract
from kit.data.sources import source_exists
from kit.errors import KaggleError
from kit.metrics.competition import resolve_metric
from kit.paths import competition_dir, data_root
from kit.submission import validate_run_file

TOKEN_HELP = (
    "create a token at https://www.kaggle.com/settings/api ('Generate New Token'), then "
    "either `export KAGGLE_API_TOKEN=<token>` or save it to ~/.kaggle/access_token "
    "(chmod 600); the legacy ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}) and "
    "`kaggle auth login` work too"
)

# What kaggle 2.x prints: print_auth_help() (kaggle/api/kaggle_api_extended.py) on a 401;
# else the HTTPError from kagglesdk/kaggle_http_client.py::_prepare_response, printed by
# kaggle/cli.py::main: the server's JSON message or requests' "403 Client Error: Forbidden
# for url: ...". 1.x printed "403 - Forbidden - <message>". Only the last lines are matched.
_AUTH = re.compile(r"Authentication required|Generate New Token|401 (Client Error|-)|\(401\)"
                   r"|Unauthorized|Could not find kaggle\.json", re.IGNORECASE)
_FORBIDDEN = re.compile(r"403 (Client Error|-)|\(403\)|Forbidden|competition.s rules"
                        r"|competitions\.participate|Permission .+ denied", re.IGNORECASE)
_NOT_FOUND = re.compile(r"404 (Client Error|-)|\(404\)|Not Found|Could not find competition",
                        re.IGNORECASE)
_NETWORK = re.compile(r"ConnectionError|Failed to resolve|Max retries exceeded|ProxyError"
                      r"|Temporary failure in name resolution|timed out", re.IGNORECASE)
# Failures the CLI reports on stdout with exit status 0.
_SOFT_FAILURE = re.compile(
    r"Could not find competition|Could not submit to competition|Kernel push error"
    r"|Dataset (version )?creation error"
)


def kaggle_executable() -> str:
    """The `kaggle` executable: on PATH, else in the running interpreter's bin folder."""
    found = shutil.which("kaggle")
    if found:
        return found
    beside = Path(sys.executable).parent / "kaggle"
    if beside.exists():
        return str(beside)
    raise KaggleError(
        "the `kaggle` command was not found on PATH nor beside "
        f"{sys.executable}; install it with `pip install kaggle` (or `make test` to build "
        "the project's .venv) and try again"
    )


# --- credentials -------------------------------------------------------------------------


def _config_dirs() -> list[Path]:
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    dirs = [home / ".kaggle", xdg / "kaggle"]
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        dirs.insert(0, Path(os.environ["KAGGLE_CONFIG_DIR"]))
    return dirs


def _file_secrets(path: Path) -> list[str]:
    """Token-like strings in a credential file: JSON secret fields, or bare token lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return [line.strip() for line in text.splitlines() if re.fullmatch(r"\S{8,}", line.strip())]
    if not isinstance(data, dict):
        return []
    keys = ("key", "token", "access_token", "refresh_token", "api_key", "secret", "password")
    return [str(data[k]) for k in keys if isinstance(data.get(k), str)]


def _netrc_paths() -> list[Path]:
    """Where `wandb login` (and curl, requests) keep passwords: $NETRC, else ~/.netrc."""
    if os.environ.get("NETRC"):
        return [Path(os.environ["NETRC"]).expanduser()]
    return [Path.home() / ".netrc", Path.home() / "_netrc"]  # _netrc: Windows


def _netrc_secrets(path: Path) -> list[str]:
    """The passwords and accounts in a netrc file (login names are not secret: a Kaggle
    user name in a kernel id must not count as a leak)."""
    if not path.is_file():
        return []
    try:
        hosts = netrc.netrc(str(path)).hosts.values()
        return [value for entry in hosts for value in entry[1:] if value]
    except (netrc.NetrcParseError, UnicodeDecodeError):  # hide the word after the keyword
        words = path.read_text(encoding="utf-8", errors="replace").split()
        return [b for a, b in zip(words, words[1:]) if a in ("password", "account")]
    except OSError:
        return []


def secret_values() -> list[str]:
    """Credential values on this machine (env tokens, ~/.kaggle files, ~/.netrc passwords
    such as wandb's key); never printed."""
    values = []
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_KEY", "WANDB_API_KEY"):
        value = os.environ.get(name, "").strip()
        if value:
            values.append(value)
            if Path(value).is_file():  # KAGGLE_API_TOKEN may name a token file
                values += _file_secrets(Path(value))
    for folder in _config_dirs():
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    values += _file_secrets(path)
    for path in _netrc_paths():
        values += _netrc_secrets(path)
    # Short values would match by accident (and reveal nothing worth hiding).
    return sorted({v for v in values if len(v) >= 8}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every credential value replaced by '***'."""
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, "***")
    return text


def find_secrets(blobs: Iterable[tuple[str, bytes]], secrets: list[str]) -> list[str]:
    """Names of the (name, content) pairs whose content holds a credential value."""
    needles = [s.encode() for s in secrets]
    return [name for name, data in blobs if any(n in data for n in needles)]


def check_no_secrets(folder: Path, secrets: list[str] | None = None) -> None:
    """Raise KaggleError when a file under `folder` contains a credential value."""
    secrets = secret_values() if secrets is None else secrets
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    hits = find_secrets(((str(p), p.read_bytes()) for p in files), secrets)
    if hits:
        raise KaggleError(
            f"credential values found in {', '.join(hits)}; nothing was pushed. Remove the "
            "token from those files (or from the competition folder they were copied from), "
            "then build again"
        )


# --- running the CLI ---------------------------------------------------------------------


def _relay(proc: subprocess.Popen, secrets: list[str], echo: bool) -> str:
    """Collect the CLI's output; echo it to stderr line by line (progress bars use \\r)."""
    chunks, pending = [], b""
    while True:
        data = os.read(proc.stdout.fileno(), 65536)
        pending += data
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1 if data else len(pending)
        if cut:
            text = scrub(pending[:cut].decode("utf-8", "replace"), secrets)
            pending = pending[cut:]
            chunks.append(text)
            if echo:
                sys.stderr.write(text)
                sys.stderr.flush()
        if not data:
            return "".join(chunks)


def run_cli(args: list[str], *, context: str, slug: str = "", echo: bool = True) -> str:
    """Run `kaggle <args>`; return its scrubbed output or raise a translated KaggleError."""
    cmd = [kaggle_executable(), *args]
    secrets = secret_values()
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # show download progress as it happens
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    except OSError as exc:
        raise KaggleError(f"cannot run {cmd[0]}: {exc}; reinstall it with `pip install kaggle`") from None
    with proc:
        output = _relay(proc, secrets, echo)
        status = proc.wait()
    if status != 0 or _SOFT_FAILURE.search(output):
        raise translate_error(output, status, context=context, slug=slug, command=display(args))
    return output


def display(args: list[str]) -> str:
    return " ".join(["kaggle", *(a if re.fullmatch(r"[\w./:=@+-]+", a) else repr(a) for a in args)])


def translate_error(
    output: str, status: int, *, context: str, slug: str = "", command: str = "kaggle"
) -> KaggleError:
    """The KaggleError (with the fix) for what the CLI printed when `command` failed."""
    lines = output.strip().splitlines()[-20:]  # the error is at the end, after any progress
    # The last unindented line: a message, or a traceback's exception (not its frames).
    plain = [ln.strip() for ln in lines if ln.strip() and not ln[0].isspace()]
    said = f" (the CLI said: {plain[-1]})" if plain else ""
    output = "\n".join(lines)
    if _AUTH.search(output):
        return KaggleError(f"`{command}`: the kaggle CLI has no valid credentials; {TOKEN_HELP}")
    if _FORBIDDEN.search(output) and context in ("download", "submit"):
        return KaggleError(
            f"`{command}`: Kaggle refused access to competition {slug!r} (403). Accept its "
            f"rules in the browser at https://www.kaggle.com/competitions/{slug}/rules "
            "(the API cannot accept them; some competitions also need a verified phone "
            f"number), then run the command again{said}"
        )
    if _NOT_FOUND.search(output) and context in ("download", "submit"):
        return KaggleError(
            f"`{command}`: Kaggle does not know competition {slug!r} (404), or it no longer "
            "accepts submissions. The slug is the last part of the competition's URL "
            "(https://www.kaggle.com/competitions/<slug>) and the name of its folder under "
            f"competitions/; search with `kaggle competitions list -s WORDS`{said}"
        )
    if _FORBIDDEN.search(output) or _NOT_FOUND.search(output):
        return KaggleError(
            f"`{command}`: Kaggle refused it (403/404): the id's owner must be your Kaggle "
            f"user name (--user or KAGGLE_USERNAME) and the sources must exist{said}"
        )
    if re.search(r"already (in use|exists)", output) and command.startswith("kaggle datasets create"):
        return KaggleError(
            f"`{command}`: the run dataset exists on Kaggle already; push a new version of it "
            f"with `python scripts/kernel.py ... --push --new-version`{said}"
        )
    if _NETWORK.search(output):
        return KaggleError(
            f"`{command}`: cannot reach kaggle.com; check the network connection and any "
            f"HTTPS_PROXY setting, then try again{said}"
        )
    return KaggleError(f"`{command}` failed (exit status {status}){said}")


# --- competitions ------------------------------------------------------------------------


def kaggle_config(slug: str) -> Config:
    """The competition's config; a competition that is not on Kaggle is refused."""
    path = competition_dir(slug) / "config.toml"
    cfg = load_config(path)
    if not cfg.competition.kaggle:
        raise KaggleError(
            f"competition {slug!r} is not a Kaggle competition ({path} says [competition] "
            "kaggle = false): there is nothing to download, submit or push. Put its files "
            f"under data/{slug}/ by hand, or set kaggle = true if it is on Kaggle"
        )
    return cfg


def competition_data(slug: str, data: str | Path | None = None) -> Path:
    """The folder holding a competition's files: --data, else <data root>/<slug>."""
    return Path(data) if data else data_root() / slug


def download(slug: str, *, data: str | Path | None = None, force: bool = False) -> dict:
    """Download a competition's zip with the CLI and extract it safely; idempotent."""
    cfg = kaggle_config(slug)
    dest = competition_data(slug, data)
    args = ["competitions", "download", "-c", slug, "-p", str(dest)]
    if force:
        args.append("--force")
    summary = {"competition": slug, "data_dir": str(dest), "command": display(args)}
    archive = dest / f"{slug}.zip"
    why = _present(dest, archive, cfg.data.train)
    if not force and why:
        files = (read_marker(dest) or {}).get("files", [])
        return {**summary, "status": "present", "files": files, "message":
                f"{dest} already holds the data ({why}); --force downloads it again"}
    if force or not archive.exists():  # a zip left by an interrupted extraction is reused
        dest.mkdir(parents=True, exist_ok=True)
        run_cli(args, context="download", slug=slug)
    if not archive.exists():
        zips = sorted(dest.glob("*.zip"))
        if len(zips) != 1:
            raise KaggleError(
                f"`{display(args)}` succeeded but {dest} holds {len(zips)} zip files, expected "
                f"{archive.name}; extract them by hand or delete them and run with --force"
            )
        archive = zips[0]
    files = [str(p.relative_to(dest.resolve())) for p in safe_extract(archive, dest)]
    archive.unlink()  # the extracted files are the data; a second copy doubles the disk use
    return {**summary, "status": "downloaded", "files": files,
            "message": f"extracted {len(files)} files into {dest}"}


def _present(dest: Path, archive: Path, train: str) -> str:
    """Why `dest` holds the data already ('' when it does not).

    While the zip is there, only the marker of a finished extraction of that zip counts:
    a train.csv beside it may be cut short by an interrupted unzip. Without a zip, files
    placed by hand count as they are.
    """
    if archive.exists():
        return f"{MARKER} names {archive.name}" if is_extracted(archive, dest) else ""
    if (dest / MARKER).exists():
        return f"{MARKER} exists"
    return f"{train} is there" if source_exists(dest, train) else ""


def submit(
    slug: str, file: str | Path, message: str, *, data: str | Path | None = None,
    dry_run: bool = False,
) -> dict:
    """Validate `file` against the sample submission, then `kaggle competitions submit`."""
    cfg = kaggle_config(slug)
    if not message.strip():
        raise KaggleError("the submission message (-m) is empty; say what this submission is")
    sample_path = competition_data(slug, data) / cfg.data.sample_submission
    validate_run_file(file, sample_path, cfg, resolve_metric(cfg))  # as train.py wrote it
    args = ["competitions", "submit", "-c", slug, "-f", str(file), "-m", message]
    summary = {"competition": slug, "file": str(file), "command": display(args)}
    if dry_run:
        return {**summary, "submitted": False}
    output = run_cli(args, context="submit", slug=slug)
    return {**summary, "submitted": True, "output": output.strip()}


def push_kernel(folder: str | Path) -> dict:
    """`kaggle kernels push -p folder`; returns the command and what the CLI said."""
    args = ["kernels", "push", "-p", str(folder)]
    output = run_cli(args, context="push")
    return {"command": display(args), "output": output.strip()}


def push_dataset(folder: str | Path, *, new_version: bool = False, message: str = "") -> dict:
    """Create (or version) a private dataset from `folder`; sub-folders upload as zips."""
    if new_version:
        args = ["datasets", "version", "-p", str(folder), "-m", message or "kit run", "-r", "zip"]
    else:
        args = ["datasets", "create", "-p", str(folder), "-r", "zip"]
    output = run_cli(args, context="push")
    return {"command": display(args), "output": output.strip()}

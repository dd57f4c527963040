"""Reading and writing configs: TOML with --set overrides cast to each field's type, device
profiles, [demo] / [dry_run] tables, the resolved config a run keeps (to_toml)."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from kit.config.checks import validate
from kit.config.sections import Config, ImageConfig
from kit.errors import ConfigError


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}


def _cast(value: Any, hint: Any, where: str) -> Any:
    """Cast a TOML or --set value to a field's type; strings from --set are parsed."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):  # data.target: one column or a list
        return _one_or_many(value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint in (int, float):  # an int is a valid float; "3.5" is not a valid int
        numbers = (int, float) if hint is float else int
        if isinstance(value, numbers) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str):  # --set: a TOML list, or comma-separated words
            parsed = _parse_literal(value)
            value = parsed if isinstance(parsed, list) else [
                v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            item = typing.get_args(hint)[0]
            if item is str:
                return tuple(str(v) for v in value)
            return tuple(_cast(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    elif (hint is dict or origin is dict) and isinstance(value, dict):
        return dict(value)
    type_name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} = {value!r} is not a valid {type_name}; give a {type_name} value")


def _one_or_many(value: Any, where: str) -> str | tuple[str, ...]:
    """A column name as it is (commas and all), or a list of two or more as a tuple; a
    --set value that starts with "[" is read as a TOML list."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = _parse_literal(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        names = tuple(value)
        if len(set(names)) < len(names):
            raise ConfigError(f"{where} = {list(names)} names a column twice; list each once")
        return names[0] if len(names) == 1 else names
    raise ConfigError(f"{where} = {value!r}: give a column name, or a list of column names "
                      "(e.g. [\"a\", \"b\"])")


def _parse_literal(text: str) -> Any:
    """Parse a --set value for a free-form table (model.params.x=...) as a TOML literal."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


PROFILES = ("cpu", "gpu", "mps")
# tables of "section.key" = value, applied on request
OVERRIDE_SECTIONS = ("dry_run", "demo", *PROFILES)
FREE_SECTIONS = (*OVERRIDE_SECTIONS, "tune")  # tables kept as they are, checked where used


def _moved(section: str, key: str) -> str:
    """The fix for a key that an older kit read ("" for a plain unknown key)."""
    if (section, key) == ("train", "tta"):
        return ("train.tta is gone: TTA runs when image.tta lists views, e.g. image.tta = "
                "[\"hflip\"], and not when image.tta = []")
    if (section, key) == ("ensemble", "fold_vote"):
        return ("ensemble.fold_vote is renamed train.fold_vote (how a run combines its own "
                "fold models; ensemble.py combines runs): write fold_vote under [train]")
    return ""


def _check_image_params(raw: dict, source: str) -> None:
    """An image competition's settings moved from data.params to [image]; data.params
    holds only its layout.py arguments now."""
    if raw.get("competition", {}).get("task") != "image":
        return
    params = raw.get("data", {}).get("params", {})
    for key in typing.get_type_hints(ImageConfig):
        if key in params:
            raise ConfigError(f"{source}: data.params.{key} moved to image.{key}: write "
                              f"{key} = {toml_value(params[key])} under [image]")


def _build(raw: dict, source: str) -> Config:
    types_ = _section_types()
    _check_image_params(raw, source)
    sections: dict[str, Any] = {}
    for name, values in raw.items():
        if name in FREE_SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{name}] must be a table of 'section.key' = value")
            sections[name] = dict(values)
            continue
        if name == "ensemble":  # the section a renamed key lived in
            raise ConfigError(f"{source}: " + _moved(name, "fold_vote"))
        if name not in types_:
            raise ConfigError(
                f"{source}: unknown section [{name}]; valid sections: "
                f"{', '.join(sorted([*types_, *FREE_SECTIONS]))}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {values!r}")
        cls = types_[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"{source}: " + (
                    _moved(name, key) or f"unknown key '{name}.{key}'; valid keys in "
                                         f"[{name}]: {', '.join(hints)}"))
            kwargs[key] = _cast(value, hints[key], f"{source}: {name}.{key}")
        sections[name] = cls(**kwargs)
    cfg = Config(**sections)
    validate(cfg, source)
    return cfg


def to_raw(cfg: Config) -> dict:
    raw = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        raw[f.name] = dict(value) if isinstance(value, dict) else dataclasses.asdict(value)
    return raw


def apply_overrides(cfg: Config, overrides: list[str] | dict, source: str = "--set") -> Config:
    """Apply 'section.key=value' overrides (a list of strings or a {key: value} dict)."""
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    raw = to_raw(cfg)
    types_ = _section_types()
    for dotted, value in items:
        parts = dotted.split(".")
        section = parts[0]
        if len(parts) == 2 and _moved(section, parts[1]):
            raise ConfigError(f"{source} {dotted}: {_moved(section, parts[1])}")
        if section not in types_ or len(parts) < 2:
            raise ConfigError(
                f"{source} {dotted}={value!r}: expected section.key with a section among "
                f"{', '.join(sorted(types_))}"
            )
        key = parts[1]
        hints = typing.get_type_hints(types_[section])
        if key not in hints:
            raise ConfigError(f"{source} {dotted}: " + (
                _moved(section, key) or f"unknown key '{key}' in [{section}]; valid keys: "
                                        f"{', '.join(hints)}"))
        if len(parts) > 2:
            if hints[key] is not dict and typing.get_origin(hints[key]) is not dict:
                raise ConfigError(f"{source} {dotted}: {section}.{key} is not a table")
            table = raw[section][key] = _deep_copy(raw[section][key])
            for part in parts[2:-1]:  # model.params.gbdt.max_iter -> nested tables
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    raise ConfigError(f"{source} {dotted}: {part!r} is not a table")
            table[parts[-1]] = _parse_literal(value) if isinstance(value, str) else value
        elif isinstance(value, str) and (hints[key] is dict or typing.get_origin(hints[key]) is dict):
            raw[section][key] = _parse_literal(value)
        else:
            raw[section][key] = value
    return _build(raw, source)


def _deep_copy(table: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in table.items()}


def _split(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the line it names") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_config(
    path: str | Path, *, overrides: list[str] | None = None, dry_run: bool = False,
    demo: bool = False, profile: str | None = None
) -> Config:
    """Load a competition's config.toml, then the device `profile` ("cpu", "gpu", "mps"),
    its [demo] and [dry_run] sections (if asked), then --set."""
    path = Path(path)
    cfg = _build(read_toml(path), str(path))
    if not cfg.competition.slug:
        cfg = cfg.replace(competition=dataclasses.replace(cfg.competition, slug=path.parent.name))
    for name in PROFILES:  # every profile's keys checked, whichever device runs
        if getattr(cfg, name):
            apply_overrides(cfg, getattr(cfg, name), source=f"{path} [{name}]")
    section = profile_section(cfg, profile)
    if section:
        cfg = apply_overrides(cfg, getattr(cfg, section), source=f"{path} [{section}]")
    if demo and cfg.demo:
        cfg = apply_overrides(cfg, cfg.demo, source=f"{path} [demo]")
    if dry_run and cfg.dry_run:
        cfg = apply_overrides(cfg, cfg.dry_run, source=f"{path} [dry_run]")
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def profile_section(cfg: Config, profile: str | None) -> str:
    """The section a device profile applies ("" for none): [mps] falls back to [gpu]."""
    if profile == "mps" and not cfg.mps:
        profile = "gpu"
    return profile if profile in PROFILES and getattr(cfg, profile) else ""


def load_resolved(path: str | Path) -> Config:
    """Load a config.toml that a run saved (all keys present); a run saved before the
    [image] section existed is read as it ran (_migrate)."""
    path = Path(path)
    return _build(_migrate(read_toml(path)), str(path))


def _migrate(raw: dict) -> dict:
    """A saved run's config in an older kit's names, read as it ran: [ensemble] fold_vote
    (now train.fold_vote), the "blend" model kind (now "voting"), and from before [image],
    `train.tta` (a bool) and an image task's settings in data.params. A competition's own
    config.toml gets an error naming the new key instead (_moved, _check_image_params,
    kit/config/checks.py)."""
    if "fold_vote" in raw.get("ensemble", {}):
        raw.setdefault("train", {})["fold_vote"] = raw.pop("ensemble")["fold_vote"]
    model = raw.get("model", {})
    if model.get("name") == "blend":
        model["name"] = "voting"
    if "blend" in model.get("params", {}):
        model["params"]["voting"] = model["params"].pop("blend")
    tta_on = raw.get("train", {}).pop("tta", None)
    if raw.get("competition", {}).get("task") != "image" or "image" in raw:
        return raw
    params = raw.get("data", {}).get("params", {})
    image = raw["image"] = {k: params.pop(k) for k in typing.get_type_hints(ImageConfig)
                            if k in params}
    image["tta"] = image.get("tta", ["hflip"]) if tta_on else []  # then train.tta's list
    return raw


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML: every section, every key."""
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for section, values in to_raw(cfg).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                tables.append((f"{section}.{key}", value))
            else:
                lines.append(f"{_toml_key(key)} = {toml_value(value)}")
        lines.append("")
        for name, table in tables:
            lines.append(f"[{name}]")
            lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
        tables = []
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML")


def field_names(section: str) -> list[str]:
    """Valid keys of a section, for error messages and templates."""
    return list(typing.get_type_hints(_section_types()[section]))


__all__ = [
    "Config",
    "ConfigError",
    "apply_overrides",
    "field_names",
    "load_config",
    "load_resolved",
    "to_toml",
]

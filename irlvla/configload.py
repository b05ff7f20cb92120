"""The project's one strict loader for config dataclasses (plain data from YAML/JSON <-> typed dataclasses).

Every component's config is a dataclass validated in its own `__post_init__`; this module turns plain data into that
dataclass, checking each value against the field's annotation first, so `"no"` never becomes `True` and `20.0` never
becomes an integer step count. Errors name the field as `owner.field.subfield` so a user finds the bad line at once.

Stdlib-only (YAML is imported lazily) so every room, the torch-free `bench2drive_eval/` included, can use it.

Why hand-written rather than pydantic's strict mode or OmegaConf structured configs: our configs are plain
dataclasses whose `__post_init__` does the value checks (and some resolve derived fields); pydantic would have to wrap
or re-declare them and reports `bev.size  Input should be a valid integer [type=int_type, ...]` without the owner,
and OmegaConf converts `"no"`/`"false"` to booleans by design. The whole type check is the ~80 lines of `_check`.

YAML files are read with `yaml_load`, PyYAML's safe loader with YAML 1.2's float syntax, so `1e-4` is the number it
looks like (plain PyYAML reads it as the string "1e-4", which the strict check would then refuse).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["ConfigError", "load_config", "load_config_file", "to_plain", "yaml_load"]


class ConfigError(ValueError):
    """A config value or file that does not match its dataclass; the message names `owner.field`."""


def load_config(cls: type[T], data: Any, where: str | None = None) -> T:
    """Build dataclass `cls` from plain data (a mapping of JSON/YAML types), strictly typed, unknown keys refused."""
    return _load_dataclass(cls, data, where or cls.__name__)


def load_config_file(cls: type[T], path: str | os.PathLike, where: str | None = None) -> T:
    """Load `cls` from a YAML (`.yaml`/`.yml`) or JSON file; a missing or malformed file is a `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"config file {path} is malformed: {exc}") from exc
    return load_config(cls, {} if data is None else data, where or f"{cls.__name__}({path.name})")


_YAML_LOADER: type | None = None


def yaml_load(text: str) -> Any:
    """`yaml.safe_load` that also reads exponent floats without a dot (`1e-4`, `5E3`) as numbers (YAML 1.2)."""
    global _YAML_LOADER
    import re

    import yaml

    if _YAML_LOADER is None:

        class _Loader(yaml.SafeLoader):
            pass

        _Loader.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
            list("-+0123456789"),
        )
        _YAML_LOADER = _Loader
    return yaml.load(text, Loader=_YAML_LOADER)  # a SafeLoader subclass: no arbitrary objects


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples, enums, paths and numpy scalars -> JSON-ready plain data (the inverse of `load_config`)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def _load_dataclass(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} for {cls.__name__} (valid: {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _check(hints.get(key, Any), value, f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from exc


def _check(hint: Any, value: Any, where: str) -> Any:
    """Return `value` converted to `hint` (lists to tuples, mappings to dataclasses) or raise `ConfigError`."""
    if hint is Any or hint is object:
        return value
    if dataclasses.is_dataclass(hint):
        return _load_dataclass(hint, value, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}")
        if origin is list:
            return [_check(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}: {value!r}")
        return tuple(_check(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args or [Any] * len(value), value)))
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_check(key_t, k, f"{where}.{k}"): _check(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if isinstance(value, hint):
            return value
        try:
            return hint(value)
        except ValueError:
            try:
                return hint[value] if isinstance(value, str) else _fail(hint, value, where)
            except KeyError:
                return _fail(hint, value, where)
    if hint is bool:
        return value if isinstance(value, bool) else _fail(hint, value, where)
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _fail(hint, value, where)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
            return float(value)  # YAML has no NaN literal users remember; the dataclass decides if it is allowed
        return _fail(hint, value, where)
    if hint is str:
        return value if isinstance(value, str) else _fail(hint, value, where)
    if hint is Path:
        return Path(value) if isinstance(value, (str, Path)) else _fail(hint, value, where)
    return value


def _fail(hint: Any, value: Any, where: str) -> Any:
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} must be {name}, got {type(value).__name__} {value!r}")


def is_finite_number(value: Any) -> bool:
    """True for a real, finite int or float that is not a bool (the check every numeric field starts with)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

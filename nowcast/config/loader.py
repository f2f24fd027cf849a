"""Load, override, validate and save the config tree, with one-line errors naming the key.

    cfg = load_config("configs/demo.yaml", ["train.lr=3e-4", "model.name=predrnn"])

An unknown key, a wrong type or a value out of range raises :class:`ConfigError`
(a :class:`~nowcast.errors.UserError`) such as
``configs/demo.yaml: train.lr: expected a positive number, got 'fast'``.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from nowcast.atomic import write_text_atomic
from nowcast.config.tree import Config
from nowcast.errors import UserError


class ConfigError(UserError):
    """A config file or ``--set`` override that does not validate."""


def load_config(
    path: str | os.PathLike | None = None,
    sets: typing.Sequence[str] = (),
    overrides: typing.Mapping[str, Any] | None = None,
) -> Config:
    """Read ``path`` (YAML; ``None`` = all defaults), apply overrides, validate.

    ``sets`` are ``key.path=value`` strings (``--set``); their values are parsed as YAML
    scalars/lists (``3e-4``, ``true``, ``[0.5, 2]``). ``overrides`` maps dotted keys to
    Python values (a command's own options, e.g. ``{"synth.days": 3}``); ``None`` values
    are ignored. Overrides are applied after ``sets``.
    """
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    origins: dict[tuple[str, ...], str] = {}
    for item in sets:
        keys, value = _parse_set(item)
        _assign(raw, keys, value, item)
        origins[keys] = "--set"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            keys = tuple(dotted.split("."))
            _assign(raw, keys, value, dotted)
            origins[keys] = "command line"
    return validate_config(raw, source=source, origins=origins)


def validate_config(
    raw: dict[str, Any],
    source: str = "config",
    origins: typing.Mapping[tuple[str, ...], str] | None = None,
) -> Config:
    """Validate a plain dict into a :class:`Config`; the first problem becomes a ConfigError.

    ``origins`` maps key paths set outside the file (``--set``, command-line options) to the
    word that names them in the error; other keys are blamed on ``source``.
    """
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(str(p) for p in err["loc"])
        n = len(loc)
        origin = next(
            (word for k, word in (origins or {}).items() if loc[: len(k)] == k or k[:n] == loc),
            source,
        )
        raise ConfigError(f"{origin}: {_describe_error(err)}") from None


def config_to_yaml(cfg: Config) -> str:
    """The resolved config (every default filled in) as YAML text."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config to ``path`` atomically; ``load_config(path)`` gives it back."""
    return write_text_atomic(path, config_to_yaml(cfg))


# --------------------------------------------------------------------------- reading


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot parse"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def _parse_set(item: str) -> tuple[tuple[str, ...], Any]:
    key, sep, text = item.partition("=")
    keys = tuple(k.strip() for k in key.split("."))
    if not sep or not all(keys):
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return keys, value


def _assign(raw: dict[str, Any], keys: tuple[str, ...], value: Any, item: str) -> None:
    node = raw
    for i, k in enumerate(keys[:-1]):
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(keys[: i + 1])} is not a section")
        node = child
    node[keys[-1]] = value


# --------------------------------------------------------------------------- messages


def _describe_error(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err["loc"] if not _is_internal_loc(p)]
    path = ".".join(loc) if loc else "config"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = ", ".join(parent.model_fields) if parent is not None else ""
        return f"{path}: unknown key" + (f" (known keys: {known})" if known else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a section (a mapping of keys), got {err.get('input')!r}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in ("value_error", "assertion_error") and _field_at(loc) is None:
        return f"{path}: {err['msg'].removeprefix('Value error, ')}"
    field = _field_at(loc)
    if field is not None and loc[-1].isdigit():  # one entry of a list
        item = _item_words(field.annotation)
        if item is not None:
            key = ".".join(loc[:-1])
            return f"{key}[{loc[-1]}]: expected {item}, got {err.get('input')!r}"
    expected = _expected(field) if field is not None else None
    if expected is None:
        return f"{path}: {err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
    return f"{path}: expected {expected}, got {err.get('input')!r}"


def _is_internal_loc(part: Any) -> bool:
    # pydantic adds tags such as 'function-after[...]' or 'literal[...]' for unions
    return isinstance(part, str) and ("[" in part or part in ("list", "dict"))


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if part.isdigit():
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _as_model(model.model_fields[part].annotation)
    return model


def _field_at(loc: list[str]):
    names = [p for p in loc if not p.isdigit()]
    if not names:
        return None
    parent = _model_at(names[:-1])
    if parent is None:
        return None
    return parent.model_fields.get(names[-1])


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _expected(field) -> str | None:
    text = _type_words(field.annotation, field.metadata)
    return text


def _item_words(annotation: Any) -> str | None:
    """What one entry of a list-valued field must be (None: not a list field)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _item_words(args[0])
    if origin in (typing.Union, types.UnionType):
        words = [_item_words(a) for a in args if a is not type(None)]
        return next((w for w in words if w), None)
    if origin in (list, tuple, typing.Sequence) and args:
        return _type_words(args[0], [])
    return None


def _type_words(annotation: Any, metadata: list[Any]) -> str | None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        extra = []
        for m in args[1:]:  # a pydantic Field(...) inside Annotated carries its bounds
            extra += list(m.metadata) if isinstance(m, FieldInfo) else [m]
        return _type_words(args[0], extra + list(metadata))
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        words = [_type_words(a, metadata) for a in parts]
        text = " or ".join(w for w in words if w)
        return text + (" or null" if len(parts) < len(args) else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple, typing.Sequence):
        inner = _type_words(args[0], []) if args else "values"
        return f"a list of {_plural(inner)}" + _bounds(metadata, length=True)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    noun = {
        float: "number",
        int: "integer",
        bool: "true or false",
        str: "string",
        Path: "path",
        dt.date: "date (YYYY-MM-DD)",
        dt.datetime: "date-time (YYYY-MM-DDTHH:MM)",
    }.get(annotation)
    if noun is None:
        return None
    if annotation in (bool,):
        return noun
    return _with_constraints(noun, metadata)


def _with_constraints(noun: str, metadata: list[Any]) -> str:
    lo = hi = None
    lo_strict = hi_strict = False
    for m in metadata:
        for attr, strict, is_lo in (
            ("gt", True, True),
            ("ge", False, True),
            ("lt", True, False),
            ("le", False, False),
        ):
            v = getattr(m, attr, None)
            if v is not None and isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le, at.Interval)):
                if is_lo:
                    lo, lo_strict = v, strict
                else:
                    hi, hi_strict = v, strict
    # a bound written 0 or 0.0 reads the same (typing may hand either for equal Annotated types)
    lo, hi = (_number_text(v) for v in (lo, hi))
    article = "an" if noun[0] in "aeiou" else "a"
    if hi is None and lo is not None:
        if lo == 0 and lo_strict:
            return f"a positive {noun}"
        if lo == 0:
            return f"a non-negative {noun}"
        if lo == 1 and not lo_strict and noun == "integer":
            return "a positive integer"
        return f"{article} {noun} {'>' if lo_strict else '≥'} {lo}"
    if lo is not None and hi is not None:
        left = "(" if lo_strict else "["
        right = ")" if hi_strict else "]"
        return f"{article} {noun} in {left}{lo}, {hi}{right}"
    if hi is not None:
        return f"{article} {noun} {'<' if hi_strict else '≤'} {hi}"
    return f"{article} {noun}"


def _number_text(value: Any) -> Any:
    """A bound as written in messages: integral floats without their ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bounds(metadata: list[Any], length: bool) -> str:
    lo = next((m.min_length for m in metadata if getattr(m, "min_length", None)), None)
    hi = next((m.max_length for m in metadata if getattr(m, "max_length", None)), None)
    if lo is not None and hi is not None and lo == hi:
        return f" (exactly {lo})"
    if lo is not None:
        return f" (at least {lo})"
    if hi is not None:
        return f" (at most {hi})"
    return ""


def _plural(words: str | None) -> str:
    if not words:
        return "values"
    for article in ("a ", "an "):
        if words.startswith(article):
            words = words[len(article) :]
    head, _, tail = words.partition(" ")
    if head in ("positive", "non-negative"):
        head2, _, tail2 = tail.partition(" ")
        return f"{head} {head2}s" + (f" {tail2}" if tail2 else "")
    return f"{head}s" + (f" {tail}" if tail else "")

"""Settings files for every component: read YAML, layer env > file > defaults, explain errors.

Edge (``EdgeSettings``) and cloud (``CloudSettings``, ``ApiSettings``) load their files through
this module, so the precedence and the error text are the same everywhere:

- **precedence**: a ``CITYOPS_…`` environment variable beats the file, the file beats the
  default (balena device variables override fleet-wide files). Options given on the command line
  (``overrides``) beat both.
- **errors**: ``<file>: <field.path>: <message>``, one per problem, joined by ``; ``; an unknown
  key says which known key it is probably a typo of.
"""

import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource

M = TypeVar("M", bound=BaseModel)


class SettingsFileError(ValueError):
    """A settings file that cannot be read or does not fit its model; the text names both."""


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in *path* (an empty file is ``{}``)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsFileError(f"{path}: cannot read settings: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsFileError(f"{path}: settings must be a mapping at the top level")
    return raw


def env_values(settings_cls: type[BaseSettings]) -> dict[str, Any]:
    """What the environment sets for *settings_cls* (prefix and ``__`` nesting of its config)."""
    return dict(EnvSettingsSource(settings_cls)())


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """*base* with *over* on top; nested mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def layered(
    settings_cls: type[BaseSettings], file_data: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Defaults < *file_data* < environment < *overrides*, ready for ``settings_cls(**data)``."""
    return deep_merge(deep_merge(file_data, env_values(settings_cls)), overrides)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return []
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found by following *loc* from *model* (list indices skipped)."""
    current: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            info = m.model_fields.get(part)
            if info is not None:
                nxt.extend(_models_in(info.annotation))
        current = nxt
    names: list[str] = []
    for m in current:
        names.extend(n for n in m.model_fields if not m.model_fields[n].exclude)
    return names


def did_you_mean(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """The known key closest to the unknown last part of *loc*, if one is close enough."""
    if not loc or not isinstance(loc[-1], str):
        return None
    close = difflib.get_close_matches(loc[-1], _fields_at(model, loc[:-1]), n=1, cutoff=0.6)
    return close[0] if close else None


def describe(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """``field.path: message; …`` for every error, with "did you mean" for unknown keys."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            guess = did_you_mean(model, loc) if model is not None else None
            message = "unknown setting" + (f"; did you mean {guess!r}?" if guess else "")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def build(model: type[M], path: Path | str, data: dict[str, Any]) -> M:
    """``model(**data)``, a ``SettingsFileError`` naming *path* and the fields when it fails."""
    try:
        return model(**data)
    except ValidationError as exc:
        raise SettingsFileError(f"{path}: {describe(exc, model)}") from exc

"""Training settings in a URL query string, so a copied link reopens the same setup.

Only values that differ from the defaults are written, so links stay short, and the
model, epochs and learning rate always, so a link means the same after the defaults change.
Reading is all-or-nothing: a link with any invalid value yields the defaults
and the list of what was wrong, never an exception.
"""

from __future__ import annotations

import dataclasses
import typing

from core.config import TrainConfig

SKIPPED = ("run_dir",)  # where a run is written is the server's business, not a link's
ALWAYS = ("model", "epochs", "lr")  # written even at their defaults: a link keeps its meaning when the defaults change


def _field_types() -> dict[str, typing.Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig) if f.name not in SKIPPED}


def _encode(value: typing.Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def _decode(text: str, kind: typing.Any) -> typing.Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return tuple(args[0](v) for v in text.split(",") if v.strip())
    if type(None) in args:  # Optional[...]
        return None if text in ("", "none") else _decode(text, next(a for a in args if a is not type(None)))
    if kind is bool:
        if text not in ("0", "1", "true", "false"):
            raise ValueError(f"expected 0 or 1, got {text!r}")
        return text in ("1", "true")
    return kind(text)


def config_to_query(cfg: TrainConfig) -> dict[str, str]:
    """The settings of `cfg` that differ from the defaults, and the ALWAYS ones, as query parameters."""
    default = TrainConfig().to_dict()
    values = cfg.to_dict()
    return {name: _encode(values[name]) for name in _field_types() if values[name] != default[name] or name in ALWAYS}


def config_from_query(params: dict[str, str]) -> tuple[TrainConfig, list[str]]:
    """(config, problems): the link's settings, or the defaults and why the link was refused."""
    types = _field_types()
    problems, values = [], {}
    for name, text in params.items():
        if name not in types:
            problems.append(f"unknown setting {name!r}")
            continue
        try:
            values[name] = _decode(text, types[name])
        except (TypeError, ValueError) as exc:
            problems.append(f"{name}={text!r} ({exc})")
    if not problems:
        try:
            return TrainConfig(**values).validate(), []
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    return TrainConfig(), problems

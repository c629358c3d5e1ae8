"""Dataclass configs from defaults, a YAML file and the command line (in that order).

``--config run.yml`` loads a YAML mapping (nested mappings for nested dataclasses); every
field is also a flag, ``--num-sequences 100`` or, for a nested dataclass,
``--protocols.max-duration-s 3600``. Tuples and dicts are given as YAML on the command line:
``--protocols.ambient-c "[15, 35]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _fields(cls, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _fields(tp, prefix + f.name + ".")
        else:
            yield prefix + f.name, tp, f


def _convert(text: str, tp) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        return str(text).lower() in ("1", "true", "yes", "on")
    if tp in (int, float, str):
        return tp(text)
    if origin in (tuple, list, dict) or origin is typing.Union or tp is typing.Any:
        value = yaml.safe_load(text)
        return tuple(value) if origin is tuple else value
    return yaml.safe_load(text)


def _apply(obj, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, leaf, value)


def _apply_mapping(obj, mapping: dict, prefix: str = "") -> None:
    for key, value in mapping.items():
        key = key.replace("-", "_")
        if not hasattr(obj, key):
            valid = ", ".join(f.name for f in dataclasses.fields(obj))
            raise ValueError(f"unknown config key {prefix + key!r}; valid keys: {valid}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            _apply_mapping(current, value, prefix + key + ".")
        else:
            setattr(obj, key, tuple(value) if isinstance(current, tuple) else value)


def parse_config(cls: type[T], argv: list[str] | None = None, description: str | None = None,
                 extra: typing.Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[T, argparse.Namespace]:
    """Build ``cls()`` and override it from ``--config FILE`` and per-field flags.

    ``extra`` may add flags that are not part of the config (e.g. ``--workers``); they come
    back in the returned namespace.
    """
    parser = argparse.ArgumentParser(description=description or cls.__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="YAML file with config values (flags override it)")
    defaults = cls()
    for dotted, tp, f in _fields(cls):
        default = defaults
        for part in dotted.split("."):
            default = getattr(default, part)
        parser.add_argument(_flag(dotted), dest="cfg__" + dotted, default=None, metavar=getattr(tp, "__name__", "VALUE").upper(),
                            help=f"(default: {default!r})")
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    config = cls()
    if args.config:
        with open(args.config) as fh:
            _apply_mapping(config, yaml.safe_load(fh) or {})
    for dotted, tp, f in _fields(cls):
        text = getattr(args, "cfg__" + dotted)
        if text is not None:
            _apply(config, dotted, _convert(text, tp))
    return config, args

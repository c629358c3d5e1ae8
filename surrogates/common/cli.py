"""Dataclass configs from defaults, a YAML file and the command line (in that order), parsed by ``tyro``.

``--config run.yml`` loads a YAML mapping (nested mappings for nested dataclasses); every
field is also a flag, ``--num-sequences 100`` or, for a nested dataclass,
``--protocols.max-duration-s 3600``. Tuples, lists and dicts are given as one YAML value:
``--protocols.ambient-c "[15, 35]"``, ``--hyperparams "{learning_rate: 1e-4}"``. Booleans take
``true``/``false`` (or nothing, meaning true); anything else is an error, never a silent False.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, Callable, TypeVar

import tyro
import yaml
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo

T = TypeVar("T")

_REGISTRY = ConstructorRegistry()
_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _parse_bool(args: list[str]) -> bool:
    if not args:
        return True
    try:
        return _BOOLS[args[0].lower()]
    except KeyError:
        raise ValueError(f"expected true or false, not {args[0]!r}") from None


def _coerce(tp, value):
    """A YAML value as field type ``tp`` wants it: lists become tuples, and ``tuple[float, ...]``
    gets floats (YAML reads "[15, 35]" as ints)."""
    origin, type_args = typing.get_origin(tp), typing.get_args(tp)
    if (origin is tuple or tp is tuple) and isinstance(value, list):
        if len(type_args) == 2 and type_args[1] is Ellipsis and type_args[0] in (int, float, str):
            value = [type_args[0](v) for v in value]
        return tuple(value)
    return value


def _yaml_value(tp) -> Callable[[list[str]], Any]:
    return lambda args: _coerce(tp, yaml.safe_load(args[0]))


@_REGISTRY.primitive_rule
def _rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    tp = info.type
    if tp is bool:
        return PrimitiveConstructorSpec(nargs=(0, 1), metavar="{true,false}", instance_from_str=_parse_bool,
                                        is_instance=lambda x: isinstance(x, bool), str_from_instance=lambda x: [str(x).lower()])
    if tp in (dict, list, tuple, Any) or typing.get_origin(tp) in (dict, list, tuple):
        return PrimitiveConstructorSpec(nargs=1, metavar="YAML", instance_from_str=_yaml_value(tp),
                                        is_instance=lambda x: True,
                                        str_from_instance=lambda x: [yaml.safe_dump(x, default_flow_style=True).strip()])
    return None


def apply_mapping(obj, mapping: dict, prefix: str = "") -> None:
    """Set the fields of dataclass ``obj`` from a (nested) mapping; an unknown key is an error naming the valid ones."""
    hints = typing.get_type_hints(type(obj))
    for key, value in mapping.items():
        key = key.replace("-", "_")
        if not hasattr(obj, key):
            valid = ", ".join(f.name for f in dataclasses.fields(obj))
            raise ValueError(f"unknown config key {prefix + key!r}; valid keys: {valid}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            apply_mapping(current, value, prefix + key + ".")
        else:
            setattr(obj, key, _coerce(hints[key], value))


def parse_config(cls: type[T], argv: list[str] | None = None, description: str | None = None,
                 extra: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[T, argparse.Namespace]:
    """Build ``cls()``, override it from ``--config FILE``, then from per-field flags.

    ``extra`` may add flags that are not part of the config (e.g. ``--workers``); they come
    back in the returned namespace (which also holds ``config``, the YAML path).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", help="YAML file with config values (flags override it)")
    if extra:
        extra(pre)
    wants_help = "-h" in argv or "--help" in argv
    if wants_help:  # both parts' help; the first may have required flags, so it must not parse
        pre.description = "Flags outside the config:"
        pre.print_help()
        print()
        args, rest = argparse.Namespace(config=None), ["--help"]
    else:
        args, rest = pre.parse_known_args(argv)
    default = cls()
    if args.config:
        with open(args.config) as fh:
            apply_mapping(default, yaml.safe_load(fh) or {})
    with _REGISTRY:
        config = tyro.cli(cls, args=rest, default=default, description=description or cls.__doc__,
                          config=(tyro.conf.FlagConversionOff,))
    return config, args


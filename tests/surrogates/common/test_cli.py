"""The command-line/YAML config parser every script uses."""

from dataclasses import dataclass, field

import pytest

from surrogates.common.cli import parse_config


@dataclass
class Inner:
    ambient_c: tuple[float, ...] = (10.0, 40.0)
    """Ambient range [C]."""


@dataclass
class Config:
    """A config."""

    num: int = 3
    """How many."""
    ship: bool = False
    """Publish the result."""
    hyperparams: dict = field(default_factory=dict)
    """Overrides."""
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_then_flags(tmp_path):
    yml = tmp_path / "run.yml"
    yml.write_text("num: 5\ninner: {ambient_c: [15, 35]}\n")
    cfg, args = parse_config(Config, ["--config", str(yml), "--hyperparams", "{learning_rate: 1.0e-4}"])
    assert cfg == Config(num=5, hyperparams={"learning_rate": 1e-4}, inner=Inner((15.0, 35.0)))
    assert isinstance(cfg.inner.ambient_c[0], float) and args.config == str(yml)
    cfg, _ = parse_config(Config, ["--config", str(yml), "--num", "7", "--inner.ambient-c", "[0, 45]"])
    assert cfg.num == 7 and cfg.inner.ambient_c == (0.0, 45.0)


@pytest.mark.parametrize("argv, expected", [(["--ship"], True), (["--ship", "true"], True), (["--ship", "False"], False),
                                            ([], False)])
def test_bools(argv, expected):
    assert parse_config(Config, argv)[0].ship is expected


def test_a_mistyped_bool_is_an_error_not_false():
    with pytest.raises(SystemExit):
        parse_config(Config, ["--ship", "ture"])


def test_unknown_flags_and_yaml_keys_are_errors(tmp_path):
    with pytest.raises(SystemExit):
        parse_config(Config, ["--nmu", "3"])
    yml = tmp_path / "bad.yml"
    yml.write_text("nmu: 3\n")
    with pytest.raises(ValueError, match="unknown config key 'nmu'; valid keys: num, ship"):
        parse_config(Config, ["--config", str(yml)])


def test_extra_flags_come_back_in_the_namespace():
    cfg, args = parse_config(Config, ["--out", "x", "--num", "2"], extra=lambda p: p.add_argument("--out", required=True))
    assert cfg.num == 2 and args.out == "x"

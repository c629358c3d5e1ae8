import numpy as np
import pytest

from surrogates.data.protocols import FAMILIES, Observation, ProtocolConfig, ProtocolSpec, build_protocol, sample_spec


def _run_open_loop(spec, steps=200):
    """Drive a protocol with a fake cell whose voltage rises with SOC (no PyBaMM needed)."""
    proto = build_protocol(spec, one_c=5.0, v_max=4.2, dt=10.0)
    soc, k, currents = spec.soc0, 0, []
    obs = Observation(step=0, soc=soc, voltage=3.5, voltage_max=3.5, temperature=298.0, current=0.0)
    while k < steps:
        decision = proto.next(obs)
        if decision is None:
            break
        current, n = decision
        assert n >= 1 and np.isfinite(current)
        soc -= current * 10.0 * n / 3600 / 5.0
        k += n
        currents += [current] * n
        v = 3.4 + 0.9 * soc - 0.01 * current
        obs = Observation(step=k, soc=soc, voltage=v, voltage_max=v, temperature=298.0, current=current)
    return np.array(currents)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_seeded_and_sensible(family):
    config = ProtocolConfig()
    a = sample_spec(np.random.default_rng(3), config, family)
    b = sample_spec(np.random.default_rng(3), config, family)
    assert a == b and a.family == family
    assert ProtocolSpec.from_json(a.to_json()) == a
    assert 283.0 <= a.ambient_temperature <= 313.2
    currents = _run_open_loop(a)
    assert len(currents) > 0
    np.testing.assert_array_equal(currents, _run_open_loop(b))
    if family in ("cccv", "multistep_cc", "random_walk"):
        assert np.all(currents <= 1e-12)  # charging only (PyBaMM sign)
    assert currents.min() >= -5.0 * config.walk_max_c - 1e-9
    assert currents.max() <= 5.0 * config.max_discharge_c + 1e-9


def test_family_mix_and_unknown_family():
    rng = np.random.default_rng(0)
    families = {sample_spec(rng, ProtocolConfig()).family for _ in range(200)}
    assert families == set(FAMILIES)
    with pytest.raises(ValueError, match="valid families"):
        sample_spec(rng, ProtocolConfig(), "wiggle")

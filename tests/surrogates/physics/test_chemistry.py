"""Chemistries are plain data that agree with their PyBaMM parameter sets."""

import numpy as np
import pytest

from surrogates.physics.chemistry import CHEMISTRIES, get_chemistry
from surrogates.physics.rest_tables import rest_tables


@pytest.mark.parametrize("name", sorted(CHEMISTRIES))
def test_capacity_field_is_the_parameter_sets(name):
    chem = get_chemistry(name)
    assert chem.capacity_ah == pytest.approx(float(chem.base_parameter_values()["Nominal cell capacity [A.h]"]))


def test_rest_tables_are_the_dfn_at_rest():
    t = rest_tables("nmc", points=11)
    assert len(t["soc_grid"]) == len(t["ocv"]) == len(t["u_neg"]) == 11 and t["capacity_ah"] == 5.0
    assert np.all(np.diff(t["ocv"]) > 0)  # OCV rises with SOC
    assert np.all(np.diff(t["u_neg"]) < 0)  # the graphite potential falls as it fills
    assert 3.9 < t["ocv"][-1] < 4.25 and t["u_neg"][-1] > 0  # no plating at rest

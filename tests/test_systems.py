import numpy as np
import pytest

from ablate.config.systems import BOHR_PER_ANGSTROM, ELEMENTS, build_system
from ablate.records.errors import ConfigError


def system(**kw):
    base = {"name": None, "atoms": None, "units": "bohr", "charge": 0, "spin": None,
            "bond_length": None, "n_atoms": None}
    return build_system({**base, **kw})


@pytest.mark.parametrize("symbol", list(ELEMENTS))
def test_atoms_have_ground_state_spin(symbol):
    z, unpaired = ELEMENTS[symbol]
    s = system(name=symbol)
    assert s.n_electrons == z
    assert s.electrons[0] - s.electrons[1] == unpaired


def test_reference_energies_and_electrons():
    assert system(name="Ne").reference_energy == pytest.approx(-128.9376)
    assert system(name="O").electrons == (5, 3)
    lih = system(name="LiH")
    assert lih.electrons == (2, 2) and lih.reference_energy == pytest.approx(-8.070548)
    assert np.linalg.norm(lih.positions[1] - lih.positions[0]) == pytest.approx(3.015)
    # A stretched bond has no reference energy.
    assert system(name="LiH", bond_length=4.0).reference_energy is None
    assert system(name="CH4").electrons == (5, 5)
    assert system(name="C2H4").n_electrons == 16
    assert system(name="H2O").reference_energy is None


def test_methane_is_tetrahedral():
    s = system(name="CH4")
    d = np.linalg.norm(s.positions[1:] - s.positions[0], axis=1)
    assert np.allclose(d, d[0])
    h = s.positions[1:] - s.positions[0]
    cos = h[0] @ h[1] / d[0] ** 2
    assert cos == pytest.approx(-1 / 3)


def test_custom_geometry_in_angstrom_and_hydrogen_chain():
    s = system(name="custom", atoms=[["H", 0, 0, 0], ["H", 0, 0, 0.74]], units="angstrom")
    assert s.positions[1, 2] == pytest.approx(0.74 * BOHR_PER_ANGSTROM)
    chain = system(name="H_chain", n_atoms=6, bond_length=1.8)
    assert chain.electrons == (3, 3)
    assert np.allclose(np.diff(chain.positions[:, 2]), 1.8)


def test_nuclear_repulsion():
    s = system(name="LiH")
    assert s.nuclear_repulsion() == pytest.approx(3 * 1 / 3.015)


@pytest.mark.parametrize("kw, key", [
    ({"name": "Xx"}, "system.name"),
    ({"name": "custom", "atoms": [["Qq", 0, 0, 0]]}, "system.atoms"),
    ({"name": "He", "spin": 1}, "system.spin"),
    ({"name": "Li", "spin": 5}, "system.spin"),
    ({"name": "H", "charge": 1}, "system.charge"),
    ({"name": "H2", "units": "furlong"}, "system.units"),
    ({"name": "H_chain", "n_atoms": 0}, "system.n_atoms"),
])
def test_bad_systems_name_the_key(kw, key):
    with pytest.raises(ConfigError) as err:
        system(**kw)
    message = str(err.value)
    assert key in message and "\n" not in message

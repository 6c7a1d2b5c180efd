"""Atoms and molecules: nuclei (bohr), charges, electron counts and reference energies.

A `System` is built from the ``system`` config group by `build_system`, which validates
every value and raises `ConfigError` with one line naming the key and what is allowed.
Reference energies (Hartree) come from ``ablate/data/energies.csv``, a table with sources.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
from importlib import resources

import numpy as np

from ablate.records.errors import ConfigError

BOHR_PER_ANGSTROM = 1.0 / 0.529177210903

# Symbol -> (nuclear charge, number of unpaired electrons in the ground state).
ELEMENTS = {
    "H": (1, 1), "He": (2, 0), "Li": (3, 1), "Be": (4, 0), "B": (5, 1), "C": (6, 2),
    "N": (7, 3), "O": (8, 2), "F": (9, 1), "Ne": (10, 0), "Na": (11, 1), "Mg": (12, 0),
    "Al": (13, 1), "Si": (14, 2), "P": (15, 3), "S": (16, 2), "Cl": (17, 1), "Ar": (18, 0),
}


def _diatomic(a: str, b: str, length_bohr: float):
    return [(a, (0.0, 0.0, 0.0)), (b, (0.0, 0.0, length_bohr))]


def _methane(ch: float = 2.052):
    s = ch / math.sqrt(3.0)
    corners = [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]
    return [("C", (0.0, 0.0, 0.0))] + [("H", (s * x, s * y, s * z)) for x, y, z in corners]


def _water(oh: float = 1.8088, angle_deg: float = 104.52):
    half = math.radians(angle_deg) / 2
    return [
        ("O", (0.0, 0.0, 0.0)),
        ("H", (oh * math.sin(half), 0.0, oh * math.cos(half))),
        ("H", (-oh * math.sin(half), 0.0, oh * math.cos(half))),
    ]


def _ethene(cc: float = 2.5303, ch: float = 2.0522, hcc_deg: float = 121.2):
    outward = math.radians(180.0 - hcc_deg)
    dx, dz = ch * math.sin(outward), ch * math.cos(outward)
    c = cc / 2
    return [
        ("C", (0.0, 0.0, c)), ("C", (0.0, 0.0, -c)),
        ("H", (dx, 0.0, c + dz)), ("H", (-dx, 0.0, c + dz)),
        ("H", (dx, 0.0, -c - dz)), ("H", (-dx, 0.0, -c - dz)),
    ]


# Named molecules: builder(bond_length_bohr or None) -> [(symbol, (x, y, z) bohr)].
# Diatomic bond lengths are those of the reference-energy table (shared/reference/energies.csv);
# CH4, H2O and C2H4 use experimental equilibrium geometries (NIST CCCBDB), in bohr.
DIATOMICS = {
    "H2": ("H", "H", 1.4),
    "LiH": ("Li", "H", 3.015),
    "Li2": ("Li", "Li", 5.051),
    "N2": ("N", "N", 2.068),
    "CO": ("C", "O", 2.173),
}
POLYATOMICS = {"CH4": _methane, "H2O": _water, "C2H4": _ethene}
MOLECULES = sorted(DIATOMICS) + sorted(POLYATOMICS) + ["H_chain"]


@dataclasses.dataclass(frozen=True)
class System:
    """Nuclei and electrons of one calculation, in atomic units.

    Attributes:
      name: system name (``LiH``, ``Ne``, ``custom``...).
      symbols: element symbol of each nucleus.
      charges: nuclear charges Z, shape (n_atoms,).
      positions: nuclear positions in bohr, shape (n_atoms, 3).
      electrons: (n_up, n_down).
      reference_energy: exact or estimated-exact energy in Hartree, or None.
      reference_source: where the reference energy comes from.
    """

    name: str
    symbols: tuple[str, ...]
    charges: np.ndarray
    positions: np.ndarray
    electrons: tuple[int, int]
    reference_energy: float | None = None
    reference_source: str | None = None
    charge: int = 0

    @property
    def n_electrons(self) -> int:
        return sum(self.electrons)

    @property
    def spin(self) -> int:
        """n_up - n_down."""
        return self.electrons[0] - self.electrons[1]

    def nuclear_repulsion(self) -> float:
        """Nuclear-nuclear Coulomb energy in Hartree."""
        e = 0.0
        for i in range(len(self.charges)):
            for j in range(i):
                e += self.charges[i] * self.charges[j] / np.linalg.norm(
                    self.positions[i] - self.positions[j])
        return float(e)

    def atom_list(self) -> list[list]:
        """[[symbol, x, y, z], ...] in bohr (for summaries and pyscf)."""
        return [[s, *map(float, p)] for s, p in zip(self.symbols, self.positions)]


@functools.lru_cache(maxsize=1)
def reference_table() -> dict[str, dict]:
    """Reference energies keyed by system name (Hartree), from the packaged CSV."""
    text = resources.files("ablate").joinpath("data/energies.csv").read_text()
    return {row["system"]: row for row in csv.DictReader(text.splitlines())}


@functools.lru_cache(maxsize=1)
def ferminet_paper_table() -> dict[str, dict]:
    """FermiNet paper energies (Pfau et al. 2020) keyed by system name (Hartree)."""
    text = resources.files("ablate").joinpath("data/ferminet_paper.csv").read_text()
    return {row["system"]: row for row in csv.DictReader(text.splitlines())}


def available_systems() -> list[str]:
    return list(ELEMENTS) + MOLECULES + ["custom"]


def _geometry(name: str, cfg) -> list[tuple[str, tuple[float, float, float]]]:
    """Atoms as (symbol, position in config units); bond_length/n_atoms apply where they fit."""
    bond_length = cfg.get("bond_length")
    if bond_length is not None and not (isinstance(bond_length, (int, float)) and bond_length > 0):
        raise ConfigError("system.bond_length", bond_length, "must be a positive number")
    if name in ELEMENTS:
        return [(name, (0.0, 0.0, 0.0))]
    if name in DIATOMICS:
        a, b, length = DIATOMICS[name]
        return _diatomic(a, b, bond_length if bond_length is not None else length)
    if name in POLYATOMICS:
        return POLYATOMICS[name]()
    if name == "H_chain":
        n = cfg.get("n_atoms")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError("system.n_atoms", n, "H_chain needs an integer number of atoms >= 1")
        spacing = bond_length if bond_length is not None else 1.8
        return [("H", (0.0, 0.0, (i - (n - 1) / 2) * spacing)) for i in range(n)]
    if name == "custom":
        atoms = cfg.get("atoms")
        if not atoms:
            raise ConfigError("system.atoms", atoms, "a custom system needs [[symbol, x, y, z], ...]")
        out = []
        for k, atom in enumerate(atoms):
            atom = list(atom)
            if len(atom) != 4 or not all(isinstance(c, (int, float)) for c in atom[1:]):
                raise ConfigError(f"system.atoms[{k}]", atom, "each atom is [symbol, x, y, z]")
            out.append((str(atom[0]), tuple(float(c) for c in atom[1:])))
        return out
    raise ConfigError("system.name", name, "allowed: " + ", ".join(available_systems()))


def build_system(cfg) -> System:
    """Builds and validates a `System` from the ``system`` config (a mapping).

    Raises:
      ConfigError: unknown element or molecule, bad units, impossible charge or spin.
    """
    name = str(cfg.get("name"))
    units = cfg.get("units", "bohr")
    if units not in ("bohr", "angstrom"):
        raise ConfigError("system.units", units, "allowed: bohr, angstrom")
    atoms = _geometry(name, cfg)
    for symbol, _ in atoms:
        if symbol not in ELEMENTS:
            raise ConfigError("system.atoms", symbol,
                              "unknown element; allowed: " + ", ".join(ELEMENTS))
    scale = BOHR_PER_ANGSTROM if units == "angstrom" else 1.0
    # Built-in geometries are in bohr already; units only rescale user-given lengths.
    if name in POLYATOMICS or (name in DIATOMICS and cfg.get("bond_length") is None):
        positions = np.array([p for _, p in atoms], dtype=np.float64)
    elif name in DIATOMICS:
        positions = np.array([p for _, p in atoms], dtype=np.float64)
        positions[1, 2] *= scale
    else:
        positions = np.array([p for _, p in atoms], dtype=np.float64) * scale
    symbols = tuple(s for s, _ in atoms)
    charges = np.array([ELEMENTS[s][0] for s in symbols], dtype=np.float64)

    charge = cfg.get("charge", 0)
    if not isinstance(charge, int) or isinstance(charge, bool):
        raise ConfigError("system.charge", charge, "must be an integer")
    n = int(charges.sum()) - charge
    if n < 1:
        raise ConfigError("system.charge", charge,
                          f"leaves {n} electrons; allowed: charge < {int(charges.sum())}")
    spin = cfg.get("spin")
    if spin is None:
        spin = ELEMENTS[name][1] if (name in ELEMENTS and charge == 0) else n % 2
    if not isinstance(spin, int) or isinstance(spin, bool) or spin < 0 or spin > n \
            or (n - spin) % 2:
        allowed = ", ".join(str(s) for s in range(n % 2, n + 1, 2))
        raise ConfigError("system.spin", spin,
                          f"impossible for {n} electrons (spin = n_up - n_down); allowed: {allowed}")
    electrons = ((n + spin) // 2, (n - spin) // 2)

    reference, source = None, None
    row = reference_table().get(name)
    default_geometry = cfg.get("bond_length") is None or (
        name in DIATOMICS and math.isclose(float(positions[1, 2]), DIATOMICS[name][2], rel_tol=1e-6))
    if row and default_geometry and charge == 0 and \
            (int(row["electrons_up"]), int(row["electrons_down"])) == electrons:
        reference, source = float(row["energy_hartree"]), f"{row['kind']}: {row['source']}"
    return System(name=name, symbols=symbols, charges=charges, positions=positions,
                  electrons=electrons, reference_energy=reference, reference_source=source,
                  charge=charge)

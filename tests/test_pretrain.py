"""Pretraining to pyscf Hartree-Fock orbitals."""

import numpy as np
import pandas as pd
import pytest

from ablate.config import compose, validate
from ablate.pretrain import hartree_fock, targets
from ablate.run import run_experiment


def test_hartree_fock_energies_and_orbitals():
    lih = validate(compose(["system=LiH"])).system
    hf = hartree_fock(lih, "sto-3g")
    assert -7.87 < hf.energy < -7.85          # RHF/STO-3G LiH at 3.015 bohr: -7.862 Ha
    li = validate(compose(["system=Li"])).system
    uhf = hartree_fock(li, "sto-3g")
    assert uhf.coeff_up.shape[1] == 2 and uhf.coeff_down.shape[1] == 1
    x = np.random.default_rng(0).normal(size=(5, 4, 3))
    up, down = targets(hf, x, lih.electrons, full_det=True)
    assert up.shape == (5, 2, 4) and down.shape == (5, 2, 4)
    assert np.all(up[:, :, 2:] == 0) and np.all(down[:, :, :2] == 0)


def test_pretraining_fits_the_orbitals(tmp_path):
    cfg = compose(["system=LiH", "network.width=16", "batch_size=64", "pretrain.iterations=60",
                   "optim.iterations=1", "mcmc.burn_in=1", "evaluation.iterations=2",
                   "evaluation.burn_in=1", "logger=none", "progress=false",
                   f"output_root={tmp_path}", f"run_dir={tmp_path / 'run'}"])
    summary = run_experiment(cfg)
    loss = pd.read_csv(tmp_path / "run" / "pretrain.csv")["loss"].to_numpy()
    assert len(loss) == 60
    assert loss[-10:].mean() < 0.3 * loss[:3].mean()
    assert summary.hf_energy == pytest.approx(-7.862, abs=0.01)

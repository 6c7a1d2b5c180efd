"""Traced programs kept on disk (ablate.runtime.program_store): a run that reads them gives bitwise
the energies of one that traces them; the key names everything that shapes a program, ablate's
sources in every folder included; a damaged file is traced again. The cross-process case (a new process, LAPACK kernels not yet loaded) is
tests/test_compilation_cache.py::test_a_second_process_loads_the_programs_from_the_cache."""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ablate.config.compose import compose
from ablate.config.experiment import validate
from ablate.runtime import program_store
from ablate.vmc import training
from ablate.vmc.run import run_experiment
from conftest import TINY


def _energies(run_dir):
    return (pd.read_csv(run_dir / "metrics.csv")["energy"].to_numpy(),
            pd.read_csv(run_dir / "eval.csv")["energy"].to_numpy())


def test_a_run_from_stored_programs_gives_the_traced_runs_energies(tmp_path, monkeypatch):
    store = tmp_path / "programs"
    monkeypatch.setattr(program_store, "store_folder", lambda: store)
    overrides = TINY + [f"output_root={tmp_path}", "pretrain=hf", "pretrain.iterations=3"]
    summaries = {}
    for name, folder in (("writes", store), ("reads", store), ("plain", None)):
        monkeypatch.setattr(program_store, "store_folder", lambda folder=folder: folder)
        training._ENGINES.clear()
        summaries[name] = run_experiment(validate(compose(overrides + [f"run_dir={tmp_path / name}"])))
        assert summaries[name].status == "completed"
    writes, reads, plain = (summaries[k].compilation_cache for k in ("writes", "reads", "plain"))
    assert writes["programs_written"] == 4 and writes["programs_loaded"] == 0, writes
    assert reads["programs_loaded"] == 4 and reads["programs_written"] == 0, reads
    assert plain["programs_loaded"] == plain["programs_written"] == 0, plain
    assert len(list(store.glob("*.export"))) == 4
    for a, b, c in zip(*(_energies(tmp_path / k) for k in ("writes", "reads", "plain"))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert summaries["writes"].energy == summaries["reads"].energy == summaries["plain"].energy
    flops = {k: s.flops_per_iteration for k, s in summaries.items()}
    assert flops["writes"] == flops["reads"] == flops["plain"], flops


def _slogdet_sum(m, *, scale):
    sign, logdet = jnp.linalg.slogdet(m)
    return {"logdet": scale * jnp.sum(logdet), "sign": sign}


def test_the_key_names_everything_that_shapes_the_program(tmp_path, monkeypatch):
    m = jnp.eye(3) + 0.1
    p = program_store.StoredProgram("f", _slogdet_sum, "spec A", tmp_path, static_argnames=("scale",))
    p(m, scale=2.0)

    def key(program, *args, **static):
        leaves, treedef = jax.tree.flatten(args)
        return program.key((treedef, tuple(program_store._aval(x) for x in leaves),
                            tuple(sorted(static.items()))))

    base = key(p, m, scale=2.0)
    assert key(p, m, scale=2.0) == base
    assert key(p, m, scale=3.0) != base                                   # static argument
    assert key(p, jnp.eye(4), scale=2.0) != base                          # shape
    assert key(p, m.astype(jnp.bfloat16), scale=2.0) != base              # dtype
    assert key(p, (m,), scale=2.0) != base                                # tree structure
    other_spec = program_store.StoredProgram("f", _slogdet_sum, "spec B", tmp_path,
                                             static_argnames=("scale",))
    assert key(other_spec, m, scale=2.0) != base                          # engine spec
    monkeypatch.setattr(program_store, "source_digest", lambda: "edited ablate")
    assert key(p, m, scale=2.0) != base                                   # ablate's code
    monkeypatch.setattr(program_store, "_versions", lambda: (("jax", "0.0.0"),))
    assert key(p, m, scale=2.0) != base                                   # library versions


def test_the_source_digest_reads_every_file_in_every_folder_of_ablate(tmp_path, monkeypatch):
    """The key's hash of ablate's sources covers the whole package from its root, not the
    folder program_store.py sits in: an edit in any folder (vmc/, the top-level __main__.py, a
    package's __init__.py) or a file moved to another folder gives another digest."""
    package = Path(program_store.__file__).resolve().parents[1]
    copy = tmp_path / "ablate"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(program_store, "__file__", str(copy / "runtime" / "program_store.py"))
    digest = program_store.source_digest.__wrapped__   # uncached: it reads the copy each call
    assert digest() == program_store.source_digest()   # the same files, the same digest
    seen = {digest()}
    for edited in ("vmc/training.py", "__main__.py", "records/__init__.py", "cli/help.py"):
        with open(copy / edited, "a") as fh:
            fh.write("# an edit\n")
        seen.add(digest())
    (copy / "vmc" / "cost.py").rename(copy / "records" / "cost.py")
    seen.add(digest())
    assert len(seen) == 6


def test_a_damaged_artefact_is_traced_again(tmp_path):
    m = jnp.asarray([[2.0, 1.0], [1.0, 3.0]])
    want = jax.jit(_slogdet_sum, static_argnames="scale")(m, scale=1.0)
    first = program_store.StoredProgram("g", _slogdet_sum, "spec", tmp_path, static_argnames=("scale",))
    np.testing.assert_array_equal(first(m, scale=1.0)["logdet"], want["logdet"])
    (artefact,) = tmp_path.glob("g-*.export")
    artefact.write_bytes(artefact.read_bytes()[:100])         # a killed writer's half file
    loaded0, written0 = program_store.counts()
    again = program_store.StoredProgram("g", _slogdet_sum, "spec", tmp_path, static_argnames=("scale",))
    got = again(m, scale=1.0)
    np.testing.assert_array_equal(got["logdet"], want["logdet"])
    np.testing.assert_array_equal(got["sign"], want["sign"])
    assert program_store.counts() == (loaded0, written0 + 1)   # traced and written anew
    third = program_store.StoredProgram("g", _slogdet_sum, "spec", tmp_path, static_argnames=("scale",))
    np.testing.assert_array_equal(third(m, scale=1.0)["logdet"], want["logdet"])
    assert program_store.counts() == (loaded0 + 1, written0 + 1)   # the rewritten file is read
    assert third.lower(m, scale=1.0).compile().cost_analysis() is not None


def test_no_store_without_a_cache_or_with_several_devices(monkeypatch, tmp_path):
    monkeypatch.setattr(program_store, "cache_folder_in_use", lambda: str(tmp_path))
    assert program_store.store_folder() == tmp_path / "programs"
    monkeypatch.setattr(program_store, "cache_folder_in_use", lambda: None)
    assert program_store.store_folder() is None
    monkeypatch.setattr(program_store, "cache_folder_in_use", lambda: str(tmp_path))
    monkeypatch.setattr(jax, "device_count", lambda: 2)
    assert program_store.store_folder() is None


def _with_host_callback(x):
    # a host callback: jax.export refuses to keep it (not a stable custom call)
    y = jax.pure_callback(lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return {"y": y + 1}


def test_a_program_the_store_cannot_keep_runs_as_plain_jit(tmp_path):
    x = jnp.arange(3.0)
    p = program_store.StoredProgram("h", _with_host_callback, "spec", tmp_path)
    np.testing.assert_array_equal(p(x)["y"], [1.0, 3.0, 5.0])
    assert p.lower(x).compile() is not None
    assert not list(tmp_path.glob("h-*"))

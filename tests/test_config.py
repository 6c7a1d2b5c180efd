"""One declaration per fact in the config: each ansatz's typed config holds only the keys it reads,
and each network default is declared once, in ablate/config/experiment.py, which the composed
config follows."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate.config.compose import compose
from ablate.config.experiment import (ANSATZ_TYPES, FermiNetConfig, PsiformerConfig, SlaterJastrowConfig,
                                      declared_defaults, validate)
from ablate.records.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Compose under an ablate.config.experiment whose declared FermiNet/Slater-Jastrow width is 48: the source
# edited in one place, exactly as a maintainer would edit it.
EDITED_DECLARATION = r"""
import importlib.util, re, sys
from pathlib import Path
path = Path("ablate/config/experiment.py")
source, n = re.subn(r"(def _width\(\):\n    return key\(.*?\", )32(, low=1\))", r"\g<1>48\g<2>", path.read_text())
assert n == 1, "the width declaration moved: update this test"
spec = importlib.util.spec_from_loader("ablate.config.experiment", loader=None, origin=str(path))
module = importlib.util.module_from_spec(spec)
module.__file__ = str(path)
sys.modules["ablate.config.experiment"] = module
exec(compile(source, str(path), "exec"), module.__dict__)
from ablate.config.compose import compose
from ablate.config.experiment import validate
for args in (["network=ferminet"], ["network=slater_jastrow"], ["network=ferminet", "scale=paper"]):
    print(compose(args).network.width, validate(compose(args), device_count=1).network.width)
"""


def test_changing_a_declared_default_changes_the_composed_config():
    """ablate/config/experiment.py is the one place FermiNet's (and Slater-Jastrow's) width is declared:
    editing it there changes the composed config of both ansätze; scale=paper keeps its own."""
    out = subprocess.run([sys.executable, "-c", EDITED_DECLARATION], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["48", "48", "48", "48", "256", "256"]
    assert compose(["network=ferminet"]).network.width == FermiNetConfig().width == 32


def test_no_config_file_repeats_a_declared_network_default():
    """conf/network/<ansatz>.yaml and the scale presets hold only what differs from the declared
    defaults (a copy would make the declaration a dead letter again)."""
    ansatz_files = {p.stem: yaml.safe_load(p.read_text()) for p in (CONF / "network").glob("*.yaml")}
    assert set(ansatz_files) == set(ANSATZ_TYPES)
    for name, data in ansatz_files.items():
        assert f"/declared/network/{name}@_here_" in data["defaults"], name
        defaults = declared_defaults(ANSATZ_TYPES[name])
        repeated = {k: v for k, v in data.items() if k != "defaults" and defaults.get(k) == v}
        assert not repeated, (name, repeated)
    for path in (CONF / "scale").glob("*.yaml"):
        network = (yaml.safe_load(path.read_text()) or {}).get("network") or {}
        for name, cls in ANSATZ_TYPES.items():
            defaults = declared_defaults(cls)
            repeated = {k: v for k, v in network.items() if k in defaults and defaults[k] == v}
            assert not repeated, (path.name, name, repeated)


def test_the_composed_config_holds_the_declared_defaults_in_the_declared_order():
    for name, cls in ANSATZ_TYPES.items():
        composed = dict(compose([f"network={name}"]).network)
        assert composed == declared_defaults(cls), name
        assert list(composed) == [f.name for f in dataclasses.fields(cls)], name


def test_each_ansatz_config_has_only_the_keys_it_reads():
    keys = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in ANSATZ_TYPES.items()}
    assert {"width", "depth", "pairwise_width", "hidden_dims", "residual"} <= keys["ferminet"] & keys["slater_jastrow"]
    assert not keys["psiformer"] & {"width", "depth", "pairwise_width", "hidden_dims", "residual", "backflow"}
    assert not keys["ferminet"] & {"num_layers", "num_heads", "heads_dim", "mlp_hidden_dims", "layer_norm",
                                   "jastrow", "backflow"}
    full_det = (FermiNetConfig().full_det, PsiformerConfig().full_det, SlaterJastrowConfig().full_det)
    assert full_det == (True, True, False)
    # scale=paper sets the sizes of several ansätze: each typed config takes its own
    psiformer = validate(compose(["network=psiformer", "scale=paper"]), device_count=1)
    assert type(psiformer.network) is PsiformerConfig and not hasattr(psiformer.network, "width")
    assert psiformer.config["network.width"] == 256   # the record keeps what the preset set
    ferminet = validate(compose(["scale=paper"]), device_count=1).network
    assert type(ferminet) is FermiNetConfig and ferminet.layers == ((256, 32),) * 4
    assert not hasattr(ferminet, "num_heads")
    # network.type=psiformer under network=ferminet: the Psiformer's declared defaults, as before
    swapped = validate(compose(["network.type=psiformer"]), device_count=1).network
    assert swapped == PsiformerConfig()


@pytest.mark.parametrize("args, line", [
    (["network=psiformer", "network.width=64"],
     "config error: network.width=64: does not apply to network=psiformer (it is a key of "
     "network=ferminet/slater_jastrow); network=psiformer's own keys: num_layers, num_heads, heads_dim, "
     "mlp_hidden_dims, layer_norm, jastrow"),
    (["network=psiformer", "scale=paper", "network.depth=3"],
     "config error: network.depth=3: does not apply to network=psiformer (it is a key of "
     "network=ferminet/slater_jastrow); network=psiformer's own keys: num_layers, num_heads, heads_dim, "
     "mlp_hidden_dims, layer_norm, jastrow"),
    (["network.backflow=true"],
     "config error: network.backflow=True: does not apply to network=ferminet (it is a key of "
     "network=slater_jastrow); network=ferminet's own keys: width, depth, pairwise_width, hidden_dims, residual"),
    (["network=slater_jastrow", "network.num_heads=4"],
     "config error: network.num_heads=4: does not apply to network=slater_jastrow (it is a key of "
     "network=psiformer); network=slater_jastrow's own keys: width, depth, pairwise_width, hidden_dims, "
     "residual, backflow"),
])
def test_a_key_of_another_ansatz_is_refused_in_one_line(args, line):
    """With or without a preset that put the key in the composed config."""
    with pytest.raises(ConfigError) as err:
        compose(args)
    assert str(err.value) == line


def test_a_bad_network_type_names_the_ansatze():
    with pytest.raises(ConfigError, match=re.escape(
            "network.type='transformer': allowed: ferminet, psiformer, slater_jastrow")):
        validate(compose(["network.type=transformer"]), device_count=1)


def test_a_command_of_overrides_is_composed_once_and_validated_once(monkeypatch, tmp_path):
    """``python -m ablate key=value ...``: one composition, one validation, and the engine gets
    that Experiment (run_experiment validates nothing: it takes a validated run only)."""
    import ablate.__main__ as cli
    import ablate.vmc.run
    from ablate.config.experiment import Experiment
    from ablate.records.run_record import RunSummary

    calls = {"compose": 0, "validate": 0}

    def counted(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    ran, real_run_experiment = [], ablate.vmc.run.run_experiment
    monkeypatch.setattr(cli, "compose", counted("compose", cli.compose))
    monkeypatch.setattr(cli, "validate", counted("validate", cli.validate))
    monkeypatch.setattr(cli, "install_preemption", lambda: None)
    monkeypatch.setattr(cli, "quiet_xla_on_cpu", lambda: False)
    monkeypatch.setattr(ablate.vmc.run, "run_experiment",
                        lambda experiment: ran.append(experiment) or RunSummary(status="completed"))
    monkeypatch.setattr(sys, "argv", ["ablate", "system=He", "network=psiformer", f"output_root={tmp_path}"])
    cli.cli()
    assert calls == {"compose": 1, "validate": 1}
    (experiment,) = ran
    assert isinstance(experiment, Experiment) and type(experiment.network) is PsiformerConfig
    assert experiment.system.name == "He" and experiment.run.output_root == str(tmp_path)
    assert not hasattr(ablate.vmc.run, "validate")
    with pytest.raises(TypeError, match="takes a validated Experiment, not dict"):
        real_run_experiment(experiment.resolved)

"""No password is written or shown anywhere (issue 32).

The redaction of every odd URL form; a storage URL with a password refused in one line by every
command that takes one (the password never echoed); and a real study on a PostgreSQL role that
logs in only with its password (scram-sha-256, .ci/start_postgres.sh), the password given the
documented way (a pgpass file named by PGPASSFILE), with W&B offline, the Slurm dry run and a
Slurm submission (a stand-in sbatch, so the batch script is written): then every file under the
output root (the batch script among them), the W&B folders, the commands' output and the process
list sampled while the driver ran are searched for the password.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import optuna
import pytest

from ablate.records.errors import ConfigError
from ablate.records.redact import has_password, redact_text, redact_url
from ablate.records.safe_paths import check_no_password
from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("ABLATE_TEST_POSTGRES_URL")
# the password of .ci/start_postgres.sh's password-only role (the same default as the script)
SCRAM_PASSWORD = os.environ.get("ABLATE_PG_SCRAM_PASSWORD", "scram/Pw-7Qx4Zk9")
SECRET = "Se/cr@t:Pw?x#1"      # for the URLs that are refused (never a real password)


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg2://ablate:secret@db:5432/ablate", "postgresql+psycopg2://ablate:***@db:5432/ablate"),
    ("postgresql://ablate:pa/ss@db/ablate", "postgresql://ablate:***@db/ablate"),          # '/' in it
    ("postgresql://:secret@db/ablate", "postgresql://:***@db/ablate"),                      # no user
    ("postgresql://ablate:p@ss@db/ablate", "postgresql://ablate:***@db/ablate"),            # '@' in it
    ("postgresql://ablate:p%40ss@db/ablate", "postgresql://ablate:***@db/ablate"),          # encoded
    ("postgresql://ablate:se:cret@db/ablate", "postgresql://ablate:***@db/ablate"),
    ("postgresql://ablate@db/ablate?password=secret&sslmode=require",
     "postgresql://ablate@db/ablate?password=***&sslmode=require"),
    ("mysql://u:p?w#x@db/ablate?PASSWORD=secret", "mysql://u:***@db/ablate?PASSWORD=***"),
    ("postgresql://ablate@db:5432/ablate", "postgresql://ablate@db:5432/ablate"),           # nothing to hide
    ("sqlite:////tmp/runs/studies.db", "sqlite:////tmp/runs/studies.db"),
    ("/shared/journal.log", "/shared/journal.log"),
])
def test_every_form_of_password_is_hidden(url, shown):
    assert redact_url(url) == shown
    assert has_password(url) == (shown != url)
    text = redact_text(f"config error: sweep.storage={url!r}: and again {url}")
    assert text == f"config error: sweep.storage={shown!r}: and again {shown}"
    escaped = url.replace(":", "\\:")    # Hydra escapes ':' in the values it echoes
    assert "secret" not in redact_text(f"sweep.storage='{escaped}'") and "pa/ss" not in redact_text(escaped)


def test_a_config_error_never_carries_a_password():
    err = ConfigError("sweep.storage", f"postgresql://u:{SECRET}@h/db", "x")
    assert SECRET not in str(err) and "u:***@h" in str(err)
    with pytest.raises(ConfigError, match=r"without a password.*pgpass.*PGPASSFILE.*PGPASSWORD") as refused:
        check_no_password("--storage", f"postgresql://:{SECRET}@h/db")
    assert SECRET not in str(refused.value)


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


def test_every_command_refuses_a_url_with_a_password_in_one_line_without_echoing_it(tmp_path):
    """The misspelt scheme, a Hydra parse error, python -m sweeps status and python -m analysis
    used to print the password."""
    url = f"postgresql+psycopg2://ablate:{quote(SECRET, safe='')}@127.0.0.1:9/ablate"
    raw = f"postgresql://ablate:{SECRET}@127.0.0.1:9/ablate"
    out = tmp_path / "out"
    runs = [
        ("-m", "ablate", "+sweep=width", f"sweep.storage={url}", *TINY, f"output_root={out}"),
        ("-m", "ablate", "+sweep=width", f"sweep.storage='{raw}'", *TINY, f"output_root={out}"),
        ("-m", "ablate", "+sweep=width", f"sweep.storage={url.replace('postgresql', 'postgresq', 1)}",
         *TINY, f"output_root={out}"),
        ("-m", "ablate", "+sweep=width", f"sweep.storage={url}", "network.width=[", f"output_root={out}"),
        ("-m", "ablate", "+sweep=width", f"sweep.storag={url}", f"output_root={out}"),
        ("-m", "sweeps", "status", "width", "--storage", raw, "--output-root", str(out)),
        ("-m", "analysis", "width", "--storage", raw, "--output-root", str(out)),
        ("-m", "sweeps", "status", "width", "--output-root", str(out), raw),       # argparse echoes it
        ("-m", "analysis", "width", "--output-root", str(out), raw),
    ]
    for args in runs:
        res = _cli(*args)
        said = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
        assert res.returncode == 2, (args, res.stderr)
        assert "Se/cr" not in res.stdout + res.stderr and "Se%2Fcr" not in res.stdout + res.stderr, said
        if args[-1] == raw:   # argparse's own error: its usage, then the error line, redacted
            assert said[-1].endswith("unrecognized arguments: postgresql://ablate:***@127.0.0.1:9/ablate"), said
        else:
            assert len(said) == 1, said
    assert not out.exists()


# ----------------------------------------------------------------------------- a real study


def _scram_url() -> str:
    p = urlparse(POSTGRES_URL)
    return f"postgresql+psycopg2://ablate_scram@{p.hostname}:{p.port or 5432}/ablate_scram"


def _connects(env: dict) -> bool:
    """Can ablate_scram log in with this environment (PGPASSFILE / PGPASSWORD)?"""
    code = ("import sqlalchemy, sys; e = sqlalchemy.create_engine(sys.argv[1]); "
            "e.connect().close()")
    res = subprocess.run([sys.executable, "-c", code, _scram_url()], env=env, capture_output=True, timeout=60)
    return res.returncode == 0


def search(folders, needles: list[bytes]) -> tuple[list[str], int]:
    """(files that hold any needle, files read) under ``folders`` (symbolic links not followed)."""
    found, read = [], 0
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            read += 1
            if any(n in data for n in needles):
                found.append(str(path))
    return found, read


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="ABLATE_TEST_POSTGRES_URL is not set (.ci/start_postgres.sh)")
def test_a_study_on_a_password_only_database_writes_and_shows_its_password_nowhere(tmp_path, monkeypatch):
    secret_dir = tmp_path / "secret"          # outside the output root
    secret_dir.mkdir()
    pgpass = secret_dir / "pgpass"
    host = urlparse(POSTGRES_URL)
    escaped = SCRAM_PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    pgpass.write_text(f"{host.hostname}:{host.port or 5432}:ablate_scram:ablate_scram:{escaped}\n")
    pgpass.chmod(0o600)
    wandb_home = tmp_path / "wandb-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGPASS", "WANDB_"))}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", WANDB_MODE="offline", WANDB_SILENT="true",
               WANDB_CONFIG_DIR=str(wandb_home / "config"), WANDB_CACHE_DIR=str(wandb_home / "cache"),
               WANDB_DATA_DIR=str(wandb_home / "data"), WANDB_DIR=str(wandb_home / "dir"))
    if _connects(env):
        pytest.skip("this server lets ablate_scram in without its password (not .ci/start_postgres.sh's cluster)")
    env["PGPASSFILE"] = str(pgpass)
    assert _connects(env), "ablate_scram cannot log in with the pgpass file"

    out = tmp_path / "out"
    name = f"secrets{os.getpid()}"
    wandb_tiny = [o for o in TINY if not o.startswith(("logger=", "network.width"))] + ["logger=wandb"]
    args = [sys.executable, "-m", "ablate", "+sweep=width", "sweep.space.network.width=[4]", "sweep.seeds=1",
            "sweep.workers=1", f"sweep.name={name}", f"sweep.storage={_scram_url()}", *wandb_tiny,
            f"output_root={out}"]
    needles = [SCRAM_PASSWORD.encode(), quote(SCRAM_PASSWORD, safe="").encode(), escaped.encode()]
    processes: set[str] = set()
    driver = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while driver.poll() is None:       # the process list while the driver and its worker run
            processes.update(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())
            time.sleep(0.2)
        stdout, stderr = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert any("multiprocessing" in p for p in processes), "the worker was never seen in the process list"

    dry = _cli("-m", "ablate", *args[3:], "sweep.launcher=slurm", "sweep.slurm.dry_run=true", env=env)
    assert dry.returncode == 0 and "#SBATCH --job-name=ablate-" + name in dry.stdout, dry.stderr[-2000:]
    (tmp_path / "bin").mkdir()        # a stand-in sbatch: the submission writes its real batch script
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\necho 7\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    submitted = _cli("-m", "ablate", *args[3:], "sweep.launcher=slurm",
                     env=dict(env, PATH=f"{tmp_path / 'bin'}:{env['PATH']}"))
    script = out / "slurm" / f"{name}.sbatch"
    assert submitted.returncode == 0 and "submitted Slurm job 7" in submitted.stdout, submitted.stderr[-2000:]
    assert script.is_file() and script.stat().st_mode & 0o077 == 0
    status = _cli("-m", "sweeps", "status", name, "--storage", _scram_url(), "--output-root", str(out), env=env)
    assert status.returncode == 0 and "COMPLETE" in status.stdout, status.stderr

    found, read = search([out, wandb_home], needles)
    assert found == [] and read > 20, (found, read)
    said = "\n".join([stdout, stderr, dry.stdout, dry.stderr, submitted.stdout, submitted.stderr, status.stdout,
                      status.stderr, *processes])
    assert not any(n.decode() in said for n in needles)
    for made in ("report.md", "report.html", "trials.csv", "study.json"):   # the search covered these
        assert (out / name / made).is_file(), made
    assert list((out / name / "t0000" / "wandb").rglob("*.wandb")) and list((out / name / "analysis").rglob("*.wandb"))
    assert search([secret_dir], needles)[0] == [str(pgpass)]    # the control: the search does find it
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    optuna.delete_study(study_name=name, storage=_scram_url())

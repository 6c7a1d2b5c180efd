"""report.html (issue 10): one self-contained page per study, checked the way a reader sees it.

The fast test builds a real Optuna study with run directories (summary.json, metrics.csv as
the engine writes them) and checks the page's content; the slow one runs a tiny real
cost-aware study (``+sweep=tune_cost``, multi-objective) through the CLI, then
``python -m analysis`` and renders the page in headless Chromium, asserting every figure is
drawn. The browser test is skipped when no Chromium is installed (scripts/test.sh installs
Debian's package in CI; ``ABLATE_TEST_CHROMIUM`` names another binary).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from analysis.report import run_report

REPO = Path(__file__).resolve().parents[1]
LIH_EXACT = -8.070548
TINY = ["system=H2", "network.pairwise_width=4", "network.determinants=1", "batch_size=32", "optim.iterations=20",
        "mcmc.burn_in=5", "mcmc.steps=2", "pretrain=none", "evaluation.iterations=10", "evaluation.burn_in=5",
        "logger=none"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


class PageParser(HTMLParser):
    """The claims (text of each ``li.claim``), the image sources and every link of a page."""

    def __init__(self):
        super().__init__()
        self.claims: list[str] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self._claim: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs)
        if tag == "li" and "claim" in (attrs.get("class") or "").split():
            self._claim, self._depth = [], 0
        elif self._claim is not None:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._claim is None:
            return
        if tag == "li" and self._depth == 0:
            self.claims.append("".join(self._claim))
            self._claim = None
        else:
            self._depth -= 1

    def handle_data(self, data):
        if self._claim is not None:
            self._claim.append(data)


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def printed_claims(text: str) -> list[str]:
    """The ``[verdict] statement: evidence`` lines the text report prints under ``claims:``."""
    lines = text.splitlines()
    start = lines.index("claims:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  ["):
            break
        out.append(line[2:])
    return out


# ----------------------------------------------------------------------------- a study on disk


def write_width_study(root: Path) -> None:
    """Four LiH widths with power-law training curves and measured-looking costs."""
    root.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="width", storage=f"sqlite:///{root / 'studies.db'}")
    for key, value in {"sweep": "width", "objective": "error_mha", "output_root": str(root.resolve()),
                       "base_overrides": ["progress=false", "system=LiH", "scale=quick"]}.items():
        study.set_user_attr(key, value)
    rng = np.random.default_rng(0)
    for number, width in enumerate((8, 16, 32, 64)):
        run_dir = root / "width" / f"t{number:04d}"
        run_dir.mkdir(parents=True)
        error = 0.002 + 0.05 * width ** -0.8                      # Hartree
        steps = np.arange(400)
        train = LIH_EXACT + error + 0.5 * (steps + 1.0) ** -0.6 + rng.normal(0, 2e-4, steps.size)
        (run_dir / "metrics.csv").write_text("step,energy,variance,pmove,move_width,learning_rate,step_time_s\n" + "".join(
            f"{s},{e:.8f},0.05,0.5,0.2,0.05,0.01\n" for s, e in zip(steps, train)))
        summary = {"status": "completed", "system": "LiH", "electrons": [2, 2], "network": "ferminet", "seed": 0,
                   "params": {"network.width": width}, "study": "width", "trial": number,
                   "run_dir": str(run_dir.resolve()), "energy": LIH_EXACT + error, "energy_stderr": 3e-4,
                   "reference_energy": LIH_EXACT, "variance": 2.0 * error + 1e-4 * number, "error_mha": 1000 * error,
                   "error_stderr_mha": 0.3, "param_count": 1000 * width, "iterations": 400, "wall_time_s": 60.0 + width,
                   "devices": 1, "device_kind": "cpu:cpu", "device_seconds": 55.0 + width,
                   "wall_s_by_phase": {"train": 40.0 + width, "eval": 15.0}, "flops_per_iteration": 1e7 * width,
                   "training_flops": 4e9 * width, "git_commit": "0123abc", "versions": {"jax": "0.9.0.1"},
                   "host": "testhost"}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE, value=1000 * error, params={"network.width": width},
            distributions={"network.width": CategoricalDistribution([8, 16, 32, 64])},
            user_attrs={"run_dir": str(run_dir.resolve()), "run_id": f"t{number:04d}"}))


def test_report_html_holds_the_same_claims_every_figure_and_the_header(tmp_path):
    root = tmp_path / "runs"
    write_width_study(root)
    out = io.StringIO()
    result = run_report("width", output_root=root, stream=out)
    page = result.html_path
    assert page == root / "width" / "report.html" and page.is_file()
    parsed = parse_page(page)
    assert parsed.claims == [c.render() for c in result.claims] == printed_claims(out.getvalue())
    topics = {c.topic for c in result.claims}
    assert {"cost", "extrapolation", "width"} <= topics
    assert set(result.figures) >= {"width", "pareto_flops", "pareto_device_hours", "training_limit",
                                   "energy_variance", "width_limit", "training_curves"}
    # every figure is embedded, byte for byte, and nothing points outside the page
    assert len(parsed.images) == len(result.figures)
    for image, (name, paths) in zip(parsed.images, result.figures.items()):
        assert image["alt"] == name
        assert base64.b64decode(image["src"].split(",", 1)[1]) == paths[0].read_bytes()
    assert all(link.startswith(("data:", "#")) for link in parsed.links)
    text = page.read_text(encoding="utf-8")
    for fact in ("LiH", "scale</dt><dd>quick", "conf/sweep/width.yaml", "0123abc", "jax 0.9.0.1", "testhost",
                 "Pareto", "too poor to use" if "too poor" in text else "usable"):
        assert fact in text, fact
    assert "<script" not in text
    # the first screen is the claims beside their figures; the provenance follows, folded
    assert text.index('<h2 id="claims">') < text.index('<details id="provenance">') < text.index("0123abc")
    assert text.index('<h2 id="claims">') < text.index('<figure id="fig-width">') < text.index('<details id="provenance">')


# ----------------------------------------------------------------------------- the browser


def chromium() -> str | None:
    named = os.environ.get("ABLATE_TEST_CHROMIUM")
    if named:
        return named
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


CHECK = """<script>
window.addEventListener('load', () => {
  for (const img of document.images)
    img.setAttribute('data-drawn', img.complete && img.naturalWidth > 0 && img.naturalHeight > 0 ? 'yes' : 'no');
  document.body.setAttribute('data-checked', String(document.images.length));
});
</script>"""


def drawn_images(page: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """(images on the page, their data-drawn marks) as headless Chromium renders a copy of the page
    with a load handler that marks each image drawn when it decoded to a non-empty bitmap."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    checked = re.search(r'data-checked="(\d+)"', done.stdout)
    assert checked, "the load handler did not run: " + done.stdout[:500]
    return int(checked.group(1)), re.findall(r'<img [^>]*data-drawn="(\w+)"', done.stdout)


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no Chromium (apt-get install chromium; scripts/test.sh does in CI)")
def test_tiny_cost_aware_study_report_renders_every_figure_in_chromium(tmp_path):
    root = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sweep = subprocess.run(
        [sys.executable, "-m", "ablate", "+sweep=tune_cost", "sweep.n_trials=3", "sweep.workers=1",
         "sweep.space.network.width=[4,8]", "sweep.space.network.depth=[1]", "sweep.space.network.pairwise_width=[4]",
         "sweep.space.network.determinants=[1]", *TINY, f"output_root={root}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert "objectives error_mha (minimize), device_seconds (minimize)" in sweep.stdout
    assert "Pareto front (" in sweep.stdout

    done = subprocess.run([sys.executable, "-m", "analysis", "tune_cost", "--output-root", str(root)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page = root / "tune_cost" / "report.html"
    parsed = parse_page(page)
    assert parsed.claims == printed_claims(done.stdout)
    assert any(c.startswith("[note] Pareto-optimal trials, error vs device-hours") for c in parsed.claims)
    figures = sorted(p.stem for p in (root / "tune_cost" / "figures").glob("*.png"))
    assert {"pareto_flops", "pareto_device_hours", "training_limit"} <= set(figures)
    assert len(parsed.images) == len(figures)

    count, marks = drawn_images(page, tmp_path)
    assert count == len(figures) and marks == ["yes"] * len(figures)

"""Draws the README's picture of what the main job produces: the width figure of a finished
``+sweep=width`` study with its claims' headlines beneath, as one PNG (docs/images/main_job.png).

    python -m ablate +sweep=width                  # the main job (writes runs/width/...)
    python scripts/main_job_picture.py             # redraw the picture from that study
    python scripts/main_job_picture.py --output-root DIR --study width --out docs/images/main_job.png

Reads the study once through the analysis (the same figure data and claims as report.html);
runs nothing. Exit 2 with one line when the study is missing or has no complete trial.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def picture(output_root: Path, study: str, out: Path) -> list[str]:
    """Writes the PNG to ``out``; returns the headline lines it shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from analysis.loaders import AnalysisError
    from analysis.report import build_figure_data, judged_claims
    from analysis.studies import FIGURE_KINDS, plan_figures
    from analysis.study import Inputs
    from analysis.verdicts import NOTE

    inputs = Inputs.load(study, output_root=output_root)
    if not (inputs.trials["state"] == "COMPLETE").any():
        raise AnalysisError(f"study {study!r} has no complete trial under {output_root}")
    names = plan_figures(inputs.trials, every_study=True)
    data, _ = build_figure_data(names, inputs)
    main = next((n for n in names if n in data and n != "training_curves"), None)
    if main is None:
        raise AnalysisError(f"study {study!r} has no figure to draw")
    claims, _ = judged_claims(inputs, names, data)
    heads = [c.headline() for c in claims if c.verdict != NOTE and c.topic == FIGURE_KINDS[main].name]
    heads = heads or [c.headline() for c in claims if c.verdict != NOTE][:3]
    figure = FIGURE_KINDS[main].draw(data[main])
    figure.canvas.draw()
    image = figure.canvas.buffer_rgba()
    width, height = figure.get_size_inches()
    per_line = int(width * 72 / (7.5 * 0.62))  # monospace characters that fit the figure's width at 7.5 pt
    lines = [line for head in heads for line in textwrap.wrap(head, per_line, subsequent_indent="    ")]
    text_height = 0.19 * (len(lines) + 1)
    sheet = Figure(figsize=(width, height + text_height), dpi=figure.dpi)
    FigureCanvasAgg(sheet)
    top = sheet.add_axes((0, text_height / (height + text_height), 1, height / (height + text_height)))
    top.imshow(image)
    top.set_axis_off()
    sheet.text(0.01, (text_height - 0.12) / (height + text_height), "\n".join(lines), fontsize=7.5,
               family="monospace", va="top")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.savefig(out, dpi=figure.dpi)
    return heads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-root", default="runs", help="where the study's runs are (default: runs)")
    parser.add_argument("--study", default="width", help="the study's name (default: width)")
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "main_job.png"), help="the PNG to write")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from analysis.loaders import AnalysisError

    try:
        heads = picture(Path(args.output_root), args.study, Path(args.out))
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    for head in heads:
        print("  " + head)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

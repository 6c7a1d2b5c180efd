"""``python -m sweeps status NAME [--storage URL] [--output-root DIR]``: list a study's trials."""

from __future__ import annotations

import sys

from ablate.records.errors import ConfigError
from ablate.records.redact import ArgumentParser

from .status import show_status


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m sweeps", description="Inspect ablate sweep studies.")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="list a study's trials: params, state, energy ± error, error (mHa), wall time")
    status.add_argument("name", help="study name (sweep.name; by default the sweep file's name)")
    status.add_argument("--storage", default=None, help="storage URL (default sqlite:///<output-root>/studies.db)")
    status.add_argument("--output-root", default="runs", help="output root of the sweep (default: runs)")
    args = parser.parse_args(argv)
    try:
        return show_status(args.name, args.storage, args.output_root)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

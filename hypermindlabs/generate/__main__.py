"""``python -m hypermindlabs.generate [--out prometheus]``: write the committed Prometheus files.

Built from the defaults of :class:`~hypermindlabs.config.Settings` (never the environment), so
every machine regenerates the same bytes; ``hypermind-obs stack`` builds a copy for your settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hypermindlabs.config import Settings
from hypermindlabs.generate import default_params, prometheus_files, write_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hypermindlabs.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("prometheus"), help="directory to write (default prometheus)")
    args = parser.parse_args(argv)
    for path in write_files(args.out, prometheus_files(*default_params(Settings().public_url))):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

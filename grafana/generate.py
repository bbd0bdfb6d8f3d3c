"""Write the Grafana dashboards (grafana/dashboards/*.json), provisioning and compose configs (``make generate``).

The dashboards are Python in ``hypermindlabs/generate/grafana_dashboards.py`` (grafanalib, house style
in ``grafana_style.py``); this entry point only chooses where the JSON goes and the web UI's base URL
baked into the ``hypermind_url`` textbox variable (default: ``Settings.public_url``'s default).

    python grafana/generate.py [--out grafana/dashboards] [--public-url http://hypermind.example:8080]
                               [--provisioning grafana/provisioning] [--tempo-uid tempo] [--compose compose]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hypermindlabs.generate.compose import compose_files
from hypermindlabs.generate.grafana_dashboards import DEFAULT_PUBLIC_URL, write_all, write_provisioning

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "dashboards", help="output folder")
    parser.add_argument("--public-url", default=DEFAULT_PUBLIC_URL, help="web UI base URL for links")
    parser.add_argument("--provisioning", type=Path, default=HERE / "provisioning", help="provisioning folder")
    parser.add_argument("--tempo-uid", help="also link exemplars by trace_id to this Tempo/Jaeger datasource")
    parser.add_argument("--compose", type=Path, default=HERE.parent / "compose",
                        help="where the compose stack's prometheus.yml and alertmanager.yml go")  # fmt: skip
    args = parser.parse_args(argv)
    written = [*write_all(args.out, args.public_url), *write_provisioning(args.provisioning, args.tempo_uid)]
    args.compose.mkdir(parents=True, exist_ok=True)
    for name, text in compose_files().items():
        (args.compose / name).write_text(text, encoding="utf-8")
        written.append(args.compose / name)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hypermind-obs regressions``: the degraded slices of a window, as a table or as the API's JSON."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["add_parser", "cmd_regressions"]


def add_parser(sub: Any, db: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("regressions", help="slices that regressed against a baseline, most impactful first")
    db(sp)
    sp.add_argument("--from", dest="from_", default="now-24h", help="current window start (default now-24h)")
    sp.add_argument("--to", help="current window end (default now)")
    sp.add_argument("--baseline-from", help="baseline start (default 7 days before the baseline end)")
    sp.add_argument("--baseline-to", help="baseline end (default: the current window's start)")
    sp.add_argument("--baseline", choices=("previous", "same-hours"), default="previous",
                    help="same-hours: only the baseline hours of day the current window covers")  # fmt: skip
    sp.add_argument("--min-runs", type=int, help="minimum runs of a slice in each window (default 30)")
    sp.add_argument("--alpha", type=float, help="false-discovery rate (default 0.05)")
    sp.add_argument("--metrics", help="comma list (default all)")
    sp.add_argument("--dimensions", help="comma list of project, model, tool, scenario, tag.<key>")
    for name in ("project", "model", "tool", "scenario"):
        sp.add_argument(f"--{name}")
    sp.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag filter (repeatable)")
    sp.add_argument("--limit", type=int, default=20)
    sp.add_argument("--json", action="store_true", help="print the API's JSON answer")
    sp.set_defaults(func=cmd_regressions)


def _params(args: argparse.Namespace) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {"from": [args.from_], "baseline": [args.baseline], "limit": [str(args.limit)]}
    for opt, name in (("to", "to"), ("baseline_from", "baseline_from"), ("baseline_to", "baseline_to"),
                      ("min_runs", "min_runs"), ("alpha", "alpha"), ("metrics", "metrics"),
                      ("dimensions", "dimensions"), ("project", "project"), ("model", "model"), ("tool", "tool"),
                      ("scenario", "scenario")):  # fmt: skip
        value = getattr(args, opt)
        if value is not None:
            params[name] = [str(value)]
    for tag in args.tag or []:
        key, _, value = tag.partition("=")
        params[f"tag.{key}"] = [value]
    return params


def printable(text: Any, width: int = 80) -> str:
    """Slice values and labels are untrusted text: never let them drive the terminal."""
    s = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return s if len(s) <= width else s[: width - 1] + "…"


def _value(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric in ("failure_rate", "failure_class_share"):
        return f"{v:.1%}"
    if metric == "p95_latency_ms":
        return f"{v:,.0f} ms"
    return f"{v:,.2f}"


def _slice(s: dict[str, str]) -> str:
    return printable(" × ".join(f"{k}={v}" for k, v in s.items()) or "(all runs)", 60)


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['from']} – {report['to']} against {report['baseline_from']} – {report['baseline_to']} "
        f"(baseline {report['baseline']}): {report['tests']} tests over {report['slices']} slices, "
        f"{len(report['findings'])} findings at FDR {report['params']['alpha']:g}",
    ]
    if not report["findings"]:
        return "\n".join(lines)
    head = f"{'#':>2}  {'metric':<22} {'baseline':>10} {'current':>10} {'q':>8} {'runs':>11} {'impact':>8}  slice"
    lines.append(head)
    for i, f in enumerate(report["findings"], 1):
        metric = f["metric"] + (f"[{f['failure_class']}]" if f.get("failure_class") else "")
        lines.append(
            f"{i:>2}  {printable(metric, 22):<22} {_value(f['metric'], f['baseline_value']):>10} "
            f"{_value(f['metric'], f['current_value']):>10} {f['q_value']:>8.1e} "
            f"{f['current_n']:>5}/{f['baseline_n']:<5} {f['score']:>8.2f}  {_slice(f['slice'])}"
            + ("  (transient: a burst)" if f.get("transient") else "")
        )
        for a in f["attribution"][:3]:
            lines.append(f"{'':>4}concentrated in {printable(a['label'], 70)}: {a['baseline_share']:.0%} → "
                         f"{a['current_share']:.0%} of the selected runs")  # fmt: skip
        if f["folded"]:
            names = ", ".join(_slice(g["slice"]) + f" ({g['metric']})" for g in f["folded"][:4])
            more = f" and {len(f['folded']) - 4} more" if len(f["folded"]) > 4 else ""
            lines.append(f"{'':>4}explains: {names}{more}")
    lines.append("impact: runs affected per hour (extra failed or slow runs; runs × relative increase for means)")
    return "\n".join(lines)


def cmd_regressions(args: argparse.Namespace) -> int:
    from hypermindlabs.cli.main import _settings
    from hypermindlabs.core.errors import FieldError
    from hypermindlabs.web.regressions import parse_regressions_query, regressions
    from hypermindlabs.wiring import build_pipeline

    store = build_pipeline(_settings(args), export=False).store
    try:
        report = regressions(store, parse_regressions_query(_params(args), now_ns=time.time_ns()))
    except FieldError as exc:
        print(f"hypermind-obs regressions: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    finally:
        store.close()
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(report))
    return 0

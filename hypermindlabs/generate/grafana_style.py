"""House style over grafanalib's builders: one datasource reference, PromQL selectors built from the
conventions module, run-list data links, exemplar toggles, a fixed grid.

grafanalib 0.7.1 has no field-level data links (``fieldConfig.defaults.links``) and no ``exemplar``
flag on Prometheus targets; :func:`with_run_links` is the one place that fills both through the
panels' ``extraJson``. Everything here is pure: no I/O, no clock, no environment.

>>> Slice(project="project").selector("m", status="error")
'm{project=~"$project",status="error"}'
>>> RunLink(variables=("project",), labels=(("status", "status"),)).url()
'${hypermind_url}/runs?project=${project:csv}&status=${__field.labels.status:percentencode}&from=${__from}&to=${__to}'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import attr
import grafanalib.core as G

from hypermindlabs import conventions as c

__all__ = [
    "DATASOURCE",
    "Slice",
    "RunLink",
    "target",
    "timeseries",
    "bargauge",
    "stat",
    "with_run_links",
    "layout",
    "template_variables",
]

# Every panel and target queries the datasource the dashboard's datasource variable selects.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": f"${{{c.GRAFANA_VAR_DATASOURCE}}}"}
GRID_WIDTH = 24
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Slice:
    """Which dashboard variable filters which Prometheus label of one metric (variable → label).

    Only the variables a metric can be filtered by appear, so a query never silently ignores a
    filter and a link never carries one its query did not apply.
    """

    project: str | None = None
    model: str | None = None
    scenario: str | None = None
    tool: str | None = None

    def variables(self) -> tuple[str, ...]:
        return tuple(v for v in ("project", "model", "scenario", "tool") if getattr(self, v) is not None)

    def without(self, *variables: str) -> Slice:
        """The same slice minus some variables (those a panel breaks down by series label instead)."""
        return Slice(
            **{v: (None if v in variables else getattr(self, v)) for v in ("project", "model", "scenario", "tool")}
        )

    def matchers(self, **fixed: str) -> str:
        parts = [f'{getattr(self, v)}=~"${v}"' for v in self.variables()]
        parts += [f'{label}="{value}"' for label, value in fixed.items()]
        return ",".join(parts)

    def selector(self, metric: str, **fixed: str) -> str:
        """``metric{label=~"$var",…,fixed="value"}`` (label values fixed by the panel last)."""
        return f"{metric}{{{self.matchers(**fixed)}}}"


@dataclass(frozen=True)
class RunLink:
    """The web UI run list a panel's series drills into (CONTRACTS: Grafana dashboards).

    ``variables``: dashboard variables the panel's query applies, passed as ``name=${name:csv}``
    (All expands to every value, which the run list reads as any-of). ``labels``: (run-list
    parameter, series label) pairs, passed as ``${__field.labels.<label>:percentencode}``.
    ``fixed``: constant parameters (``status=error`` on failure panels).
    """

    variables: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()
    title: str = "Runs of this series in this time range"

    def url(self) -> str:
        params = [f"{v}=${{{v}:csv}}" for v in self.variables]
        params += [f"{p}=${{__field.labels.{label}:percentencode}}" for p, label in self.labels]
        params += [f"{p}={quote(v, safe='')}" for p, v in self.fixed]
        params += ["from=${__from}", "to=${__to}"]
        return f"${{{c.GRAFANA_VAR_HYPERMIND_URL}}}/runs?" + "&".join(params)

    @classmethod
    def for_slice(cls, sl: Slice, *, labels: Sequence[tuple[str, str]] = (), **fixed: str) -> RunLink:
        """The link for a query over ``sl`` broken down by ``labels`` with label values ``fixed``."""
        return cls(variables=sl.variables(), labels=tuple(labels), fixed=tuple(sorted(fixed.items())))


def target(expr: str, legend: str = "", *, instant: bool = False) -> G.Target:
    """One Prometheus target on the dashboard's datasource (refIds are assigned by the panel helpers)."""
    return G.Target(expr=expr, legendFormat=legend, instant=instant, datasource=DATASOURCE, intervalFactor=1)


def _with_ref_ids(targets: Sequence[G.Target]) -> list[G.Target]:
    return [attr.evolve(t, refId=_REF_IDS[i]) for i, t in enumerate(targets)]


def with_run_links(
    panel: G.Panel, link: RunLink, *, exemplars: bool = False, extra: dict[str, Any] | None = None
) -> G.Panel:
    """Field-level data link to the run list, and (latency panels) the exemplar toggle on every
    range target — the two things grafanalib 0.7.1 cannot express, filled through ``extraJson``
    (with ``extra``: further modern-schema options a builder lacks, merged the same way).
    """
    targets: list[dict[str, Any]] = []
    for t in panel.targets:
        data = t.to_json_data()
        # On the first range target only: every target of a panel selects the same buckets, so a
        # toggle on each would draw each exemplar once per target.
        data["exemplar"] = exemplars and not t.instant and not any(x["exemplar"] for x in targets)
        data["range"] = not t.instant
        targets.append(data)
    payload: dict[str, Any] = {
        "fieldConfig": {"defaults": {"links": [{"title": link.title, "url": link.url(), "targetBlank": False}]}},
        "targets": targets,
    }
    _merge(payload, extra or {})
    return attr.evolve(panel, extraJson=payload)


def _merge(base: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _common(title: str, description: str, targets: Sequence[G.Target], panel_id: int | None) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": DATASOURCE,
        "targets": _with_ref_ids(targets),
        "id": panel_id,
        "maxDataPoints": None,
    }


def timeseries(
    title: str,
    description: str,
    targets: Sequence[G.Target],
    link: RunLink,
    *,
    unit: str = "short",
    panel_id: int | None = None,
    exemplars: bool = False,
    stacked: bool = False,
) -> G.Panel:
    panel = G.TimeSeries(
        **_common(title, description, targets, panel_id),
        unit=unit,
        legendDisplayMode="table",
        legendCalcs=["mean", "max", "lastNotNull"],
        tooltipMode="multi",
        tooltipSort="desc",
        fillOpacity=10,
        stacking={"mode": "normal", "group": "A"} if stacked else {},
    )
    return with_run_links(panel, link, exemplars=exemplars)


def bargauge(
    title: str, description: str, targets: Sequence[G.Target], link: RunLink, *, unit: str = "short",
    panel_id: int | None = None,
) -> G.Panel:  # fmt: skip
    """Instant ranking (top failing tools, clusters): horizontal bars, one per series."""
    panel = G.BarGauge(
        **_common(title, description, targets, panel_id),
        format=unit,
        orientation=G.ORIENTATION_HORIZONTAL,
        displayMode=G.GAUGE_DISPLAY_MODE_BASIC,
        calc=G.GAUGE_CALC_LAST,
        min=0,
        max=None,
    )
    # grafanalib writes the Grafana 6 ``options.fieldOptions`` shape; Grafana ≥ 7 reads these.
    modern = {
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    }
    return with_run_links(panel, link, extra=modern)


def stat(
    title: str, description: str, targets: Sequence[G.Target], link: RunLink, *, unit: str = "short",
    panel_id: int | None = None, decimals: int | None = None,
) -> G.Panel:  # fmt: skip
    panel = G.Stat(
        **_common(title, description, targets, panel_id),
        format=unit,
        reduceCalc="lastNotNull",
        decimals=decimals,
        thresholds=[G.Threshold("red", 0, 0.0), G.Threshold("green", 1, 0.5)],
    )
    return with_run_links(panel, link)


def layout(rows: Sequence[Sequence[G.Panel]], *, height: int = 8) -> list[G.Panel]:
    """Place panels row by row on Grafana's 24-column grid; each row's panels share it equally."""
    out: list[G.Panel] = []
    y = 0
    for row in rows:
        width = GRID_WIDTH // len(row)
        for i, panel in enumerate(row):
            out.append(attr.evolve(panel, gridPos=G.GridPos(h=height, w=width, x=i * width, y=y)))
        y += height
    return out


def _label_values_variable(name: str, label: str, metric: str, depends_on: Slice, hypermind_label: str) -> G.Template:
    # No custom allValue: "All" expands to every value, so PromQL gets an exact alternation and the
    # run-list links get the same values as a comma list (a ".*" would mean nothing to the run list).
    query = (
        f"label_values({depends_on.selector(metric)}, {label})"
        if depends_on.variables()
        else (f"label_values({metric}, {label})")
    )
    return G.Template(
        name=name,
        label=hypermind_label,
        query=query,
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        default="$__all",
        refresh=G.REFRESH_ON_TIME_RANGE_CHANGE,
        sort=G.SORT_ALPHA_IGNORE_CASE_ASC,
    )


def template_variables(public_url: str) -> list[G.Template]:
    """datasource, project, model, scenario, tool, and the web UI base URL (a textbox)."""
    runs = Slice(project="project")
    ds = G.Template(
        name=c.GRAFANA_VAR_DATASOURCE, label="Datasource", query="prometheus", type="datasource",
        default=c.GRAFANA_DATASOURCE_UID, includeAll=False,
    )  # fmt: skip
    project = _label_values_variable(
        c.GRAFANA_VAR_PROJECT, c.prom_label(c.ATTR_PROJECT), c.PROM_AGENT_RUNS, Slice(), "Project"
    )
    model = _label_values_variable(c.GRAFANA_VAR_MODEL, c.prom_label(c.ATTR_MODEL), c.PROM_AGENT_RUNS, runs, "Model")
    scenario = _label_values_variable(
        c.GRAFANA_VAR_SCENARIO, c.prom_label(c.ATTR_SCENARIO), c.PROM_AGENT_RUNS, runs, "Scenario"
    )
    tool = _label_values_variable(c.GRAFANA_VAR_TOOL, c.prom_label(c.ATTR_TOOL), c.PROM_TOOL_CALLS, Slice(), "Tool")
    url = G.Template(
        name=c.GRAFANA_VAR_HYPERMIND_URL, label="hypermind-obs URL", query=public_url, type="textbox",
        default=public_url, hide=G.HIDE_VARIABLE,
    )  # fmt: skip
    return [ds, project, model, scenario, tool, url]

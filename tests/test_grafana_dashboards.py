"""The generated dashboards: regenerated == committed (golden), names from the conventions module,
the panels the web UI embeds at their ids, a run-list data link on every data panel, exemplars on
the latency panels, and the provisioning the tests and docker-compose.yml share."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hypermindlabs import conventions as c
from hypermindlabs.generate import grafana_dashboards as gd
from hypermindlabs.generate.grafana_style import RunLink, Slice
from tests.grafana_support import DASHBOARD_PROVIDER_FILE, DASHBOARDS_DIR, DATASOURCE_FILE, GRAFANA_INI, ROOT

UIDS = (c.DASHBOARD_OVERVIEW_UID, c.DASHBOARD_REGRESSIONS_UID, c.DASHBOARD_TRIAGE_UID)


def _committed() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def test_regenerating_the_dashboards_and_provisioning_reproduces_the_committed_files_byte_for_byte(tmp_path):
    out, prov, compose = tmp_path / "dashboards", tmp_path / "provisioning", tmp_path / "compose"
    subprocess.run([sys.executable, str(ROOT / "grafana" / "generate.py"), "--out", str(out), "--provisioning",
                    str(prov), "--compose", str(compose)], check=True, capture_output=True)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in DASHBOARDS_DIR.glob("*.json"))
    for path in out.iterdir():
        assert path.read_text() == (DASHBOARDS_DIR / path.name).read_text(), f"{path.name}: run `make generate`"
    for rel in ("datasources/hypermind.yaml", "dashboards/hypermind.yaml"):
        assert (prov / rel).read_text() == (ROOT / "grafana" / "provisioning" / rel).read_text(), rel
    for name in ("prometheus.yml", "alertmanager.yml"):
        assert (compose / name).read_text() == (ROOT / "compose" / name).read_text(), name


def test_rendering_twice_gives_identical_json_with_sorted_keys():
    for d in gd.dashboards():
        text = gd.render(d)
        assert text == gd.render(d)
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_the_committed_dashboards_carry_the_conventions_uids_and_the_embedded_panel_ids():
    boards = _committed()
    assert sorted(boards) == sorted(UIDS)
    for uid, board in boards.items():
        assert board["uid"] == uid and board["id"] is None
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    for uid, panel_id, title in c.GRAFANA_EMBED_PANELS:
        panel = {p["id"]: p for p in boards[uid]["panels"]}[panel_id]
        assert panel["title"] == title


def test_every_dashboard_has_the_contract_variables_from_label_values_and_a_datasource_variable():
    for board in _committed().values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"datasource", "project", "model", "tool", "scenario", "hypermind_url"}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for name in ("project", "model", "tool", "scenario"):
            v = variables[name]
            assert v["type"] == "query" and v["query"].startswith("label_values(") and v["multi"] and v["includeAll"]
            assert v["allValue"] is None  # All expands to the values: the run list cannot read ".*"
        assert variables["hypermind_url"]["type"] == "textbox"
        assert variables["hypermind_url"]["query"] == gd.DEFAULT_PUBLIC_URL


_LINK = re.compile(r"^\$\{hypermind_url\}/runs\?(?P<q>.*)&from=\$\{__from\}&to=\$\{__to\}$")


def test_every_data_panel_links_to_the_run_list_with_only_the_filters_its_query_applies():
    allowed = {"project", "model", "scenario", "tool", "status", "error_class", "cluster"}
    panels = 0
    for board in _committed().values():
        for panel in board["panels"]:
            panels += 1
            links = panel["fieldConfig"]["defaults"]["links"]
            assert len(links) == 1, panel["title"]
            m = _LINK.match(links[0]["url"])
            assert m, links[0]["url"]
            params = [kv.split("=", 1) for kv in m["q"].split("&")] if m["q"] else []
            assert {k for k, _ in params} <= allowed and len(params) == len({k for k, _ in params}), params
            exprs = " ".join(t["expr"] for t in panel["targets"])
            for key, value in params:
                if value == f"${{{key}:csv}}":  # a dashboard variable: the query must apply it
                    assert f'=~"${key}"' in exprs, (panel["title"], key)
                elif value.startswith("${__field.labels."):  # a series label: the query must keep it
                    label = value.removeprefix("${__field.labels.").removesuffix(":percentencode}")
                    assert all(label in t["expr"] for t in panel["targets"]), (panel["title"], label)
                else:
                    assert value in ("error", "ok"), (panel["title"], key, value)
            # A variable the query applies but the link drops would widen the list: none.
            for var in ("project", "model", "scenario", "tool"):
                if f'=~"${var}"' in exprs:
                    assert any(v == f"${{{var}:csv}}" or v.startswith("${__field.labels.") for k, v in params
                               if k == var), (panel["title"], var)  # fmt: skip
    assert panels >= 15


def test_latency_panels_toggle_exemplars_on_exactly_one_range_target():
    boards = _committed()
    for board in boards.values():
        for panel in board["panels"]:
            toggled = [t for t in panel["targets"] if t.get("exemplar")]
            is_latency = panel["fieldConfig"]["defaults"].get("unit") == "s"
            assert len(toggled) == (1 if is_latency else 0), panel["title"]
            assert all(not t["instant"] for t in toggled)
    latency = {p["id"]: p for p in boards[c.DASHBOARD_OVERVIEW_UID]["panels"]}[3]
    assert latency["targets"][0]["exemplar"] is True


def test_every_query_names_only_metrics_from_the_conventions_module():
    known = {getattr(c, n) for n in dir(c) if n.startswith("PROM_") and isinstance(getattr(c, n), str)}
    functions = {"sum", "rate", "increase", "histogram_quantile", "topk", "scalar", "unless", "offset", "or"}
    for board in _committed().values():
        for panel in board["panels"]:
            for t in panel["targets"]:
                bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\$\w+|\b(?:by|on) \([^)]*\)|\b\d[\w.]*', " ", t["expr"])
                names = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare)) - functions
                assert names <= known, (panel["title"], names - known)


def test_the_house_style_builds_selectors_and_links_from_variables_labels_and_fixed_values():
    sl = Slice(project="project", tool="gen_ai_tool_name")
    assert sl.selector("m", status="error") == 'm{project=~"$project",gen_ai_tool_name=~"$tool",status="error"}'
    assert sl.without("tool").variables() == ("project",)
    link = RunLink.for_slice(sl.without("tool"), labels=[("tool", "gen_ai_tool_name")], status="error")
    assert link.url() == ("${hypermind_url}/runs?project=${project:csv}&tool=${__field.labels.gen_ai_tool_name:"
                          "percentencode}&status=error&from=${__from}&to=${__to}")  # fmt: skip


def test_provisioning_points_exemplars_at_the_run_page_and_loads_the_committed_dashboards():
    ds = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"]
    assert [d["uid"] for d in ds] == [c.GRAFANA_DATASOURCE_UID]
    dest = ds[0]["jsonData"]["exemplarTraceIdDestinations"]
    assert dest == [{"name": c.EXEMPLAR_RUN_ID, "url": "${HYPERMIND_PUBLIC_URL}/runs/$${__value.raw}",
                     "urlDisplayLabel": "Open run in hypermind-obs"}]  # fmt: skip
    with_tempo = yaml.safe_load(gd.datasource_provisioning("tempo"))["datasources"][0]["jsonData"]
    assert {"name": c.EXEMPLAR_TRACE_ID, "datasourceUid": "tempo"} in with_tempo["exemplarTraceIdDestinations"]
    provider = yaml.safe_load(DASHBOARD_PROVIDER_FILE.read_text())["providers"][0]
    assert provider["options"]["path"] == gd.DASHBOARDS_MOUNT and provider["folder"] == c.GRAFANA_FOLDER
    ini = GRAFANA_INI.read_text()
    for line in ("allow_embedding = true", "enabled = true", "org_role = Viewer"):
        assert re.search(rf"^{re.escape(line)}$", ini, re.M), line


@pytest.mark.parametrize("uid", UIDS)
def test_each_dashboard_queries_the_datasource_variable_everywhere(uid):
    board = _committed()[uid]
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
    assert Path(DASHBOARDS_DIR / f"{uid}.json").read_text().endswith("}\n")

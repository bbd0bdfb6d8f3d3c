// The dashboard (/observability): filter bar, KPI tiles, alerts, regressions, charts, triage, Grafana.
//
// All view state lives in the URL (the API's own query parameters plus `baseline` and `group`), so a
// view can be shared, reloaded and walked back with the browser's back button. Each filter change
// pushes one history entry and reloads every panel from the API; every number links to /runs with
// exactly the runs behind it (the API's runs_url, mapped to the page).
'use strict';

import {PALETTE, chartsReady, sparkline, timeChart} from './charts.js';
import {
  DIMENSIONS, api, el, fill, filterParams, fmtDuration, fmtInt, fmtMs, fmtNum, fmtPct, fmtSci, fmtTime,
  message, readState, resolveWindow, runsPage, safeHref, stateQuery, withParams,
} from './common.js';

const CLUSTERS_SHOWN = 12;
const ERROR_SERIES = 6;
const PRESETS = ['now-1h', 'now-6h', 'now-24h', 'now-7d', 'now-14d'];
const GROUPS = ['scenario', 'model', 'project', 'tool'];
const $ = (id) => document.getElementById(id);
let dimensionsPromise = null;
let generation = 0;

function currentState() {
  const s = readState();
  if (!s.from) s.from = 'now-24h';
  if (!['previous', 'same-hours'].includes(s.other.baseline)) delete s.other.baseline;
  if (!GROUPS.includes(s.other.group)) delete s.other.group;
  return s;
}

function navigate(state) {
  const qs = stateQuery(state);
  history.pushState(null, '', qs ? `/observability?${qs}` : '/observability');
  load();
}

// -- filter bar -----------------------------------------------------------------------------
async function renderFilters(state) {
  if (!dimensionsPromise) dimensionsPromise = api('/api/v1/dimensions').catch((e) => ({error: e}));
  const dims = await dimensionsPromise;
  const box = $('dim-filters');
  box.replaceChildren();
  for (const d of DIMENSIONS) {
    const values = [...(dims[d] || [])];
    for (const v of state.dims[d]) if (!values.includes(v)) values.push(v);
    const select = el('select', {id: `filter-${d}`, multiple: true, size: 4, testid: `filter-${d}`,
      aria: {describedby: 'multi-hint'}});
    for (const v of values) {
      const opt = el('option', {value: v, text: v});
      opt.selected = state.dims[d].includes(v);
      select.append(opt);
    }
    select.addEventListener('change', () => {
      const next = currentState();
      next.dims[d] = [...select.selectedOptions].map((o) => o.value);
      navigate(next);
    });
    const clear = el('button', {type: 'button', class: 'link', testid: `clear-${d}`, text: 'clear',
      aria: {label: `Clear the ${d} filter`}, disabled: !state.dims[d].length});
    clear.addEventListener('click', () => {
      const next = currentState();
      next.dims[d] = [];
      navigate(next);
    });
    box.append(el('div', {class: 'dim'}, el('label', {for: `filter-${d}`, text: d}), select, clear));
  }
  box.append(el('p', {id: 'multi-hint', class: 'hint', text: 'Ctrl/⌘-click or Shift+arrows to pick several values.'}));
  if (dims.error) box.append(el('p', {class: 'error', text: `Filter values unavailable: ${dims.error.message}`}));

  // Tags: key → values from the data; chips for the active ones.
  const tagKey = $('tag-key');
  const tagValue = $('tag-value');
  const tagSets = dims.tags || {};
  const keys = Object.keys(tagSets).sort();
  tagKey.replaceChildren(...keys.map((k) => el('option', {value: k, text: k})));
  const fillValues = () => {
    tagValue.replaceChildren(...(tagSets[tagKey.value] || []).map((v) => el('option', {value: v, text: v})));
  };
  tagKey.onchange = fillValues;
  fillValues();
  $('tag-add').disabled = !keys.length;
  $('tag-add').onclick = () => {
    if (!tagKey.value || !tagValue.value) return;
    const next = currentState();
    const existing = next.tags.find(([k]) => k === tagKey.value);
    if (existing) {
      if (!existing[1].includes(tagValue.value)) existing[1].push(tagValue.value);
    } else next.tags.push([tagKey.value, [tagValue.value]]);
    navigate(next);
  };
  $('tag-chips').replaceChildren(...state.tags.map(([k, values]) => {
    const remove = el('button', {type: 'button', class: 'chip-x', text: '×', testid: 'tag-remove',
      aria: {label: `Remove tag filter ${k} = ${values.join(', ')}`}});
    remove.addEventListener('click', () => {
      const next = currentState();
      next.tags = next.tags.filter(([key]) => key !== k);
      navigate(next);
    });
    return el('li', {class: 'chip', testid: 'tag-chip'}, `${k} = ${values.join(' or ')}`, remove);
  }));

  // Time range.
  const preset = $('time-preset');
  const isPreset = PRESETS.includes(state.from) && !state.to;
  preset.value = isPreset ? state.from : 'custom';
  $('custom-range').hidden = isPreset;
  preset.onchange = () => {
    if (preset.value === 'custom') {
      $('custom-range').hidden = false;
      $('time-from').focus();
      return;
    }
    const next = currentState();
    next.from = preset.value;
    next.to = null;
    navigate(next);
  };
  const win = resolveWindow(state.from, state.to);
  $('time-from').value = toLocalInput(win.fromMs);
  $('time-to').value = toLocalInput(win.toMs);
  $('time-apply').onclick = () => {
    const a = Date.parse(`${$('time-from').value}Z`);
    const b = Date.parse(`${$('time-to').value}Z`);
    if (Number.isNaN(a) || Number.isNaN(b) || b <= a) {
      $('window-label').textContent = 'The custom range needs a start before its end.';
      return;
    }
    const next = currentState();
    next.from = String(a);
    next.to = String(b);
    navigate(next);
  };
  const baseline = $('baseline');
  baseline.value = state.other.baseline || 'previous';
  baseline.onchange = () => {
    const next = currentState();
    next.other.baseline = baseline.value;
    if (baseline.value === 'previous') delete next.other.baseline;
    navigate(next);
  };
  const group = $('group-by');
  group.value = state.other.group || 'scenario';
  group.onchange = () => {
    const next = currentState();
    next.other.group = group.value;
    navigate(next);
  };
}

function toLocalInput(ms) {
  return new Date(ms).toISOString().slice(0, 16);
}

// -- KPIs -------------------------------------------------------------------------------------
function change(cur, base, kind) {
  if (cur === null || cur === undefined || base === null || base === undefined) return {text: 'no baseline', cls: ''};
  if (kind === 'pp') {
    const d = (cur - base) * 100;
    return {text: `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(1)} pp`, cls: d > 0.05 ? 'worse' : d < -0.05 ? 'better' : ''};
  }
  if (base === 0) return {text: cur === 0 ? '±0 %' : 'new', cls: ''};
  const r = (cur / base - 1) * 100;
  const cls = kind === 'neutral' ? '' : r > 1 ? 'worse' : r < -1 ? 'better' : '';
  return {text: `${r >= 0 ? '+' : '−'}${Math.abs(r).toFixed(1)} %`, cls};
}

function renderKpis(cur, base, baseLabel) {
  const row = cur.rows[0];
  const b = base ? base.rows[0] : null;
  const tokens = (t) => (t ? t.input + t.output : null);
  const est = (t) => (t ? t.input_proxy + t.output_proxy : null);
  const tiles = [
    {id: 'kpi-runs', label: 'Runs', value: row.runs, text: fmtInt(row.runs), base: b && b.runs, kind: 'neutral',
      href: runsPage(row.runs_url), sub: `${fmtInt(row.errors)} failed`},
    {id: 'kpi-error-rate', label: 'Failure rate', value: row.failure_rate, text: fmtPct(row.failure_rate),
      base: b && b.failure_rate, kind: 'pp', href: runsPage(row.runs_url, {status: 'error'}),
      sub: `${fmtInt(row.errors)} of ${fmtInt(row.runs)} runs`, errors: row.errors},
    {id: 'kpi-p95', label: 'p95 latency', value: row.latency_ms.p95, text: fmtMs(row.latency_ms.p95),
      base: b && b.latency_ms.p95, kind: 'rel', href: runsPage(row.runs_url),
      sub: `p50 ${fmtMs(row.latency_ms.p50)} · p99 ${fmtMs(row.latency_ms.p99)}`},
    {id: 'kpi-tokens', label: 'Tokens reported', value: tokens(row.tokens), text: fmtInt(tokens(row.tokens)),
      base: b && tokens(b.tokens), kind: 'neutral', href: runsPage(row.runs_url),
      sub: `${fmtInt(row.tokens.input)} in · ${fmtInt(row.tokens.output)} out`},
    {id: 'kpi-tokens-estimated', label: 'Tokens estimated', value: est(row.tokens), text: fmtInt(est(row.tokens)),
      base: b && est(b.tokens), kind: 'neutral', href: runsPage(row.runs_url), sub: 'from characters (÷4), kept apart'},
    {id: 'kpi-tool-calls', label: 'Tool calls per run', value: row.tool_calls_per_run, text: fmtNum(row.tool_calls_per_run),
      base: b && b.tool_calls_per_run, kind: 'rel', href: runsPage(row.runs_url), sub: `${fmtInt(row.tool_calls)} calls`},
  ];
  fill($('kpis'), 'ready', tiles.map((t) => {
    const c = change(t.value, t.base, t.kind);
    return el('a', {class: 'kpi', href: t.href, testid: t.id,
      dataset: {value: t.value === null ? '' : String(t.value), errors: t.errors ?? ''},
      title: 'Open the runs behind this number'},
    el('span', {class: 'kpi-label', text: t.label}),
    el('span', {class: 'kpi-value', testid: `${t.id}-value`, text: t.text}),
    el('span', {class: `kpi-change ${c.cls}`, testid: `${t.id}-change`, text: `${c.text} ${baseLabel}`}),
    el('span', {class: 'kpi-sub', text: t.sub}));
  }));
}

// -- charts -----------------------------------------------------------------------------------
function pointsHref(p) {
  return p && p.count > 0 ? runsPage(p.runs_url) : null;
}

function renderLatency(ts, onZoom) {
  const pts = ts.series.length ? ts.series[0].points : [];
  const q = (k) => pts.map((p) => (p.count ? p.latency_ms[k] : null));
  timeChart($('chart-latency'), {
    ariaLabel: `Run latency percentiles over time, ${pts.length} steps of ${fmtDuration(ts.step_seconds * 1000)}`,
    times: pts.map((p) => p.t),
    series: [{label: 'p50', values: q('p50')}, {label: 'p95', values: q('p95')}, {label: 'p99', values: q('p99')}],
    yFmt: fmtMs,
    onPoint: (i) => pointsHref(pts[i]),
    onZoom,
    tableCount: pts.filter((p) => p.count).length,
    tableRows: () => pts.filter((p) => p.count).map((p) => ({t: p.t, href: runsPage(p.runs_url),
      linkText: `${fmtInt(p.count)} runs`, cells: [fmtMs(p.latency_ms.p50), fmtMs(p.latency_ms.p95), fmtMs(p.latency_ms.p99)]})),
  });
}

function renderTokens(ts, onZoom) {
  const pts = ts.series.length ? ts.series[0].points : [];
  const real = pts.map((p) => (p.count ? p.tokens.input + p.tokens.output : null));
  const est = pts.map((p) => (p.count ? p.tokens.input_proxy + p.tokens.output_proxy : null));
  timeChart($('chart-tokens'), {
    ariaLabel: 'Tokens per step over time, reported by clients and estimated from characters',
    times: pts.map((p) => p.t),
    series: [{label: 'reported', values: real}, {label: 'estimated', values: est, color: PALETTE[1]}],
    yFmt: (v) => fmtNum(v, 0),
    onPoint: (i) => pointsHref(pts[i]),
    onZoom,
    tableCount: pts.filter((p) => p.count).length,
    tableRows: () => pts.filter((p) => p.count).map((p) => ({t: p.t, href: runsPage(p.runs_url),
      linkText: `${fmtInt(p.count)} runs`,
      cells: [fmtInt(p.tokens.input + p.tokens.output), fmtInt(p.tokens.input_proxy + p.tokens.output_proxy)]})),
  });
}

function renderErrorClasses(total, byClass, onZoom) {
  const pts = total.series.length ? total.series[0].points : [];
  const count = new Map(pts.map((p) => [p.t, p.count]));
  const series = byClass.series.filter((s) => s.group.error_class !== null).slice(0, ERROR_SERIES);
  const values = series.map((s) => s.points.map((p) => (count.get(p.t) ? p.count / count.get(p.t) : null)));
  const tableRows = () => {
    const rows = [];
    series.forEach((s, si) => s.points.forEach((p, i) => {
      if (p.count) rows.push({t: p.t, href: runsPage(p.runs_url), linkText: `${fmtInt(p.count)} runs`,
        cells: series.map((_, sj) => (sj === si ? fmtPct(values[si][i]) : ''))});
    }));
    return rows.sort((a, b) => a.t - b.t);
  };
  timeChart($('chart-errors'), {
    ariaLabel: `Failure rate by error class over time: ${series.map((s) => s.group.error_class).join(', ') || 'no failures'}`,
    times: series.length ? series[0].points.map((p) => p.t) : [],
    series: series.map((s, i) => ({label: s.group.error_class, values: values[i]})),
    yFmt: (v) => fmtPct(v, 1),
    onPoint: (i, si) => pointsHref(series[si] && series[si].points[i]),
    onZoom,
    tableCount: series.reduce((n, s) => n + s.points.filter((p) => p.count).length, 0),
    tableRows,
  });
}

function renderByDimension(summary, dim) {
  const rows = summary.rows.slice(0, 12);
  if (!rows.length) return message($('by-dimension'), 'empty', 'No runs in this window.');
  const max = Math.max(...rows.map((r) => r.runs));
  const list = el('ul', {class: 'bars', aria: {label: `Runs and failure rate by ${dim}`}});
  for (const r of rows) {
    const name = r.group[dim] === null ? `(no ${dim})` : String(r.group[dim]);
    const okSeg = el('a', {class: 'seg ok', href: r.runs_url ? runsPage(r.runs_url, {status: 'ok'}) : null,
      testid: 'segment-ok', aria: {label: `${name}: ${r.runs - r.errors} successful runs`}});
    const errSeg = el('a', {class: 'seg err', href: r.runs_url ? runsPage(r.runs_url, {status: 'error'}) : null,
      testid: 'segment-error', aria: {label: `${name}: ${r.errors} failed runs`}});
    okSeg.style.width = `${((r.runs - r.errors) / max) * 100}%`;
    errSeg.style.width = `${(r.errors / max) * 100}%`;
    list.append(el('li', {class: 'bar-row', testid: 'dimension-row', dataset: {runs: r.runs, errors: r.errors}},
      el('a', {class: 'bar-label', href: runsPage(r.runs_url), text: name}),
      el('span', {class: 'bar-track'}, okSeg, errSeg),
      el('span', {class: 'bar-num', text: `${fmtInt(r.runs)} runs · ${fmtPct(r.failure_rate)} failed`})));
  }
  const note = summary.truncated || summary.rows.length > rows.length
    ? el('p', {class: 'hint', text: `Top ${rows.length} by runs.`}) : null;
  const legend = el('p', {class: 'legend'}, el('span', {class: 'key ok'}), ' successful ', el('span', {class: 'key err'}), ' failed');
  fill($('by-dimension'), 'ready', legend, list, note);
}

function renderTools(summary) {
  const rows = summary.rows.filter((r) => r.group.tool !== null).slice(0, 20);
  if (!rows.length) return message($('tools'), 'empty', 'No tool calls in this window.');
  const head = el('tr', {}, ...['Tool', 'Calls', 'Failure rate', 'p50', 'p95'].map((h) => el('th', {scope: 'col', text: h})));
  const body = rows.map((r) => el('tr', {testid: 'tool-row'},
    el('th', {scope: 'row'}, el('a', {href: runsPage(r.runs_url), text: r.group.tool,
      title: 'Runs that called this tool'})),
    el('td', {class: 'num'}, el('a', {href: runsPage(r.runs_url), text: fmtInt(r.steps),
      aria: {label: `${fmtInt(r.steps)} calls of ${r.group.tool}: the runs that made them`}})),
    el('td', {class: `num ${r.failure_rate > 0.05 ? 'worse' : ''}`, text: fmtPct(r.failure_rate)}),
    el('td', {class: 'num', text: fmtMs(r.latency_ms.p50)}),
    el('td', {class: 'num', text: fmtMs(r.latency_ms.p95)})));
  fill($('tools'), 'ready', el('div', {class: 'scroll'}, el('table', {}, el('thead', {}, head), el('tbody', {}, body))),
    el('p', {class: 'hint', text: 'Tool links list the runs that called the tool.'}));
}

// -- regressions, triage, alerts -----------------------------------------------------------------
const METRICS = {
  failure_rate: {label: 'failure rate', fmt: (v) => fmtPct(v)},
  p95_latency_ms: {label: 'p95 latency', fmt: fmtMs},
  tokens_per_run: {label: 'tokens per run', fmt: (v) => fmtNum(v, 0)},
  tool_calls_per_run: {label: 'tool calls per run', fmt: (v) => fmtNum(v)},
  failure_class_share: {label: 'failure-class share', fmt: (v) => fmtPct(v)},
};

function sliceText(slice) {
  const parts = Object.entries(slice || {}).map(([k, v]) => `${k} = ${v}`);
  return parts.length ? parts.join(' · ') : 'all runs';
}

function renderRegressions(ans) {
  const findings = ans.findings || [];
  const head = el('p', {class: 'hint', testid: 'regression-meta',
    text: `${findings.length} degraded slice${findings.length === 1 ? '' : 's'} out of ${fmtInt(ans.tests)} hypotheses tested ` +
      `(false discovery rate controlled). Current ${fmtTime(ans.from_ms)} → ${fmtTime(ans.to_ms)}, baseline ` +
      `${fmtTime(ans.baseline_from_ms)} → ${fmtTime(ans.baseline_to_ms)} (${ans.baseline}).`});
  if (!findings.length) return fill($('regressions'), 'empty', head, el('p', {class: 'muted', text: 'Nothing got significantly worse.'}));
  const cols = ['#', 'Slice', 'Metric', 'Baseline → current', 'Change', 'q-value', 'Impact', 'Attribution', 'Runs'];
  const body = findings.map((f, i) => {
    const m = METRICS[f.metric] || {label: f.metric, fmt: (v) => fmtNum(v)};
    const metric = f.failure_class ? `${m.label}: ${f.failure_class}` : m.label;
    const sample = f.attribution_sample;
    const sampled = sample ? {title: `Shares from a sample: ${fmtInt(sample.current.counted)} of ${fmtInt(sample.current.selected)} ` +
      `current and ${fmtInt(sample.baseline.counted)} of ${fmtInt(sample.baseline.selected)} baseline runs (±${fmtPct(sample.share_margin_95, 1)}, 95 %)`} : {};
    const attribution = el('ul', {class: 'chips', ...sampled}, ...(f.attribution || []).slice(0, 3).map((a) =>
      el('li', {class: 'chip', text: `${a.label || `${a.key} = ${a.value}`} (${fmtPct(a.current_share, 0)} vs ${fmtPct(a.baseline_share, 0)})`})));
    const rel = f.change_rel === null || f.change_rel === undefined ? '' : ` (${f.change_rel >= 0 ? '+' : ''}${(f.change_rel * 100).toFixed(0)} %)`;
    const folded = (f.folded || []).length ? el('span', {class: 'hint', text: ` explains ${f.folded.length} broader slice(s)`}) : null;
    return el('tr', {class: i === 0 ? 'degraded first' : 'degraded', testid: 'regression-row', dataset: {id: f.id}},
      el('td', {class: 'num', text: String(i + 1)}),
      el('th', {scope: 'row'}, el('span', {testid: 'regression-slice', text: sliceText(f.slice)}), folded),
      el('td', {text: metric}),
      el('td', {class: 'num', text: `${m.fmt(f.baseline_value)} → ${m.fmt(f.current_value)}`}),
      el('td', {class: 'num worse', text: `${m.fmt(f.change_abs)}${rel}`}),
      el('td', {class: 'num', text: fmtSci(f.q_value), title: `p = ${fmtSci(f.p_value)} (${f.test}); n = ${f.baseline_n} → ${f.current_n}`}),
      el('td', {class: 'num', text: `${fmtNum(f.impact)} ${String(f.impact_unit || '').replaceAll('_', ' ')}`}),
      el('td', {}, attribution),
      el('td', {},
        el('a', {href: runsPage(f.runs_url), testid: 'regression-runs', text: f.metric.includes('failure') ? 'failing runs' : 'runs'}),
        ' · ', el('a', {href: runsPage(f.baseline_runs_url), testid: 'regression-baseline-runs', text: 'baseline'})));
  });
  fill($('regressions'), 'ready', head, el('div', {class: 'scroll'}, el('table', {class: 'regressions'},
    el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {scope: 'col', text: c})))), el('tbody', {}, body))));
}

function renderClusters(ans, state, win) {
  const clusters = ans.clusters || [];
  if (!clusters.length) return message($('clusters'), 'empty', 'No failures in this window.');
  const page = filterParams(state, win).toString();
  const cols = ['Cluster', 'Class', 'Failed runs', 'Recovered', 'Trend', 'State', 'What to do'];
  const shown = clusters.slice(0, CLUSTERS_SHOWN);
  const total = ans.clusters_total ?? clusters.length;
  const body = shown.map((c) => {
    const failed = c.failed_runs ?? c.count;
    return el('tr', {testid: 'cluster-row', dataset: {clusterId: c.cluster_id, count: failed}},
      el('th', {scope: 'row'}, el('a', {href: `/failures/clusters/${encodeURIComponent(c.cluster_id)}?${page}`,
        testid: 'cluster-link', text: c.label})),
      el('td', {text: c.failure_class}),
      el('td', {class: 'num'}, el('a', {href: runsPage(c.runs_url), testid: 'cluster-runs', text: fmtInt(failed),
        aria: {label: `${failed} runs in cluster ${c.label}`}})),
      el('td', {class: 'num', text: c.recovered_runs === undefined ? '—' : fmtInt(c.recovered_runs)}),
      el('td', {}, sparkline(c.trend || [], `Trend over the window: ${(c.trend || []).join(', ')}`)),
      el('td', {}, el('span', {class: `state ${c.state}`, text: c.state})),
      el('td', {class: 'hint-cell', text: c.hint}));
  });
  fill($('clusters'), 'ready',
    el('p', {class: 'hint', text: `${fmtInt(ans.failed_runs)} failed runs in the window, ${fmtInt(total)} clusters` +
      `${total > shown.length ? ` (the ${shown.length} largest shown)` : ''}.`}),
    el('div', {class: 'scroll'}, el('table', {}, el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {scope: 'col', text: c})))),
      el('tbody', {}, body))));
}

function renderAlerts(ans) {
  const alerts = ans.alerts || [];
  if (!alerts.length) return message($('alerts'), 'empty', 'No alert is firing.');
  fill($('alerts'), 'ready', el('ul', {class: 'alerts'}, alerts.map((a) => {
    const ann = a.annotations || {};
    const runs = a.runs_url ? runsPage(a.runs_url) : safeHref(ann.runs_url);
    return el('li', {class: `alert ${a.severity}`, testid: 'alert-row'},
      el('span', {class: 'sev', text: a.severity || 'alert'}),
      el('strong', {text: a.alertname}), ' ',
      el('span', {text: ann.summary || ''}),
      el('span', {class: 'muted', text: ` since ${fmtTime(Date.parse(a.starts_at))}`}), ' ',
      runs ? el('a', {href: runs, testid: 'alert-runs', text: 'runs'}) : null, ' ',
      safeHref(ann.runbook_url) ? el('a', {href: ann.runbook_url, text: 'runbook', rel: 'noopener noreferrer'}) : null);
  })));
}

// -- Grafana -------------------------------------------------------------------------------------
function renderGrafana(state, win) {
  const panel = $('grafana-panel');
  if (!panel) return;
  const base = panel.dataset.grafanaUrl;
  const panels = JSON.parse(panel.dataset.panels || '[]');
  const frames = panels.map((p) => {
    const q = new URLSearchParams({orgId: '1', panelId: String(p.id), from: String(win.fromMs), to: String(win.toMs)});
    for (const d of DIMENSIONS) {
      const values = state.dims[d].length ? state.dims[d] : ['All'];
      for (const v of values) q.append(`var-${d}`, v);
    }
    const src = `${base}/d-solo/${encodeURIComponent(p.uid)}/${encodeURIComponent(p.uid)}?${q.toString()}`;
    return el('iframe', {src, title: `Grafana: ${p.title}`, testid: 'grafana-frame',
      referrerpolicy: 'no-referrer'});
  });
  $('grafana-frames').replaceChildren(...frames);
}

// -- loading -------------------------------------------------------------------------------------
function guard(promise, container, render, unavailable) {
  return promise.then(render, (e) => {
    if (e.status === 404 && unavailable) message(container, 'error', unavailable);
    else message(container, 'error', `Could not load: ${e.message}`);
  });
}

// Panels far below the first screen load when they come near the viewport: the triage panel (the
// clusters report is one of the dearest reads) and the tool table, both more than two screens down
// on a laptop. Once seen, a panel loads with the rest on every change of view, since the reader is
// looking at it.
const seen = new Set();

function whenNear(panelId) {
  if (seen.has(panelId) || typeof IntersectionObserver !== 'function') return Promise.resolve();
  return new Promise((resolve) => {
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        io.disconnect();
        seen.add(panelId);
        resolve();
      }
    }, {rootMargin: '400px 0px'});
    io.observe($(panelId));
  });
}

// A deferred panel: loaded now if already seen; else once the panels above have their size (while
// they load the page is short and everything is "near") and it comes near. Resolves when loaded
// now, or at once when deferred.
function deferred(panelId, box, aboveDone, stale, read) {
  const run = () => {
    if (stale()) return null;
    box.dataset.state = 'loading';
    box.setAttribute('aria-busy', 'true');
    return read().then(() => {
      if (!stale()) box.removeAttribute('aria-busy');
    });
  };
  if (seen.has(panelId)) return run();
  fill(box, 'deferred', el('p', {class: 'muted', text: 'Loads when scrolled into view.'}));
  box.removeAttribute('aria-busy');
  aboveDone.then(() => (stale() ? null : whenNear(panelId).then(run)));
  return null;
}

async function load() {
  const gen = ++generation;
  const state = currentState();
  const win = resolveWindow(state.from, state.to);
  const span = win.toMs - win.fromMs;
  const base = {fromMs: win.fromMs - span, toMs: win.fromMs};
  const params = filterParams(state, win);
  const group = state.other.group || 'scenario';
  const baseLabel = `vs previous ${fmtDuration(span)}`;
  $('window-label').textContent = `${fmtTime(win.fromMs)} → ${fmtTime(win.toMs)} (${fmtDuration(span)})`;
  $('window-label').dataset.from = String(win.fromMs);
  $('window-label').dataset.to = String(win.toMs);
  for (const id of ['kpis', 'alerts', 'regressions', 'chart-latency', 'chart-errors', 'chart-tokens', 'by-dimension', 'tools', 'clusters']) {
    const c = $(id);
    c.dataset.state = 'loading';
    delete c.dataset.drawn;
    c.setAttribute('aria-busy', 'true');
  }
  const onZoom = (a, b) => {
    const next = currentState();
    next.from = String(a);
    next.to = String(b);
    navigate(next);
  };
  const stale = () => gen !== generation;
  const only = (fn) => (...args) => (stale() ? null : fn(...args));

  const filtersDone = renderFilters(state);
  const summary = api('/api/v1/metrics/summary', params);
  const baseline = api('/api/v1/metrics/summary', filterParams(state, base)).catch(() => null);
  const tsData = api('/api/v1/metrics/timeseries', params);
  // The chart draws the ERROR_SERIES largest classes; the series of successful runs (no class) may
  // be one of the largest, so one more is asked for (each series is a hundred points).
  const tsClass = api('/api/v1/metrics/timeseries', withParams(params, {group_by: 'error_class',
    limit: String(ERROR_SERIES + 1)}));
  const ts = Promise.all([tsData, chartsReady]).then(([t]) => t);
  const byDim = api('/api/v1/metrics/summary', withParams(params, {group_by: group}));
  const regr = api('/api/v1/regressions', withParams(params, {baseline: state.other.baseline || 'previous'}));
  const alerts = api('/api/v1/alerts', {state: 'firing'});
  renderGrafana(state, win);

  const main = Promise.all([
    filtersDone,
    guard(Promise.all([summary, baseline]), $('kpis'), only(([s, b]) => renderKpis(s, b, baseLabel))),
    guard(ts, $('chart-latency'), only((t) => renderLatency(t, onZoom))),
    guard(ts, $('chart-tokens'), only((t) => renderTokens(t, onZoom))),
    guard(Promise.all([ts, tsClass]), $('chart-errors'), only(([t, c]) => renderErrorClasses(t, c, onZoom))),
    guard(byDim, $('by-dimension'), only((s) => renderByDimension(s, group))),
    guard(regr, $('regressions'), only(renderRegressions), 'Regression analysis is not available on this server.'),
    guard(alerts, $('alerts'), only(renderAlerts), 'Alert intake is not available on this server.'),
  ]);

  const toolsDone = deferred('tools-panel', $('tools'), main, stale, () => guard(
    api('/api/v1/metrics/summary', withParams(params, {kind: 'tool', group_by: 'tool'})), $('tools'), only(renderTools)));
  const clustersDone = deferred('triage-panel', $('clusters'), main, stale, () => guard(
    api('/api/v1/failures/clusters', withParams(params, {limit: String(CLUSTERS_SHOWN)})), $('clusters'),
    only((c) => renderClusters(c, state, win))));
  await Promise.all([main, toolsDone, clustersDone]);
  if (stale()) return;
  for (const c of document.querySelectorAll('[aria-busy]')) if (c.id !== 'clusters' && c.id !== 'tools') c.removeAttribute('aria-busy');
  document.body.dataset.loaded = String(gen);
}

window.addEventListener('popstate', load);
load();

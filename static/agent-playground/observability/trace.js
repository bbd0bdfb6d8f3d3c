// A run's page (/runs/<run_id>): its summary and its trace as a waterfall — every stored event with
// its start offset from the run, duration, status, error, failure class, cluster and remediation hint,
// tokens and attributes. Bars are positioned through the CSSOM (no inline style attributes: CSP).
'use strict';

import {api, el, fill, fmtInt, fmtMs, fmtTime, message} from './common.js';

const $ = (id) => document.getElementById(id);

function tokenText(u) {
  if (!u) return '';
  const parts = [];
  if (u.input_tokens !== null || u.output_tokens !== null) parts.push(`${fmtInt(u.input_tokens || 0)} in / ${fmtInt(u.output_tokens || 0)} out`);
  else if (u.input_chars !== null || u.output_chars !== null) {
    parts.push(`≈${fmtInt(Math.ceil((u.input_chars || 0) / 4))} in / ≈${fmtInt(Math.ceil((u.output_chars || 0) / 4))} out (estimated)`);
  }
  return parts.join('');
}

function depthOf(events) {
  const bySpan = new Map(events.map((e) => [e.span_id, e]));
  const depth = new Map();
  const d = (e, guard = 0) => {
    if (depth.has(e.span_id)) return depth.get(e.span_id);
    const parent = e.parent_span_id && bySpan.get(e.parent_span_id);
    const v = parent && parent !== e && guard < 32 ? d(parent, guard + 1) + 1 : 0;
    depth.set(e.span_id, v);
    return v;
  };
  events.forEach((e) => d(e));
  return depth;
}

function renderHeader(trace) {
  const r = trace.run;
  if (!r) {
    return fill($('run-header'), 'ready', el('p', {class: 'muted', text: 'The run event has not arrived yet: only its steps are stored.'}));
  }
  const dim = (k) => (r[k] ? el('a', {href: `/runs?${new URLSearchParams({[k]: r[k]})}`, text: r[k]}) : '—');
  const items = [
    ['Status', el('span', {class: `status ${r.status}`, testid: 'run-status', text: r.status})],
    ['Started', fmtTime(r.start_time_unix_nano / 1e6)],
    ['Duration', fmtMs(r.duration_ms)],
    ['Project', dim('project')], ['Model', dim('model')], ['Scenario', dim('scenario')],
    ['Tokens', tokenText(r.usage) || '—'],
    ['Trace id', el('code', {text: r.trace_id})],
  ];
  if (r.error) items.push(['Error', el('span', {class: 'msg', testid: 'run-error', text: `${r.error.type ?? ''}: ${r.error.message ?? ''}`})]);
  if (r.failure_class) items.push(['Failure class', r.failure_class]);
  const tags = Object.entries(r.tags || {});
  items.push(['Tags', tags.length ? el('ul', {class: 'chips'}, ...tags.map(([k, v]) =>
    el('li', {class: 'chip'}, el('a', {href: `/runs?${new URLSearchParams({[`tag.${k}`]: v})}`, text: `${k}=${v}`})))) : '—']);
  fill($('run-header'), 'ready', el('dl', {class: 'facts'}, ...items.flatMap(([k, v]) => [el('dt', {text: k}), el('dd', {}, v)])));
}

function clusterHref(clusterId, startNs) {
  // The cluster over the 24 hours up to this run, so the page shows the cluster this run is part of.
  const to = Math.floor(startNs / 6e10) * 60000 + 60000;
  return `/failures/clusters/${encodeURIComponent(clusterId)}?${new URLSearchParams({from: String(to - 86400e3), to: String(to)})}`;
}

function renderTrace(trace, triage) {
  const events = trace.events || [];
  if (!events.length) return message($('trace'), 'empty', 'No events stored for this run.');
  const t0 = Math.min(...events.map((e) => e.start_time_unix_nano));
  const t1 = Math.max(...events.map((e) => e.end_time_unix_nano));
  const total = Math.max(1, t1 - t0);
  const depth = depthOf(events);
  const hints = new Map((triage ? triage.failed : []).map((f) => [f.event_id, f]));
  const cols = ['Step', 'Start', 'Duration', 'Timeline', 'Status', 'Error, cluster and hint', 'Tokens', 'Attributes'];
  const body = events.map((e) => {
    const bar = el('span', {class: `wf-bar ${e.status}`});
    bar.style.left = `${((e.start_time_unix_nano - t0) / total) * 100}%`;
    bar.style.width = `${Math.max(0.3, ((e.end_time_unix_nano - e.start_time_unix_nano) / total) * 100)}%`;
    const name = el('span', {class: 'step-name'}, el('span', {class: `kind ${e.kind}`, text: e.kind}), ' ',
      e.name || e.tool || e.model || '');
    name.style.paddingLeft = `${Math.min(6, depth.get(e.span_id) || 0) * 0.9}rem`;
    const tri = hints.get(e.event_id);
    const errCell = [];
    if (e.error) errCell.push(el('div', {class: 'msg', testid: 'span-error', text: `${e.error.type ?? ''}${e.error.type ? ': ' : ''}${e.error.message ?? ''}`}));
    if (e.cluster_id) {
      errCell.push(el('div', {}, el('span', {class: 'tag', text: e.failure_class || ''}), ' ',
        el('a', {href: clusterHref(e.cluster_id, (trace.run || e).start_time_unix_nano), testid: 'span-cluster', text: tri ? tri.label : e.cluster_id})));
    }
    if (tri) errCell.push(el('div', {class: 'hint', testid: 'span-hint', text: `What to do: ${tri.hint}`}));
    const attrs = Object.keys(e.attributes || {}).length
      ? el('details', {}, el('summary', {text: `${Object.keys(e.attributes).length} attributes`}),
        el('pre', {text: JSON.stringify(e.attributes, null, 2)}))
      : '';
    return el('tr', {testid: 'span-row', class: e.status === 'error' ? 'failed' : '', dataset: {eventId: e.event_id, kind: e.kind}},
      el('th', {scope: 'row'}, name, e.tool && e.name !== e.tool ? el('span', {class: 'muted', text: ` ${e.tool}`}) : null),
      el('td', {class: 'num', text: `+${fmtMs((e.start_time_unix_nano - t0) / 1e6)}`}),
      el('td', {class: 'num', text: fmtMs(e.duration_ms)}),
      el('td', {class: 'wf'}, el('span', {class: 'wf-track'}, bar)),
      el('td', {}, el('span', {class: `status ${e.status}`, text: e.status})),
      el('td', {}, ...errCell),
      el('td', {class: 'num', text: tokenText(e.usage)}),
      el('td', {}, attrs));
  });
  fill($('trace'), 'ready',
    el('p', {class: 'hint', text: `${events.length} events over ${fmtMs(total / 1e6)}.`}),
    el('div', {class: 'scroll'}, el('table', {class: 'trace'},
      el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {scope: 'col', text: c})))), el('tbody', {}, body))));
}

async function load() {
  const runId = $('run-id').dataset.runId;
  const path = encodeURIComponent(runId);
  try {
    const [trace, triage] = await Promise.all([
      api(`/api/v1/runs/${path}`),
      api(`/api/v1/failures/runs/${path}`).catch(() => null),
    ]);
    renderHeader(trace);
    renderTrace(trace, triage);
  } catch (e) {
    const gone = e.prunedBefore ? ` Raw events of runs started before ${e.prunedBefore} were pruned (retention).` : '';
    const text = e.status === 404 ? `No run is stored under this id.${gone}` : `Could not load the run: ${e.message}`;
    message($('run-header'), 'error', text);
    message($('trace'), 'error', text);
  }
  document.body.dataset.loaded = '1';
}

load();

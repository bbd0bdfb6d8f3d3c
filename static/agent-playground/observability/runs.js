// The run list (/runs): the same query parameters as GET /api/v1/runs (filters, epoch-ms or RFC 3339
// or relative from/to, status, error_class, cluster, limit, cursor), newest first, one page per URL
// so "next page" and the back button behave like any page. Every run links to its trace.
'use strict';

import {api, el, fill, fmtInt, fmtMs, fmtTime, message, parseTime, runPage} from './common.js';

const $ = (id) => document.getElementById(id);
const HIDDEN = new Set(['cursor', 'limit']);

function pageWith(mutate) {
  const q = new URLSearchParams(location.search);
  mutate(q);
  const qs = q.toString();
  return qs ? `/runs?${qs}` : '/runs';
}

function renderFilters(q) {
  const chips = [];
  for (const [k, v] of q.entries()) {
    if (HIDDEN.has(k)) continue;
    let text = `${k} = ${v}`;
    if (k === 'from' || k === 'to') {
      const t = parseTime(v, Date.now());
      if (t !== null && !v.startsWith('now')) text = `${k} = ${fmtTime(t)}`;
    }
    chips.push(el('li', {class: 'chip', testid: 'filter-chip', dataset: {key: k}}, text, ' ',
      el('a', {class: 'chip-x', href: pageWith((p) => { p.delete(k); p.delete('cursor'); }), text: '×',
        aria: {label: `Remove filter ${k}`}})));
  }
  const status = q.get('status');
  const links = ['all', 'ok', 'error'].map((s) => el('a', {
    href: pageWith((p) => { p.delete('cursor'); if (s === 'all') p.delete('status'); else p.set('status', s); }),
    text: s, testid: `status-${s}`, 'aria-current': (status || 'all') === s ? 'true' : null}));
  $('active-filters').replaceChildren(...(chips.length ? chips : [el('li', {class: 'muted', text: 'No filter: every run.'})]),
    el('li', {class: 'status-links'}, 'status: ', links[0], ' · ', links[1], ' · ', links[2]));
}

function tokens(u) {
  if (!u) return '—';
  if (u.input_tokens !== null || u.output_tokens !== null) return fmtInt((u.input_tokens || 0) + (u.output_tokens || 0));
  if (u.input_chars !== null || u.output_chars !== null) return `≈${fmtInt(Math.ceil((u.input_chars || 0) / 4) + Math.ceil((u.output_chars || 0) / 4))}`;
  return '—';
}

function renderRuns(ans, q) {
  const runs = ans.runs || [];
  const cursor = q.get('cursor');
  $('run-summary').textContent = runs.length
    ? `${runs.length} run${runs.length === 1 ? '' : 's'} on this page${ans.next_cursor ? ', more on the next' : ''}${cursor ? ' (not the first page)' : ''}.`
    : '';
  $('run-summary').dataset.count = String(runs.length);
  // After `hypermind-obs prune` the API says when the window reaches before the retention
  // watermark: older runs are still counted in the aggregates but no longer listed.
  $('retention-notice').hidden = !ans.retention_notice;
  $('retention-notice').textContent = ans.retention_notice || '';
  if (!runs.length) {
    const none = ans.pruned_before ? `No run matches these filters from ${ans.pruned_before} on (older runs were pruned).`
      : 'No run matches these filters.';
    message($('run-list'), 'empty', cursor ? 'No more runs.' : none);
  } else {
    const cols = ['Started (UTC)', 'Run', 'Status', 'Project', 'Model', 'Scenario', 'Duration', 'Tool calls', 'Tokens', 'Failure class', 'Error', 'Tags'];
    const body = runs.map((r) => el('tr', {testid: 'run-row', class: r.status === 'error' ? 'failed' : '', dataset: {runId: r.run_id, start: String(Math.floor(r.start_time_unix_nano / 1e6))}},
      el('td', {class: 'nowrap', text: fmtTime(r.start_time_unix_nano / 1e6)}),
      el('th', {scope: 'row'}, el('a', {href: runPage(r.run_id), testid: 'run-link', text: r.run_id})),
      el('td', {}, el('span', {class: `status ${r.status}`, text: r.status})),
      el('td', {text: r.project ?? '—'}),
      el('td', {text: r.model ?? '—'}),
      el('td', {text: r.scenario ?? '—'}),
      el('td', {class: 'num', text: fmtMs(r.duration_ms)}),
      el('td', {class: 'num', text: fmtInt(r.tool_calls)}),
      el('td', {class: 'num', text: tokens(r.usage)}),
      el('td', {text: r.failure_class ?? ''}),
      el('td', {class: 'msg', text: r.error ? `${r.error.type ?? ''}${r.error.type && r.error.message ? ': ' : ''}${r.error.message ?? ''}`.slice(0, 300) : ''}),
      el('td', {}, el('ul', {class: 'chips'}, ...Object.entries(r.tags || {}).map(([k, v]) => el('li', {class: 'chip small', text: `${k}=${v}`}))))));
    fill($('run-list'), 'ready', el('div', {class: 'scroll'}, el('table', {class: 'runs'},
      el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {scope: 'col', text: c})))), el('tbody', {}, body))));
  }
  const nav = [];
  if (cursor) nav.push(el('a', {href: pageWith((p) => p.delete('cursor')), testid: 'first-page', text: '« First page'}));
  if (ans.next_cursor) nav.push(el('a', {href: pageWith((p) => p.set('cursor', ans.next_cursor)), testid: 'next-page', rel: 'next', text: 'Next page »'}));
  $('pager').replaceChildren(...nav);
}

async function load() {
  const q = new URLSearchParams(location.search);
  if (!q.has('limit')) q.set('limit', '200');
  renderFilters(new URLSearchParams(location.search));
  try {
    renderRuns(await api('/api/v1/runs', q), q);
  } catch (e) {
    message($('run-list'), 'error', `Could not list runs: ${e.message}${e.field ? ` (parameter ${e.field})` : ''}`);
  }
  document.body.dataset.loaded = '1';
}

load();

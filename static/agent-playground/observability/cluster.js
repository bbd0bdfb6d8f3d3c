// A failure cluster's page (/failures/clusters/<id>?<filters>): label, class, template, hint, counts,
// trend, where it concentrates, and sample runs (each linking to its trace).
'use strict';

import {sparkline} from './charts.js';
import {api, el, fill, fmtInt, fmtPct, fmtTime, message, runPage, runsPage} from './common.js';

const $ = (id) => document.getElementById(id);

function facts(items) {
  return el('dl', {class: 'facts'}, ...items.flatMap(([k, v]) => [el('dt', {text: k}), el('dd', {}, v)]));
}

async function load() {
  const id = $('cluster-id').dataset.clusterId;
  const q = new URLSearchParams(location.search);
  q.set('samples', '20');
  try {
    const ans = await api('/api/v1/failures/clusters', q);
    const c = (ans.clusters || []).find((x) => x.cluster_id === id);
    if (!c) {
      message($('cluster'), 'empty', 'This cluster has no failed runs in the selected window and filters.');
      message($('samples'), 'empty', 'No sample runs.');
    } else {
      const failed = c.failed_runs ?? c.count;
      const conc = Object.entries(c.concentration || {}).flatMap(([k, vals]) =>
        vals.map((v) => el('li', {class: 'chip', text: `${k}=${v.value}: ${fmtPct(v.share, 0)}`})));
      const affected = Object.entries(c.affected || {}).map(([k, m]) =>
        el('div', {}, `${k}: `, Object.entries(m).map(([n, cnt]) => `${n} (${cnt})`).join(', ')));
      fill($('cluster'), 'ready', facts([
        ['Label', el('strong', {testid: 'cluster-label', text: c.label})],
        ['Failure class', c.failure_class],
        ['Template', el('code', {class: 'msg', text: c.template || '—'})],
        ['What to do', el('span', {testid: 'cluster-hint', text: c.hint})],
        ['Failed runs', el('a', {href: runsPage(c.runs_url), testid: 'cluster-runs', text: `${fmtInt(failed)} runs`})],
        ['Recovered runs', c.recovered_runs === undefined ? '—' : fmtInt(c.recovered_runs)],
        ['Previous window', fmtInt(c.previous_count)],
        ['State', el('span', {class: `state ${c.state}`, text: c.state})],
        ['Share of failed runs', fmtPct(c.share_of_failed_runs)],
        ['Trend', sparkline(c.trend || [], `Trend: ${(c.trend || []).join(', ')}`)],
        ['First / last seen', `${fmtTime(c.first_seen / 1e6)} / ${fmtTime(c.last_seen / 1e6)}`],
        ['Concentration', conc.length ? el('ul', {class: 'chips'}, ...conc) : '—'],
        ['Affected', affected.length ? affected : '—'],
      ]));
      const runs = await api('/api/v1/runs', new URLSearchParams({...Object.fromEntries(new URLSearchParams(c.runs_url.split('?')[1] || '')), limit: '20'}));
      const items = (runs.runs || []).map((r) => el('li', {testid: 'sample-run'},
        el('a', {href: runPage(r.run_id), text: r.run_id}), ' ',
        el('span', {class: 'muted', text: `${fmtTime(r.start_time_unix_nano / 1e6)} · ${r.model ?? ''} · ${r.scenario ?? ''}`}),
        r.error ? el('div', {class: 'msg', text: `${r.error.type ?? ''}: ${r.error.message ?? ''}`.slice(0, 300)}) : null));
      if (items.length) fill($('samples'), 'ready', el('ul', {class: 'samples'}, ...items));
      else message($('samples'), 'empty', 'No sample runs.');
    }
  } catch (e) {
    message($('cluster'), 'error', `Could not load the cluster: ${e.message}`);
    message($('samples'), 'error', 'No sample runs.');
  }
  document.body.dataset.loaded = '1';
}

load();

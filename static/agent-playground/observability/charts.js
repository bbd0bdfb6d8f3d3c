// Charts of the dashboard, drawn by uPlot (npm `uplot`, served from node_modules at /vendor/uplot/).
//
// A time chart: click a point to open the runs behind it, drag across it to narrow the time range.
// Each chart also carries a data table (keyboard- and screen-reader-reachable) with the same
// numbers and the same drill-down links, so nothing is reachable by mouse only.
'use strict';

import {el, fill, fmtTime, message} from './common.js';

/**
 * Resolves (true) once uPlot is there, false when its file failed to load. The page loads it
 * `async`, so the API calls start without waiting for it; the charts wait for this.
 */
export const chartsReady = new Promise((resolve) => {
  if (typeof window.uPlot === 'function') {
    resolve(true);
    return;
  }
  const tag = document.getElementById('uplot-script');
  if (!tag) {
    resolve(false);
    return;
  }
  tag.addEventListener('load', () => resolve(typeof window.uPlot === 'function'));
  tag.addEventListener('error', () => resolve(false));
});

export const PALETTE = ['#1f5fbf', '#c2410c', '#7c3aed', '#047857', '#b91c1c', '#0e7490', '#a16207', '#be185d'];

/**
 * Draw a time chart into `container`.
 * spec: {times: [ms], series: [{label, values, fmt}], yFmt, onPoint(idx, seriesIdx) → href,
 *        onZoom(fromMs, toMs), tableRows: () → [{t, cells: [text], href, linkText}] (called when the
 *        data table is opened), tableCount: its number of rows, ariaLabel}
 */
export function timeChart(container, spec) {
  if (typeof window.uPlot !== 'function') {
    message(container, 'error', 'The chart library is not installed (run make bootstrap to install node_modules).');
    return null;
  }
  const hasData = spec.series.some((s) => s.values.some((v) => v !== null && v !== undefined));
  if (!spec.times.length || !hasData) {
    message(container, 'empty', 'No runs in this window.');
    return null;
  }
  const plot = el('div', {class: 'plot', role: 'img', aria: {label: spec.ariaLabel}});
  const table = dataTable(spec);
  fill(container, 'ready', plot, table);

  const width = Math.max(260, container.clientWidth || 600);
  const data = [spec.times.map((t) => t / 1000), ...spec.series.map((s) => s.values)];
  let downX = null;
  const opts = {
    width,
    height: spec.height || 220,
    cursor: {drag: {x: true, y: false, setScale: false}, points: {size: 7}},
    select: {show: true},
    legend: {show: true, live: true},
    scales: {x: {time: true}},
    axes: [
      {stroke: '#333', grid: {stroke: '#e5e7eb'}},
      {stroke: '#333', grid: {stroke: '#e5e7eb'}, size: 64, values: (u, vals) => vals.map((v) => spec.yFmt(v))},
    ],
    series: [
      {label: 'time (UTC)', value: (u, v) => (v === null ? '—' : fmtTime(v * 1000))},
      ...spec.series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: 1.75,
        spanGaps: false,
        points: {show: spec.times.length < 60},
        value: (u, v) => (v === null || v === undefined ? '—' : (s.fmt || spec.yFmt)(v)),
      })),
    ],
    hooks: {
      setSelect: [
        (u) => {
          if (u.select.width >= 4 && spec.onZoom) {
            const a = u.posToVal(u.select.left, 'x');
            const b = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
            spec.onZoom(Math.floor(a * 1000), Math.ceil(b * 1000));
          }
        },
      ],
      draw: [() => { container.dataset.drawn = '1'; }],
    },
  };
  const u = new window.uPlot(opts, data, plot);
  u.over.addEventListener('mousedown', (e) => { downX = e.clientX; });
  u.over.addEventListener('click', (e) => {
    if (downX === null || Math.abs(e.clientX - downX) > 3) return;
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || !spec.onPoint) return;
    const href = spec.onPoint(idx, nearestSeries(u, idx, spec.series));
    if (href) location.assign(href);
  });
  u.over.title = 'Click a point for its runs; drag to zoom';
  const ro = new ResizeObserver(() => {
    const w = Math.max(260, container.clientWidth);
    if (Math.abs(w - u.width) > 4) u.setSize({width: w, height: u.height});
  });
  ro.observe(container);
  container.uplot = u;
  return u;
}

function nearestSeries(u, idx, series) {
  let best = 0;
  let bestD = Infinity;
  series.forEach((s, i) => {
    const v = s.values[idx];
    if (v === null || v === undefined) return;
    const d = Math.abs(u.valToPos(v, 'y') - u.cursor.top);
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

// The data table is built when first opened: three charts of a hundred rows each, which most readers
// never open, were a third of the page's elements.
function dataTable(spec) {
  const box = el('div', {class: 'scroll'});
  const details = el('details', {class: 'data-table'},
    el('summary', {text: `Data table (${spec.tableCount} points with runs; links open the runs behind each)`}), box);
  details.addEventListener('toggle', () => {
    if (details.open && !box.firstChild) box.append(tableOf(spec));
  });
  return details;
}

function tableOf(spec) {
  const head = el('tr', {}, el('th', {scope: 'col', text: 'Time (UTC)'}),
    ...spec.series.map((s) => el('th', {scope: 'col', text: s.label})), el('th', {scope: 'col', text: 'Runs'}));
  const body = spec.tableRows().map((r) => el('tr', {},
    el('td', {text: fmtTime(r.t)}),
    ...r.cells.map((c) => el('td', {text: c})),
    el('td', {}, r.href ? el('a', {href: r.href, text: r.linkText}) : r.linkText)));
  return el('table', {}, el('thead', {}, head), el('tbody', {}, body));
}

/** A tiny bar sparkline of counts (a cluster's trend), as divs sized through the CSSOM. */
export function sparkline(counts, label) {
  const max = Math.max(1, ...counts);
  const box = el('span', {class: 'spark', role: 'img', aria: {label}});
  for (const c of counts) {
    const bar = el('span', {class: c ? 'bar' : 'bar zero'});
    bar.style.height = `${Math.max(c ? 8 : 2, Math.round((c / max) * 100))}%`;
    box.append(bar);
  }
  return box;
}

// Shared helpers of the web UI pages: DOM building (text only), API calls, the URL state, formats.
//
// Every value from the API is untrusted text (model, tool, scenario, tags, error messages): it
// reaches the DOM only through textContent / attribute setters, never through innerHTML, and a
// link is made only from a URL that safeHref() accepts (same-origin paths, or http/https).
'use strict';

export const DIMENSIONS = ['project', 'model', 'tool', 'scenario'];

/** el('a', {href, class, testid, text, aria: {label}}, ...children) — children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.className = v;
    else if (k === 'testid') node.dataset.testid = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'aria') for (const [a, av] of Object.entries(v)) node.setAttribute(`aria-${a}`, String(av));
    else if (k === 'href') {
      const safe = safeHref(v);
      if (safe) node.setAttribute('href', safe);
    } else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A link target, or null: same-origin paths ("/runs?…"), or absolute http(s) URLs. Never javascript:. */
export function safeHref(url) {
  if (typeof url !== 'string' || url === '') return null;
  if (url.startsWith('/') && !url.startsWith('//')) return url;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** Replace a container's content and record its state (loading, ready, empty, error) for tests and styling. */
export function fill(container, state, ...nodes) {
  container.replaceChildren(...nodes.flat().filter(Boolean));
  container.dataset.state = state;
}

export function message(container, state, text) {
  fill(container, state, el('p', {class: state === 'error' ? 'error' : 'muted', role: state === 'error' ? 'alert' : null, text}));
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.prunedBefore = body && body.pruned_before;  // a run past retention (hypermind-obs prune)
  }
}

// -- the read token ---------------------------------------------------------------------------
// With tokens configured the server marks its pages <body data-auth="token"> and its API answers
// 401 without "Authorization: Bearer <token>". The page asks for a read token once per tab, keeps
// it in sessionStorage (this tab only, gone when it closes; never in a URL, a cookie or the
// history) and sends it as that header with every API call below.
const TOKEN_KEY = 'hypermind-obs.read-token';
// A bearer token as HTTP carries it: visible ASCII, no spaces (the server refuses padded tokens).
const TOKEN_RE = /^[\x21-\x7e]+$/;
let tokenRefused = false;

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function tokenRequired() {
  return document.body.dataset.auth === 'token';
}

/** Show the "token required" form: state "required" (none given) or "refused" (the server said 401). */
export function askForToken(state) {
  const box = document.getElementById('auth');
  if (!box) return;
  document.body.dataset.authState = state;
  const msg = document.getElementById('auth-message');
  msg.textContent = state === 'refused'
    ? 'The server refused this token (401). Enter a valid read token.'
    : 'This server asks for a bearer token on its API. Enter a read token (the server\'s ' +
      'HYPERMIND_READ_TOKEN, or its admin or API token).';
  if (box.hidden) {
    box.hidden = false;
    document.getElementById('auth-token').focus();
  }
}

function initToken() {
  const form = document.getElementById('auth-form');
  const forget = document.getElementById('auth-forget');
  if (forget) {
    forget.hidden = !storedToken();
    forget.addEventListener('click', () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // storage unavailable: nothing was kept
      }
      location.reload();
    });
  }
  if (!form) return;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = document.getElementById('auth-token').value.trim();
    if (!TOKEN_RE.test(token)) {
      document.getElementById('auth-message').textContent = 'A token is printable ASCII without spaces.';
      return;
    }
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      document.getElementById('auth-message').textContent = 'This browser keeps no session storage: the token cannot be kept.';
      return;
    }
    location.reload();
  });
  if (tokenRequired() && !storedToken()) askForToken('required');
}

initToken();

/** GET a JSON API path with query parameters (a URLSearchParams or a plain object), with the read token. */
export async function api(path, params) {
  const token = storedToken();
  if (tokenRequired() && (!token || tokenRefused)) {
    // No request without a token the server would accept: it could only answer 401.
    throw new ApiError(401, {error: token ? 'the read token was refused: enter another one above'
      : 'a read token is required: enter it above', field: 'Authorization'});
  }
  const headers = {Accept: 'application/json'};
  if (token) headers.Authorization = `Bearer ${token}`;
  const qs = params ? new URLSearchParams(params).toString() : '';
  const resp = await fetch(qs ? `${path}?${qs}` : path, {headers, credentials: 'same-origin'});
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (resp.status === 401) {
    tokenRefused = Boolean(token);
    askForToken(token ? 'refused' : 'required');
    throw new ApiError(401, {error: token ? 'the read token was refused: enter another one above'
      : 'a read token is required: enter it above', field: 'Authorization'});
  }
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

/** An API runs_url ("/api/v1/runs?q") as the page that lists the same runs ("/runs?q"). */
export function runsPage(runsUrl, extra) {
  if (typeof runsUrl !== 'string') return null;
  let url = runsUrl;
  if (url.startsWith('/api/v1/runs')) url = '/runs' + url.slice('/api/v1/runs'.length);
  else {
    try {
      const u = new URL(url, location.origin);
      if (u.origin !== location.origin) return safeHref(url);
      url = u.pathname.replace(/^\/api\/v1\/runs/, '/runs') + u.search;
    } catch {
      return null;
    }
  }
  if (extra) {
    const [path, query = ''] = url.split('?');
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    url = `${path}?${q.toString()}`;
  }
  return safeHref(url);
}

export function runPage(runId) {
  return `/runs/${encodeURIComponent(runId)}`;
}

// -- time ---------------------------------------------------------------------------------
const UNIT_MS = {ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3};

/** RFC 3339, epoch ms (digits), or now / now-6h → epoch ms (relative to nowMs). null when unparseable. */
export function parseTime(value, nowMs) {
  if (value === null || value === undefined || value === '') return null;
  const v = String(value).trim();
  const m = /^now(?:\s*-\s*(\d+)\s*(ms|s|m|h|d|w))?$/.exec(v);
  if (m) return m[1] ? nowMs - Number(m[1]) * UNIT_MS[m[2]] : nowMs;
  if (/^\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    // Same magnitude rule as the API: s, ms, µs, ns.
    if (n < 1e11) return n * 1e3;
    if (n < 1e14) return n;
    if (n < 1e17) return n / 1e3;
    return n / 1e6;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/**
 * The absolute window [fromMs, toMs) for the URL's from/to. Relative ends are pinned once per
 * load to the next whole minute, so every API call of a view covers exactly the same runs.
 */
export function resolveWindow(from, to, nowMs = Date.now()) {
  const pinned = Math.ceil(nowMs / 60000) * 60000;
  const toMs = to ? parseTime(to, pinned) : pinned;
  const fromMs = from ? parseTime(from, pinned) : toMs - 86400e3;
  return {fromMs: Math.round(fromMs), toMs: Math.round(toMs)};
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC').replace(/\.\d+Z$/, ' UTC');
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  const h = ms / 3600e3;
  if (h >= 48) return `${Math.round(h / 24)} d`;
  if (h >= 1) return `${+h.toFixed(1)} h`;
  return `${Math.round(ms / 60e3)} min`;
}

// -- numbers ------------------------------------------------------------------------------
// One formatter for every integer: toLocaleString builds one per call (a tenth of the page's script time).
const INT = new Intl.NumberFormat('en-US', {maximumFractionDigits: 0});

export function fmtInt(n) {
  return n === null || n === undefined ? '—' : INT.format(Math.round(n));
}

export function fmtPct(r, digits = 1) {
  return r === null || r === undefined ? '—' : `${(r * 100).toFixed(digits)} %`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

export function fmtNum(n, digits = 2) {
  if (n === null || n === undefined) return '—';
  return Math.abs(n) >= 1000 ? fmtInt(n) : (+n.toFixed(digits)).toString();
}

export function fmtSci(p) {
  if (p === null || p === undefined) return '—';
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

// -- URL state (the same query parameters as the API) ----------------------------------------
/** The page's filters from its query string: {dims: {project: [..]}, tags: [[key, [values]]], from, to, other}. */
export function readState(search = location.search) {
  const q = new URLSearchParams(search);
  const dims = {};
  for (const d of DIMENSIONS) dims[d] = splitValues(q.getAll(d));
  const tags = [];
  for (const key of new Set([...q.keys()].filter((k) => k.startsWith('tag.')))) {
    const values = splitValues(q.getAll(key));
    if (values.length) tags.push([key.slice(4), values]);
  }
  tags.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const other = {};
  for (const [k, v] of q.entries()) {
    if (!DIMENSIONS.includes(k) && !k.startsWith('tag.') && k !== 'from' && k !== 'to') other[k] = v;
  }
  return {dims, tags, from: q.get('from'), to: q.get('to'), other};
}

function splitValues(list) {
  const out = [];
  for (const item of list) for (const v of item.split(',')) if (v.trim() && !out.includes(v.trim())) out.push(v.trim());
  return out;
}

/** The API filter parameters of a state (dimensions, tags) plus an absolute window in epoch ms. */
export function filterParams(state, win) {
  const p = new URLSearchParams();
  for (const d of DIMENSIONS) if (state.dims[d].length) p.set(d, state.dims[d].join(','));
  for (const [k, values] of state.tags) p.set(`tag.${k}`, values.join(','));
  if (win) {
    p.set('from', String(win.fromMs));
    p.set('to', String(win.toMs));
  }
  return p;
}

/** The page query string of a state (relative times kept relative, so a shared link stays "last 24 h"). */
export function stateQuery(state) {
  const p = filterParams(state, null);
  if (state.from) p.set('from', state.from);
  if (state.to) p.set('to', state.to);
  for (const [k, v] of Object.entries(state.other)) if (v !== null && v !== undefined && v !== '') p.set(k, v);
  return p.toString();
}

export function withParams(params, extra) {
  const p = new URLSearchParams(params);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

/** A small visually hidden text for screen readers. */
export function srOnly(text) {
  return el('span', {class: 'visually-hidden', text});
}

// restop's operator console: one page over the /v1 API.
//
// Plain DOM, no framework, no build step. Every element is made with createElement and
// filled with textContent, and styled by classes from console.css: the page's
// Content-Security-Policy allows no inline script or style. The API token lives only in
// this tab's sessionStorage and travels only in the Authorization header.

const TOKEN_KEY = 'restop.api-token';
const REFRESH_MS = 5000;
const PAGE_SIZE = 25;

const STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'];
const OUTCOMES = ['stopped', 'already_stopped', 'gone', 'not_protected', 'not_stoppable',
  'dry_run', 'timeout', 'access_denied', 'cancelled', 'unsupported', 'expired',
  'superseded', 'error', 'held'];
const TRIGGERS = ['sns', 'manual', 'catchup'];
const MESSAGE_TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'];
const DISPOSITIONS = ['accepted', 'ignored', 'wakeup', 'confirming', 'confirmed',
  'confirmation_failed', 'pending_confirmation', 'unsubscribed'];
const SUBSCRIPTION_STATUSES = ['pending_confirmation', 'confirmed', 'confirmation_failed',
  'unsubscribed'];
const REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'ca-central-1',
  'eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-central-1', 'eu-central-2', 'eu-north-1',
  'eu-south-1', 'eu-south-2', 'ap-south-1', 'ap-southeast-1', 'ap-southeast-2',
  'ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3', 'sa-east-1', 'me-south-1',
  'af-south-1'];

// Each navigation starts a new generation; answers for an older one are dropped.
const state = {
  generation: 0,
  refresh: null,
  refreshing: false,
  flash: null,
  // The filter control to focus again once its change has re-rendered the view.
  refocus: null,
};

// ---- DOM -------------------------------------------------------------------------------

/** An element: `class`, `text`, `on<event>` and the properties `value`/`checked` are
 *  special; every other key becomes an attribute (`true` as an empty one). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'value' || key === 'checked') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let ids = 0;
function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

const words = (value) => String(value).replaceAll('_', ' ');

// ---- time ------------------------------------------------------------------------------

const LOCAL = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric',
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const LOCAL_TIME = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit',
});

function utc(date) {
  return `${date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '')} UTC`;
}

/** A time in the browser's zone, with UTC on hover. */
function when(iso, format = LOCAL) {
  if (!iso) return h('span', { class: 'muted', text: '—' });
  const date = new Date(iso);
  return h('time', { datetime: iso, title: utc(date), text: format.format(date) });
}

function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function duration(e) {
  const start = Date.parse(e.started_at || e.created_at);
  if (e.finished_at) return span(Date.parse(e.finished_at) - start);
  return `${span(Date.now() - start)} so far`;
}

/** `datetime-local` input value (local wall time) from an RFC 3339 instant, and back. */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// ---- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A same-origin request to restop. A 401 ends the session and shows the sign-in. */
async function api(path, { method = 'GET', body, bearer = token() } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (error) {
    throw new ApiError(0, 'unreachable', `restop did not answer (${error.message}).`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  const code = data?.error?.code ?? `http_${response.status}`;
  const message = data?.error?.message ?? `restop answered ${response.status}.`;
  const error = new ApiError(response.status, code, message, data);
  if (response.status === 401 && bearer === token()) {
    signOut({ kind: 'error', text: 'restop refused the token (401). Sign in again.' });
  }
  throw error;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
  const text = q.toString();
  return text ? `?${text}` : '';
}

// ---- routing -------------------------------------------------------------------------------

function currentRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search) };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

const VIEWS = {
  executions: (main, parts, params) => (parts[1] ? executionView(main, parts[1]) : executionsView(main, params)),
  trigger: (main) => triggerView(main),
  messages: (main, parts, params) => (parts[1] ? messageView(main, parts[1]) : messagesView(main, params)),
  subscriptions: (main, parts, params) => subscriptionsView(main, params),
};

function route() {
  state.generation += 1;
  state.refresh = null;
  const main = document.getElementById('main');
  main.replaceChildren();
  if (!token()) {
    showChrome(false);
    signInView(main, state.flash);
    state.flash = null;
    return;
  }
  showChrome(true);
  const { parts, params } = currentRoute();
  const name = VIEWS[parts[0]] ? parts[0] : 'executions';
  for (const link of document.querySelectorAll('nav.views a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (state.flash) {
    main.append(h('p', { class: `notice ${state.flash.kind}`, role: 'status', text: state.flash.text }));
    state.flash = null;
  }
  VIEWS[name](main, parts, params);
}

function showChrome(signedIn) {
  document.querySelector('nav.views').hidden = !signedIn;
  document.querySelector('button.sign-out').hidden = !signedIn;
}

/** Moves focus to a new view's heading, for keyboard and screen reader users; after a
 *  filter change, back to that filter. */
function focusHeading(main) {
  const filter = state.refocus && main.querySelector(`form.filters [name="${state.refocus}"]`);
  state.refocus = null;
  if (filter) {
    filter.focus();
    return;
  }
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** Forgets the token and shows the sign-in; the view in the URL comes back after it. */
function signOut(flash) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.flash = flash;
  route();
}

/** Runs `load` for the current generation only; shows its error in `where`. */
async function guarded(where, load) {
  const generation = state.generation;
  try {
    await load(() => generation === state.generation);
  } catch (error) {
    if (generation !== state.generation || error.status === 401) return;
    where.replaceChildren(errorBox(error));
  }
}

function errorBox(error) {
  return h('p', { class: 'notice error', role: 'alert' },
    h('strong', { text: error.code ? `${words(error.code)}: ` : 'Error: ' }),
    error.message);
}

// ---- sign-in -------------------------------------------------------------------------------

function signInView(main, flash) {
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'token-help',
  });
  const problem = h('p', { class: 'form-error', role: 'alert', id: 'sign-in-error' });
  const notice = flash?.kind === 'error' ? null : flash;
  if (flash?.kind === 'error') problem.textContent = flash.text;
  const button = h('button', { type: 'submit', text: 'Sign in' });
  const form = h('form', { class: 'sign-in card', novalidate: true },
    h('h1', { text: 'Sign in to restop' }),
    notice ? h('p', { class: `notice ${notice.kind}`, role: 'status', text: notice.text }) : null,
    h('label', { for: 'token', text: 'API token' }),
    input,
    h('p', { id: 'token-help', class: 'help', text: 'One of the tokens in RESTOP_API_TOKENS. It stays in this browser tab only, and is sent to restop as a bearer header.' }),
    button,
    problem);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const candidate = input.value.trim();
    if (!candidate) {
      problem.textContent = 'Paste an API token first.';
      input.focus();
      return;
    }
    button.disabled = true;
    problem.textContent = '';
    try {
      await api('/v1/summary', { bearer: candidate });
      sessionStorage.setItem(TOKEN_KEY, candidate);
      input.value = '';
      route();
      focusHeading(document.getElementById('main'));
    } catch (error) {
      problem.textContent = error.status === 401
        ? 'restop refused this token. Check it and try again.'
        : error.message;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  input.focus();
}

// ---- shared pieces ---------------------------------------------------------------------------

function badge(kind, value) {
  if (!value) return null;
  return h('span', { class: `badge ${kind}-${value}`, text: words(value) });
}

/** Status, then the outcome (or the phase while active); a badge that would only repeat
 *  another is left out. */
function statusBadges(e) {
  let detail = h('span', { class: 'phase', text: words(e.phase) });
  if (e.outcome) detail = e.outcome === e.status ? null : badge('outcome', e.outcome);
  const flag = e.dry_run && e.outcome !== 'dry_run' ? h('span', { class: 'badge flag', text: 'dry run' }) : null;
  return h('span', { class: 'badges' }, badge('status', e.status), detail, flag);
}

function select(label, name, values, current, { any = 'Any' } = {}) {
  const id = uid(name);
  const el = h('select', { id, name },
    h('option', { value: '', text: any }),
    values.map((v) => h('option', { value: v, text: words(v) })));
  el.value = values.includes(current) ? current : '';
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), el);
}

function textField(label, name, value, props = {}) {
  const id = uid(name);
  return h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    h('input', { id, name, type: 'text', value: value || '', ...props }));
}

function timeField(label, name, iso) {
  const id = uid(name);
  return h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    h('input', { id, name, type: 'datetime-local', value: iso ? toLocalInput(iso) : '' }));
}

/** A filter form whose values live in the URL's hash: selects apply at once, text on Enter. */
function filterForm(view, fields, params) {
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filters' },
    fields,
    h('div', { class: 'field actions' },
      h('button', { type: 'submit', text: 'Apply' }),
      h('button', { type: 'button', class: 'secondary', text: 'Clear', onclick: () => go(`#/${view}`) })));
  const apply = () => {
    const next = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      next[el.name] = el.type === 'datetime-local' ? fromLocalInput(el.value) : el.value.trim();
    }
    go(`#/${view}${query(next)}`);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  form.addEventListener('change', (event) => {
    if (event.target.tagName !== 'SELECT') return;
    state.refocus = event.target.name;
    apply();
  });
  return form;
}

/** A table that becomes a list of cards on narrow screens (labels from data-label). */
function table(caption, columns, rows, kind = '') {
  return h('table', { class: kind ? `list ${kind}` : 'list' },
    h('caption', { class: 'visually-hidden', text: caption }),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c })))),
    h('tbody', {}, rows.map((cells) => h('tr', {},
      cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell))))));
}

/** Keyset paging: the cursors of the pages seen so far, for "Newer". */
function pager(pages, nextCursor, onMove) {
  const index = pages.length - 1;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', {
      type: 'button', class: 'secondary', text: '← Newer', disabled: index === 0,
      onclick: () => { pages.pop(); onMove(); },
    }),
    h('span', { class: 'muted', text: `Page ${index + 1}` }),
    h('button', {
      type: 'button', class: 'secondary', text: 'Older →', disabled: !nextCursor,
      onclick: () => { pages.push(nextCursor); onMove(); },
    }));
}

function field(name, value) {
  return [h('dt', { text: name }), h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted', text: '—' }) : value)];
}

// How a run started: the RDS event behind it, if any (SNS delivered it, or restop found it
// in RDS's event log), else by hand.
function triggerLabel(e) {
  const source = { sns: 'SNS', catchup: 'catch-up', manual: 'manual' }[e.trigger] || e.trigger;
  return e.event_id ? `${source} ${e.event_id}` : source;
}

function resourceCell(e) {
  return h('div', { class: 'resource' },
    h('a', { href: `#/executions/${encodeURIComponent(e.id)}`, text: e.resource_id }),
    h('span', { class: 'muted small', text: `${e.resource_type} · ${e.region}` }));
}

// ---- summary -----------------------------------------------------------------------------------

// Databases whose newest `held` run's hold has not ended yet: the engine writes the reason
// as "held until <RFC 3339 time> (tag ...)".
function heldDatabases(executions, now = Date.now()) {
  const seen = new Set();
  const held = [];
  for (const e of executions) {
    if (seen.has(e.resource_arn)) continue;
    seen.add(e.resource_arn);
    const until = /^held until (\S+)/.exec(e.reason || '');
    if (until && Date.parse(until[1]) > now) held.push({ execution: e, until: until[1] });
  }
  return held;
}

function summarySection(summary, held = []) {
  const cards = summary.windows.map((w) => {
    const s = w.by_status;
    const outcomes = OUTCOMES.filter((o) => w.by_outcome[o] > 0);
    return h('section', { class: 'card stat', 'aria-labelledby': `window-${w.days}` },
      h('h2', { id: `window-${w.days}`, text: `Last ${w.days} days` }),
      h('p', { class: 'big', text: `${w.total} ${w.total === 1 ? 'run' : 'runs'}` }),
      h('p', { class: 'small' }, statusLine(s)),
      outcomes.length
        ? h('ul', { class: 'chips', 'aria-label': `Outcomes, last ${w.days} days` },
          outcomes.map((o) => h('li', {},
            h('a', { class: `badge outcome-${o}`, href: `#/executions${query({ outcome: o, since: w.since })}`, text: `${w.by_outcome[o]} ${words(o)}` }))))
        : null);
  });
  const active = h('section', { class: 'card stat active', 'aria-labelledby': 'active-now' },
    h('h2', { id: 'active-now', text: 'Active now' }),
    h('p', { class: 'big', text: String(summary.active) }),
    summary.active > 0
      ? h('p', { class: 'small' }, h('a', { href: '#/executions?status=running', text: 'Show running' }), ' · ', h('a', { href: '#/executions?status=pending', text: 'pending' }))
      : h('p', { class: 'small muted', text: 'Nothing is running.' }));
  const failures = summary.attention;
  const attention = h('section', { class: `card stat attention${failures.length ? ' alarm' : ''}`, 'aria-labelledby': 'attention' },
    h('h2', { id: 'attention', text: 'Needs attention' }),
    failures.length === 0
      ? h('p', { class: 'small ok', text: 'No run failed in the last 7 days.' })
      : [h('ul', { class: 'failures' }, failures.map((e) => h('li', {},
        h('a', { href: `#/executions/${encodeURIComponent(e.id)}`, text: e.resource_id }),
        ' ', badge('outcome', e.outcome), ' ', when(e.finished_at || e.created_at),
        e.reason ? h('span', { class: 'reason small', text: e.reason }) : null))),
      h('p', { class: 'small' }, h('a', { href: `#/executions${query({ status: 'failed', since: summary.windows[0].since })}`, text: 'All failures of the last 7 days' }))]);
  const holds = h('section', { class: 'card stat held', 'aria-labelledby': 'held-now' },
    h('h2', { id: 'held-now', text: 'Held' }),
    held.length === 0
      ? h('p', { class: 'small muted', text: 'No database is held.' })
      : h('ul', { class: 'failures', 'aria-label': 'Held databases' }, held.map(({ execution: e, until }) => h('li', {},
        h('a', { href: `#/executions/${encodeURIComponent(e.id)}`, text: e.resource_id }),
        ' ', badge('outcome', e.outcome), ' until ', when(until)))));
  return h('div', { class: 'summary', role: 'region', 'aria-label': 'Summary' }, cards, active, attention, holds);
}

// ---- savings -------------------------------------------------------------------------------------

/** An estimate from /v1/savings: the amount, or "no estimate"; its basis on hover. */
function cost(estimate) {
  if (estimate.amount === null) return h('span', { class: 'muted', title: estimate.basis, text: 'no estimate' });
  const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: estimate.currency });
  return h('span', { title: estimate.basis, text: money.format(estimate.amount) });
}

/** What an instance class cell says: the class, a cluster's members, or nothing known. */
function sizeText(d) {
  if (d.instance_class) return d.instance_class;
  if (d.instance_count !== null) return `${d.instance_count} ${d.instance_count === 1 ? 'instance' : 'instances'}`;
  return '—';
}

/** /v1/savings' default window: what restop kept from running, summed and per database. */
function savingsSection(savings) {
  const t = savings.totals;
  const days = Math.round((Date.parse(savings.until) - Date.parse(savings.since)) / 86400000);
  const total = (label, value, note) => h('div', { class: 'total' },
    h('p', { class: 'small muted', text: label }),
    h('p', { class: 'big' }, value),
    note ? h('p', { class: 'small muted', text: note }) : null);
  return h('section', { class: 'card savings', 'aria-labelledby': 'savings' },
    h('h2', { id: 'savings', text: `Savings, last ${days} days` }),
    h('div', { class: 'totals' },
      total('Kept stopped', span(t.held_stopped_seconds * 1000), 'from each stop until the database ran again'),
      total('Cost avoided', cost(t.estimated_cost_avoided), 'at the On-Demand prices of RESTOP_PRICES'),
      total('Forced starts', String(t.forced_starts), `all runs: ${t.stopped} stopped · ${t.held} held`),
      total('Forced starts still ran', span(t.running_seconds * 1000), 'at least 10 min each, as RDS bills')),
    h('p', { class: 'small muted basis', text: t.estimated_cost_avoided.basis }),
    savings.databases.length === 0
      ? h('p', { class: 'small muted', text: `restop stopped no database in the last ${days} days.` })
      : table('Savings by database', ['Database', 'Size', 'Forced starts', 'Stopped', 'Held', 'Still ran', 'Kept stopped', 'Cost avoided'],
        savings.databases.map((d) => [
          h('div', { class: 'resource' },
            h('a', { href: `#/executions${query({ resource: d.resource_arn })}`, text: d.resource_id }),
            h('span', { class: 'muted small', text: `${d.resource_type} · ${d.region}` })),
          sizeText(d),
          String(d.forced_starts),
          String(d.stopped),
          String(d.held),
          span(d.running_seconds * 1000),
          span(d.held_stopped_seconds * 1000),
          cost(d.estimated_cost_avoided),
        ]), 'savings'));
}

/** "4 succeeded · 1 failed · 1 active": the statuses that occurred, in a fixed order. */
function statusLine(s) {
  const parts = [['succeeded', s.succeeded], ['failed', s.failed], ['skipped', s.skipped],
    ['cancelled', s.cancelled], ['active', s.pending + s.running]];
  const present = parts.filter(([, n]) => n > 0).map(([name, n]) => h('span', { class: 'nowrap', text: `${n} ${name}` }));
  if (present.length === 0) return 'No runs.';
  return present.flatMap((part, i) => (i === 0 ? [part] : [' · ', part]));
}

// ---- executions ----------------------------------------------------------------------------------

function executionsView(main, params) {
  const filters = {
    status: params.get('status') || '',
    outcome: params.get('outcome') || '',
    trigger: params.get('trigger') || '',
    resource: params.get('resource') || '',
    since: params.get('since') || '',
    until: params.get('until') || '',
  };
  const summaryBox = h('div', { class: 'summary-box' });
  const savingsBox = h('div', { class: 'savings-box' });
  const listBox = h('div', { class: 'list-box', 'aria-live': 'polite', 'aria-busy': 'true' });
  const updated = h('p', { class: 'updated muted small' });
  main.append(
    h('div', { class: 'view-head' },
      h('h1', { text: 'Executions' }),
      h('a', { class: 'button', href: '#/trigger', text: 'Start a run' })),
    summaryBox,
    savingsBox,
    filterForm('executions', [
      select('Status', 'status', STATUSES, filters.status),
      select('Outcome', 'outcome', OUTCOMES, filters.outcome),
      select('Trigger', 'trigger', TRIGGERS, filters.trigger),
      textField('Resource', 'resource', filters.resource, { placeholder: 'identifier or ARN' }),
      timeField('From', 'since', filters.since),
      timeField('To', 'until', filters.until),
    ], params),
    listBox,
    updated);

  const pages = [null];
  let shownSummary = '';
  let shownSavings = '';
  let shownList = '';
  const load = () => guarded(listBox, async (current) => {
    const [summary, page, heldRuns, savings] = await Promise.all([
      api('/v1/summary'),
      api(`/v1/executions${query({ ...filters, limit: String(PAGE_SIZE), cursor: pages[pages.length - 1] })}`),
      api(`/v1/executions${query({ outcome: 'held', limit: '100' })}`),
      api('/v1/savings'),
    ]);
    const held = heldDatabases(heldRuns.items);
    if (!current()) return;
    // Re-render only what changed, so a refresh does not move focus or scroll.
    const summaryKey = JSON.stringify({ ...summary, generated_at: null, windows: summary.windows.map((w) => ({ ...w, since: null })), held });
    if (summaryKey !== shownSummary) {
      shownSummary = summaryKey;
      summaryBox.replaceChildren(summarySection(summary, held));
    }
    // The times held stopped grow by the second: replaced only when the text it shows
    // changed (its links and hover titles follow from the same rows).
    const fresh = savingsSection(savings);
    if (fresh.textContent !== shownSavings) {
      shownSavings = fresh.textContent;
      savingsBox.replaceChildren(fresh);
    }
    const listKey = JSON.stringify(page) + pages.length;
    if (listKey !== shownList) {
      shownList = listKey;
      listBox.replaceChildren(
        page.items.length === 0
          ? h('p', { class: 'empty', text: 'No executions match these filters.' })
          : table('Executions, newest first', ['Resource', 'Trigger', 'Status', 'Started', 'Duration'],
            page.items.map((e) => [
              resourceCell(e),
              h('span', { text: triggerLabel(e) }),
              statusBadges(e),
              when(e.started_at || e.created_at),
              h('span', { text: duration(e) }),
            ])),
        pager(pages, page.next_cursor, () => { shownList = ''; load(); }));
    }
    listBox.setAttribute('aria-busy', 'false');
    updated.textContent = `Updated ${LOCAL_TIME.format(new Date())}; refreshes every ${REFRESH_MS / 1000} s.`;
  });
  state.refresh = load;
  load();
  focusHeading(main);
}

function executionView(main, id) {
  const box = h('div', { class: 'detail', 'aria-busy': 'true' });
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/executions', text: '← Executions' })), box);
  let shown = '';
  let first = true;
  const load = () => guarded(box, async (current) => {
    const e = await api(`/v1/executions/${encodeURIComponent(id)}`);
    if (!current()) return;
    const key = JSON.stringify(e);
    if (key !== shown) {
      shown = key;
      box.replaceChildren(...executionDetail(e, load));
      box.setAttribute('aria-busy', 'false');
    }
    if (first) {
      first = false;
      focusHeading(main);
    }
    // Only an active execution changes: stop refreshing once it has ended.
    state.refresh = STATUSES.slice(0, 2).includes(e.status) ? load : null;
  });
  load();
}

function executionDetail(e, reload) {
  const active = e.status === 'pending' || e.status === 'running';
  const parts = [
    h('div', { class: 'view-head' },
      h('h1', {}, h('span', { text: e.resource_id }), ' ', statusBadges(e)),
      active ? cancelButton(e, reload) : null),
    e.reason ? h('p', { class: `reason-line${e.status === 'failed' ? ' error' : ''}`, text: e.reason }) : null,
    h('section', { 'aria-labelledby': 'steps-title' },
      h('h2', { id: 'steps-title', text: 'Steps' }),
      e.steps.length === 0
        ? h('p', { class: 'empty', text: active ? 'No step yet: a worker picks it up shortly.' : 'No steps were recorded.' })
        : h('ol', { class: 'timeline' }, e.steps.map(stepItem))),
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'fields-title' },
        h('h2', { id: 'fields-title', text: 'Execution' }),
        h('dl', { class: 'fields' },
          field('ID', h('code', { text: e.id })),
          field('Resource', h('code', { class: 'wrap', text: e.resource_arn })),
          field('Type', e.resource_type),
          field('Region', e.region),
          field('Account', e.account_id),
          field('Trigger', e.trigger),
          field('Event', e.event_id),
          field('SNS message', e.message_id ? h('a', { href: `#/messages/${encodeURIComponent(e.message_id)}`, text: e.message_id }) : null),
          field('Mode', words(e.mode)),
          field('Dry run', e.dry_run ? 'yes' : 'no'),
          field('Tag check', e.skip_tag_check ? 'skipped by request' : 'yes'),
          field('Status', badge('status', e.status)),
          field('Outcome', badge('outcome', e.outcome)),
          field('Phase', words(e.phase)),
          field('Reason', e.reason),
          field('State machine run', e.sfn_execution_arn ? h('code', { class: 'wrap', text: e.sfn_execution_arn }) : null),
          field('Created', when(e.created_at)),
          field('Started', when(e.started_at)),
          field('Finished', when(e.finished_at)),
          field('Duration', duration(e)),
          field('Updated', when(e.updated_at)),
          field('Deadline', when(e.deadline_at)),
          field('Next look', when(e.next_run_at)))),
      h('section', { 'aria-labelledby': 'notification-title' },
        h('h2', { id: 'notification-title', text: 'Notification' }),
        h('dl', { class: 'fields' },
          field('State', e.notification.state ? badge('notify', e.notification.state) : 'none (not configured or not due)'),
          field('Attempts', String(e.notification.attempts)),
          field('Last error', e.notification.error)))),
  ];
  return parts.filter(Boolean);
}

function stepItem(s) {
  return h('li', { class: `step${s.error ? ' failed' : ''}` },
    h('div', { class: 'step-time' },
      when(s.at),
      s.repeats > 1 ? h('span', { class: 'small muted' }, ' to ', when(s.last_at, LOCAL_TIME)) : null),
    h('div', { class: 'step-body' },
      h('span', { class: 'phase-name', text: words(s.step) }),
      s.rds_status ? h('span', { class: 'observed' }, 'RDS: ', h('strong', { text: s.rds_status })) : null,
      h('span', { class: 'action', text: s.action }),
      s.repeats > 1 ? h('span', { class: 'badge repeats', title: `The same observation ${s.repeats} times in a row`, text: `× ${s.repeats}` }) : null,
      s.error ? h('p', { class: 'step-error', text: s.error }) : null));
}

function cancelButton(e, reload) {
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const confirmButton = h('button', { type: 'button', class: 'danger', text: 'Cancel run' });
  const keep = h('button', { type: 'button', class: 'secondary', text: 'Keep running' });
  const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text' },
    h('h2', { id: 'confirm-title', text: `Cancel the run for ${e.resource_id}?` }),
    h('p', { id: 'confirm-text', text: 'It ends as cancelled at once and its database is left as it is now. restop makes no further call to RDS for it; in Step Functions mode it stops the run\u2019s state machine execution (StopExecution).' }),
    problem,
    h('div', { class: 'buttons' }, keep, confirmButton));
  keep.addEventListener('click', () => dialog.close());
  confirmButton.addEventListener('click', async () => {
    confirmButton.disabled = true;
    try {
      await api(`/v1/executions/${encodeURIComponent(e.id)}/cancel`, { method: 'POST' });
      dialog.close();
      state.flash = { kind: 'success', text: `The run for ${e.resource_id} was cancelled.` };
      route();
    } catch (error) {
      problem.textContent = error.message;
      if (error.code === 'execution_finished') reload();
    } finally {
      confirmButton.disabled = false;
    }
  });
  const open = h('button', { type: 'button', class: 'danger', text: 'Cancel run…' });
  open.addEventListener('click', () => {
    problem.textContent = '';
    dialog.showModal();
    keep.focus();
  });
  return h('div', { class: 'cancel' }, open, dialog);
}

// ---- trigger -----------------------------------------------------------------------------------

function triggerView(main) {
  const by = (value, label, checked) => {
    const id = uid('by');
    return h('div', { class: 'choice' },
      h('input', { type: 'radio', name: 'by', id, value, checked }),
      h('label', { for: id, text: label }));
  };
  const arn = textField('Resource ARN', 'resource_arn', '', {
    placeholder: 'arn:aws:rds:us-east-1:123456789012:db:orders', autocomplete: 'off', spellcheck: 'false',
  });
  const identifier = textField('Identifier', 'identifier', '', { placeholder: 'orders', autocomplete: 'off', spellcheck: 'false' });
  const regionId = uid('region');
  const region = h('div', { class: 'field' },
    h('label', { for: regionId, text: 'Region' }),
    h('input', { id: regionId, name: 'region', type: 'text', list: 'regions', placeholder: 'us-east-1', autocomplete: 'off', spellcheck: 'false' }),
    h('datalist', { id: 'regions' }, REGIONS.map((r) => h('option', { value: r }))));
  const dryId = uid('dry');
  const skipId = uid('skip');
  const skipBox = h('input', { type: 'checkbox', id: skipId, name: 'skip_tag_check', 'aria-describedby': 'skip-warning' });
  const warning = h('div', { class: 'warning' },
    h('div', { class: 'choice' }, skipBox, h('label', { for: skipId, text: 'Skip the tag check' })),
    h('p', { id: 'skip-warning', class: 'small', text: 'Careful: restop then stops the database even when it does not carry the protection tag (auto-restart-protection=yes by default).' }));
  const problem = h('div', { class: 'form-error', role: 'alert', id: 'trigger-error' });
  const submit = h('button', { type: 'submit', text: 'Start run' });
  const form = h('form', { class: 'trigger card', novalidate: true, 'aria-labelledby': 'trigger-title' },
    h('fieldset', {},
      h('legend', { text: 'Name the database by' }),
      h('div', { class: 'choices' },
        by('arn', 'ARN', true),
        by('instance', 'DB instance identifier', false),
        by('cluster', 'DB cluster identifier', false))),
    arn,
    h('div', { class: 'pair' }, identifier, region),
    h('div', { class: 'choice' },
      h('input', { type: 'checkbox', id: dryId, name: 'dry_run' }),
      h('label', { for: dryId, text: 'Dry run: decide everything, never stop the database' })),
    warning,
    h('div', { class: 'buttons' }, submit),
    problem);
  const update = () => {
    const mode = form.elements.by.value;
    arn.hidden = mode !== 'arn';
    identifier.parentElement.hidden = mode === 'arn';
    warning.classList.toggle('armed', skipBox.checked);
    submit.textContent = skipBox.checked ? 'Start run without tag check' : 'Start run';
  };
  form.addEventListener('change', update);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = form.elements;
    const mode = f.by.value;
    const body = mode === 'arn'
      ? { resource_arn: f.resource_arn.value.trim() }
      : { [mode === 'instance' ? 'db_instance_identifier' : 'db_cluster_identifier']: f.identifier.value.trim(), region: f.region.value.trim() };
    if (f.dry_run.checked) body.dry_run = true;
    if (f.skip_tag_check.checked) body.skip_tag_check = true;
    submit.disabled = true;
    problem.replaceChildren();
    try {
      const created = await api('/v1/executions', { method: 'POST', body });
      state.flash = { kind: 'success', text: `Started a ${created.dry_run ? 'dry run' : 'run'} for ${created.resource_id}.` };
      go(`#/executions/${encodeURIComponent(created.id)}`);
    } catch (error) {
      if (error.status === 401) return;
      problem.append(h('strong', { text: `${error.status || ''} ${words(error.code)}: `.trimStart() }), error.message);
      const active = error.body?.error?.execution_id;
      if (active) problem.append(' ', h('a', { href: `#/executions/${encodeURIComponent(active)}`, text: 'Open the active run' }));
    } finally {
      submit.disabled = false;
    }
  });
  main.append(
    h('div', { class: 'view-head' }, h('h1', { id: 'trigger-title', text: 'Start a run' })),
    h('p', { class: 'lead', text: 'restop checks the protection tag, waits until the database is available, stops it and waits until it is stopped, just as for an RDS event.' }),
    form);
  update();
  focusHeading(main);
}

// ---- messages ----------------------------------------------------------------------------------

function messagesView(main, params) {
  const filters = {
    type: params.get('type') || '',
    disposition: params.get('disposition') || '',
    topic: params.get('topic') || '',
    resource: params.get('resource') || '',
    since: params.get('since') || '',
    until: params.get('until') || '',
  };
  const listBox = h('div', { class: 'list-box', 'aria-busy': 'true' });
  main.append(
    h('div', { class: 'view-head' }, h('h1', { text: 'Messages' })),
    h('p', { class: 'lead', text: 'What SNS delivered to restop, newest first. Tokens and subscribe URLs are never stored.' }),
    filterForm('messages', [
      select('Type', 'type', MESSAGE_TYPES, filters.type),
      select('Disposition', 'disposition', DISPOSITIONS, filters.disposition),
      textField('Topic', 'topic', filters.topic, { placeholder: 'topic ARN' }),
      textField('Resource', 'resource', filters.resource, { placeholder: 'identifier or ARN' }),
      timeField('From', 'since', filters.since),
      timeField('To', 'until', filters.until),
    ], params),
    listBox);
  const pages = [null];
  const load = () => guarded(listBox, async (current) => {
    const page = await api(`/v1/messages${query({ ...filters, limit: String(PAGE_SIZE), cursor: pages[pages.length - 1] })}`);
    if (!current()) return;
    listBox.replaceChildren(
      page.items.length === 0
        ? h('p', { class: 'empty', text: 'No messages match these filters.' })
        : table('Messages, newest first', ['Received', 'Type', 'Disposition', 'Event', 'Execution'],
          page.items.map((m) => [
            h('a', { href: `#/messages/${encodeURIComponent(m.message_id)}` }, when(m.received_at)),
            h('span', { text: m.type }),
            h('span', {}, badge('disposition', m.disposition), m.disposition_reason ? h('span', { class: 'reason small', text: m.disposition_reason }) : null),
            m.event ? h('span', {}, h('span', { text: m.event.event_id }), ' ', h('span', { class: 'muted', text: m.event.source_id })) : h('span', { class: 'muted', text: '—' }),
            m.execution_id ? h('a', { href: `#/executions/${encodeURIComponent(m.execution_id)}`, text: 'open' }) : h('span', { class: 'muted', text: '—' }),
          ])),
      pager(pages, page.next_cursor, load));
    listBox.setAttribute('aria-busy', 'false');
  });
  load();
  focusHeading(main);
}

function messageView(main, id) {
  const box = h('div', { class: 'detail', 'aria-busy': 'true' });
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/messages', text: '← Messages' })), box);
  guarded(box, async (current) => {
    const m = await api(`/v1/messages/${encodeURIComponent(id)}`);
    if (!current()) return;
    let body = m.message;
    try {
      body = JSON.stringify(JSON.parse(m.message), null, 2);
    } catch {
      // Not JSON: shown as it came.
    }
    box.replaceChildren(
      h('div', { class: 'view-head' }, h('h1', {}, h('span', { text: m.type }), ' ', badge('disposition', m.disposition))),
      h('dl', { class: 'fields' },
        field('Message ID', h('code', { class: 'wrap', text: m.message_id })),
        field('Topic', h('code', { class: 'wrap', text: m.topic_arn })),
        field('Subject', m.subject),
        field('Sent', when(m.sent_at)),
        field('Received', when(m.received_at)),
        field('Signature version', m.signature_version),
        field('Disposition', badge('disposition', m.disposition)),
        field('Why', m.disposition_reason),
        field('Event', m.event ? `${m.event.event_id} · ${m.event.source_type} ${m.event.source_id} · ${m.event.region}` : null),
        field('Execution', m.execution_id ? h('a', { href: `#/executions/${encodeURIComponent(m.execution_id)}`, text: m.execution_id }) : null)),
      h('h2', { text: 'Message' }),
      h('pre', { class: 'body', tabindex: '0', 'aria-label': 'Message body', text: body }));
    box.setAttribute('aria-busy', 'false');
    focusHeading(main);
  });
}

// ---- subscriptions -------------------------------------------------------------------------------

// Who can unsubscribe it follows from how it was confirmed.
const CONFIRMED_WITH = {
  sns_api: 'SNS API: only the topic owner can unsubscribe',
  subscribe_url: 'SubscribeURL: anyone with its ARN can unsubscribe',
};

function confirmedWith(way) {
  if (!way) return h('span', { class: 'muted', text: '—' });
  return h('span', { class: way === 'sns_api' ? '' : 'reason', text: CONFIRMED_WITH[way] || way });
}

function subscriptionsView(main, params) {
  const status = params.get('status') || '';
  const listBox = h('div', { class: 'list-box', 'aria-busy': 'true' });
  main.append(
    h('div', { class: 'view-head' }, h('h1', { text: 'Subscriptions' })),
    h('p', { class: 'lead', text: 'Every SNS topic restop has heard from, and the state of its subscription.' }),
    filterForm('subscriptions', [select('Status', 'status', SUBSCRIPTION_STATUSES, status)], params),
    listBox);
  guarded(listBox, async (current) => {
    const list = await api('/v1/subscriptions');
    if (!current()) return;
    const items = list.items.filter((s) => !status || s.status === status);
    listBox.replaceChildren(items.length === 0
      ? h('p', { class: 'empty', text: status ? 'No subscription has this status.' : 'restop has not heard from any topic yet.' })
      : table('Subscriptions', ['Topic', 'Status', 'Subscription', 'Confirmed with', 'Last error', 'First seen', 'Confirmed'],
        items.map((s) => [
          h('code', { class: 'wrap', text: s.topic_arn }),
          badge('subscription', s.status),
          s.subscription_arn ? h('code', { class: 'wrap small', text: s.subscription_arn }) : h('span', { class: 'muted', text: '—' }),
          confirmedWith(s.confirmed_with),
          s.last_error ? h('span', { class: 'reason', text: s.last_error }) : h('span', { class: 'muted', text: '—' }),
          when(s.first_seen_at),
          when(s.confirmed_at),
        ])));
    listBox.setAttribute('aria-busy', 'false');
  });
  focusHeading(main);
}

// ---- start -------------------------------------------------------------------------------------

async function tick() {
  if (document.visibilityState !== 'visible' || !state.refresh || state.refreshing) return;
  state.refreshing = true;
  try {
    await state.refresh();
  } finally {
    state.refreshing = false;
  }
}

function start() {
  document.querySelector('button.sign-out').addEventListener('click', () => {
    signOut({ kind: 'info', text: 'Signed out. The token was removed from this tab.' });
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', tick);
  setInterval(tick, REFRESH_MS);
  route();
}

start();

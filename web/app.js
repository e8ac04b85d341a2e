// certloop dashboard: talks to the /v1/ API of the daemon that serves it.
// The token is sent once (POST /v1/session); after that the browser's
// session cookie authenticates, and every change carries the session's
// CSRF token in X-CSRF-Token. Text from the server is only ever put into
// the page as text (textContent), never as markup.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const EVENTS = ['issued', 'renewed', 'failed', 'expiring', 'deploy_failed'];
  const BUSY = ['due', 'ordering', 'storing', 'deploying'];
  const BAD = ['deploy-failed', 'expired', 'revoked', 'no-certificate', 'retrying'];
  const HEALTH_ORDER = { red: 0, amber: 1, green: 2 };
  const HEALTH_TEXT = { red: 'Attention', amber: 'Soon', green: 'Healthy' };

  const st = {
    csrf: null,
    me: null,
    certs: [],
    now: 0, // the daemon's clock, unix seconds, at the last list
    sortKey: 'health',
    sortDir: 1,
    selected: null,
    es: null,
    poll: null,
    busyPoll: null,
    lastStates: new Map(),
  };

  // ---- the API -------------------------------------------------------------

  async function call(method, path, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
    if (method !== 'GET' && st.csrf) headers['X-CSRF-Token'] = st.csrf;
    if (opts.type) headers['Content-Type'] = opts.type;
    let res;
    try {
      res = await fetch(path, { method, headers, body: opts.body, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      return { status: 0, ok: false, body: { error: 'the daemon cannot be reached (' + e.message + ')' } };
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = { error: text.slice(0, 300) };
    }
    if (res.status === 401 && !opts.token && st.me) sessionEnded();
    return { status: res.status, ok: res.ok, body };
  }

  function errText(r) {
    const what = r.body && r.body.error ? r.body.error : 'no explanation given';
    return r.status ? 'HTTP ' + r.status + ': ' + what : what;
  }

  // ---- time ---------------------------------------------------------------

  function nowS() {
    return Math.floor(Date.now() / 1000);
  }

  function iso(t) {
    return new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function rel(t) {
    const d = t - nowS();
    const a = Math.abs(d);
    let v;
    let u;
    if (a < 90) { v = d; u = 'second'; }
    else if (a < 5400) { v = Math.round(d / 60); u = 'minute'; }
    else if (a < 129600) { v = Math.round(d / 3600); u = 'hour'; }
    else if (a < 90 * 86400) { v = Math.round(d / 86400); u = 'day'; }
    else if (a < 730 * 86400) { v = Math.round(d / (30.44 * 86400)); u = 'month'; }
    else { v = Math.round(d / (365.25 * 86400)); u = 'year'; }
    return new Intl.RelativeTimeFormat('en', { numeric: 'auto' }).format(v, u);
  }

  function timeEl(t) {
    if (!t) {
      const s = document.createElement('span');
      s.className = 'muted';
      s.textContent = '—';
      return s;
    }
    const el = document.createElement('time');
    el.dateTime = new Date(t * 1000).toISOString();
    el.textContent = rel(t);
    el.title = iso(t);
    return el;
  }

  // ---- health: red / amber / green by time left -----------------------------

  function health(c) {
    const now = nowS();
    if (BAD.includes(c.state) || c.consecutive_failures > 0) return 'red';
    if (!c.not_after) return BUSY.includes(c.state) ? 'amber' : 'red';
    const left = c.not_after - now;
    const life = c.not_before ? Math.max(c.not_after - c.not_before, 1) : 90 * 86400;
    if (left <= Math.max(86400, life / 10)) return 'red';
    if (BUSY.includes(c.state) || left <= life / 3 || (c.next_renewal && c.next_renewal <= now)) return 'amber';
    return 'green';
  }

  // ---- views ----------------------------------------------------------------

  function show(view) {
    $('login-view').hidden = view !== 'login';
    $('app-view').hidden = view !== 'app';
    $('who-box').hidden = view !== 'app';
  }

  function sessionEnded() {
    stopLive();
    st.me = null;
    st.csrf = null;
    show('login');
    $('login-error').textContent = 'Your session has ended: sign in again.';
    $('token').focus();
  }

  async function login(ev) {
    ev.preventDefault();
    const input = $('token');
    const token = input.value.trim();
    const err = $('login-error');
    if (!token) {
      err.textContent = 'Enter an API token.';
      input.focus();
      return;
    }
    $('login-submit').setAttribute('aria-busy', 'true');
    const r = await call('POST', '/v1/session', { token });
    $('login-submit').removeAttribute('aria-busy');
    input.value = '';
    if (r.status === 201 && r.body && r.body.csrf_token) {
      err.textContent = '';
      start(r.body);
      return;
    }
    err.textContent = r.status === 401 ? 'This token was not accepted.' : 'Sign-in failed: ' + errText(r);
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }

  async function logout() {
    await call('DELETE', '/v1/session');
    stopLive();
    st.me = null;
    st.csrf = null;
    st.selected = null;
    show('login');
    $('login-error').textContent = '';
    $('token').focus();
  }

  function start(me) {
    st.me = me;
    st.csrf = me.csrf_token;
    $('who').textContent = me.name;
    $('scopes').textContent = me.scopes;
    $('token').removeAttribute('aria-invalid');
    const manage = String(me.scopes).split(',').includes('manage');
    for (const id of ['act-renew', 'act-test', 'act-dry']) {
      $(id).disabled = !manage;
      $(id).title = manage ? '' : 'needs a token with the manage scope';
    }
    show('app');
    loadList();
    startLive();
    st.poll = setInterval(loadList, 30000);
    $('main').focus();
  }

  // ---- the list -------------------------------------------------------------

  async function loadList() {
    const r = await call('GET', '/v1/certificates');
    if (!r.ok) {
      $('count').textContent = 'Cannot load the certificates: ' + errText(r);
      return;
    }
    const prev = st.lastStates;
    st.certs = r.body.certificates || [];
    st.lastStates = new Map(st.certs.map((c) => [c.name, c.state + '|' + c.not_after]));
    renderList(prev);
    if (st.selected) {
      const c = st.certs.find((x) => x.name === st.selected);
      if (c && prev.get(c.name) !== st.lastStates.get(c.name)) loadDetail(c.name, false);
    }
    // while a run is in progress, follow it closely
    const busy = st.certs.some((c) => BUSY.includes(c.state));
    if (busy && !st.busyPoll) st.busyPoll = setInterval(loadList, 1000);
    if (!busy && st.busyPoll) {
      clearInterval(st.busyPoll);
      st.busyPoll = null;
    }
  }

  function sortValue(c, key) {
    switch (key) {
      case 'health': return HEALTH_ORDER[health(c)] * 1e11 + (c.not_after || 0);
      case 'domains': return (c.domains || []).join(',');
      case 'not_after':
      case 'next_renewal': return c[key] || Number.MAX_SAFE_INTEGER;
      default: return String(c[key] || '');
    }
  }

  function visible() {
    const q = $('filter').value.trim().toLowerCase();
    const h = $('health').value;
    return st.certs.filter((c) => {
      if (h && health(c) !== h) return false;
      if (!q) return true;
      const hay = [c.name, c.state, c.ca, c.profile].concat(c.domains || []).join(' ').toLowerCase();
      return hay.includes(q);
    }).sort((a, b) => {
      const x = sortValue(a, st.sortKey);
      const y = sortValue(b, st.sortKey);
      const d = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return d !== 0 ? d * st.sortDir : a.name.localeCompare(b.name);
    });
  }

  function td(child, cls) {
    const el = document.createElement('td');
    if (cls) el.className = cls;
    if (typeof child === 'string') el.textContent = child;
    else if (child) el.append(child);
    return el;
  }

  function stateEl(state) {
    const s = document.createElement('span');
    s.className = 'state' + (BUSY.includes(state) ? ' busy' : BAD.includes(state) ? ' bad' : '');
    s.textContent = state;
    return s;
  }

  function badge(h) {
    const b = document.createElement('span');
    b.className = 'badge ' + h;
    const d = document.createElement('span');
    d.className = 'dot';
    d.setAttribute('aria-hidden', 'true');
    b.append(d, HEALTH_TEXT[h]);
    return b;
  }

  function renderList(prev) {
    const counts = { red: 0, amber: 0, green: 0 };
    for (const c of st.certs) counts[health(c)]++;
    $('n-all').textContent = st.certs.length;
    $('n-green').textContent = counts.green;
    $('n-amber').textContent = counts.amber;
    $('n-red').textContent = counts.red;

    const rows = visible();
    const body = $('cert-rows');
    const frag = document.createDocumentFragment();
    for (const c of rows) {
      const tr = document.createElement('tr');
      tr.dataset.name = c.name;
      if (c.name === st.selected) tr.className = 'selected';
      if (prev && prev.size && prev.has(c.name) && prev.get(c.name) !== st.lastStates.get(c.name)) {
        tr.classList.add('flash');
      }
      const name = document.createElement('button');
      name.type = 'button';
      name.className = 'link';
      name.textContent = c.name;
      name.setAttribute('aria-label', 'Details of ' + c.name);
      name.addEventListener('click', () => select(c.name));
      if (c.name === st.selected) name.setAttribute('aria-current', 'true');
      const exp = document.createElement('span');
      exp.append(timeEl(c.not_after));
      if (c.not_after) {
        const sub = document.createElement('span');
        sub.className = 'sub';
        sub.textContent = iso(c.not_after).slice(0, 10);
        exp.append(sub);
      }
      const next = document.createElement('span');
      next.append(timeEl(c.next_renewal));
      if (c.reason) {
        const sub = document.createElement('span');
        sub.className = 'sub';
        sub.textContent = c.reason;
        next.append(sub);
      }
      tr.append(td(badge(health(c))), td(name), td(stateEl(c.state)),
        td((c.domains || []).join(', '), 'domains'), td(exp), td(next), td(c.ca || '—'));
      frag.append(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      tr.className = 'empty-row';
      const cell = td(st.certs.length ? 'No certificate matches the filter.' : 'No certificates are managed yet.');
      cell.colSpan = 7;
      tr.append(cell);
      frag.append(tr);
    }
    body.replaceChildren(frag);
    $('count').textContent = rows.length === st.certs.length
      ? st.certs.length + ' certificates'
      : rows.length + ' of ' + st.certs.length + ' certificates shown';
    for (const th of document.querySelectorAll('#certs th')) {
      if (th.dataset.key === st.sortKey) th.setAttribute('aria-sort', st.sortDir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  function sortBy(key) {
    if (st.sortKey === key) st.sortDir = -st.sortDir;
    else {
      st.sortKey = key;
      st.sortDir = 1;
    }
    renderList(null);
  }

  // ---- one certificate --------------------------------------------------------

  function select(name) {
    st.selected = name;
    $('act-result').textContent = '';
    $('act-result').className = 'result';
    $('act-output').hidden = true;
    renderList(null);
    loadDetail(name, true);
  }

  function fact(dl, label, value, cls) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    if (cls) dd.className = cls;
    if (typeof value === 'string') dd.textContent = value;
    else dd.append(value);
    dl.append(dt, dd);
  }

  function when(t) {
    if (!t) return '—';
    const s = document.createElement('span');
    s.append(timeEl(t), ' (' + iso(t) + ')');
    return s;
  }

  async function loadDetail(name, focus) {
    const r = await call('GET', '/v1/certificates/' + encodeURIComponent(name));
    if (st.selected !== name) return;
    const box = $('detail');
    box.hidden = false;
    $('detail-title').textContent = name;
    const dl = $('detail-facts');
    dl.replaceChildren();
    if (!r.ok) {
      fact(dl, 'Error', errText(r), 'err');
      return;
    }
    const c = r.body;
    fact(dl, 'Health', badge(health(c)));
    fact(dl, 'State', stateEl(c.state));
    fact(dl, 'Domains', (c.domains || []).join(', '));
    fact(dl, 'CA', (c.ca || '—') + (c.profile ? ' (profile ' + c.profile + ')' : ''));
    fact(dl, 'Valid from', when(c.not_before));
    fact(dl, 'Expires', when(c.not_after));
    fact(dl, 'Next renewal', when(c.next_renewal));
    if (c.reason) fact(dl, 'Why then', c.reason);
    if (c.ari) fact(dl, 'ARI window', iso(c.ari.start) + ' – ' + iso(c.ari.end));
    fact(dl, 'Last success', when(c.last_success_at));
    if (c.last_error) fact(dl, 'Last error', c.last_error + (c.last_error_at ? ' (' + iso(c.last_error_at) + ')' : ''), 'err');
    if (c.consecutive_failures) fact(dl, 'Failures in a row', String(c.consecutive_failures));
    if (c.paused) fact(dl, 'Paused', 'yes');

    const hist = $('history');
    hist.replaceChildren();
    const h = (c.history || []).slice().reverse();
    for (const e of h) {
      const li = document.createElement('li');
      const t = document.createElement('time');
      t.textContent = e.time ? iso(e.time).slice(0, 19) : '';
      const ev = document.createElement('span');
      ev.className = 'ev';
      ev.textContent = e.event || '';
      const d = document.createElement('span');
      d.className = 'what';
      d.textContent = e.detail || '';
      const right = document.createElement('div');
      right.append(ev, d);
      li.append(t, right);
      hist.append(li);
    }
    if (!h.length) {
      const li = document.createElement('li');
      li.textContent = 'No history yet.';
      hist.append(li);
    }
    const lines = (c.log || []).map((e) => (e.time ? iso(e.time).slice(11, 19) + '  ' : '') + (e.line || ''));
    $('log').textContent = lines.length ? lines.join('\n') : 'No run of this certificate in this daemon\'s log yet.';
    if (focus) $('detail-title').scrollIntoView({ block: 'nearest' });
  }

  function setTab(which) {
    for (const t of ['history', 'log']) {
      const on = t === which;
      $('tab-' + t).setAttribute('aria-selected', on ? 'true' : 'false');
      $('tab-' + t).tabIndex = on ? 0 : -1;
      $('panel-' + t).hidden = !on;
    }
    $('tab-' + which).focus();
  }

  async function action(kind) {
    const name = st.selected;
    if (!name) return;
    const btn = $({ renew: 'act-renew', test: 'act-test', dry: 'act-dry' }[kind]);
    const out = $('act-result');
    const more = $('act-output');
    const base = '/v1/certificates/' + encodeURIComponent(name);
    const path = kind === 'renew' ? base + '/renew?force=true' : kind === 'test' ? base + '/test' : base + '/renew?dry_run=true';
    const label = { renew: 'Renewal', test: 'Test', dry: 'Dry run' }[kind];
    btn.setAttribute('aria-busy', 'true');
    btn.disabled = true;
    out.className = 'result';
    out.textContent = label + ' of ' + name + ': ' + (kind === 'renew' ? 'asking the daemon…'
      : kind === 'test' ? 'asking the daemon… (the checks can take a minute)'
        : 'asking the daemon… (a whole order against the staging CA: this can take minutes)');
    more.hidden = true;
    const r = await call('POST', path);
    btn.removeAttribute('aria-busy');
    btn.disabled = false;
    const b = r.body || {};
    const lines = [].concat(b.lines || [], b.summary || [], b.errors || []).map(String);
    if (lines.length) {
      more.textContent = lines.join('\n');
      more.hidden = false;
    }
    if (r.ok && b.ok !== false) {
      out.className = 'result ok';
      out.textContent = label + ' of ' + name + ': ' + (kind === 'renew' && b.queued
        ? 'queued (HTTP ' + r.status + '); the state below follows it live.'
        : b.ok === true ? 'passed.' : 'done (HTTP ' + r.status + ').');
      loadList();
    } else if (r.ok) {
      out.className = 'result bad';
      out.textContent = label + ' of ' + name + ': failed (see below).';
    } else {
      out.className = 'result bad';
      out.textContent = label + ' of ' + name + ' refused: ' + (b.error ? errText(r) : 'HTTP ' + r.status +
        (lines.length ? ' (see below)' : ''));
    }
  }

  // ---- preview of a configuration change ---------------------------------------

  function el(tag, cls, textValue) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (textValue !== undefined) e.textContent = textValue;
    return e;
  }

  const CHANGE_HEALTH = { added: 'green', unchanged: 'green', redeploy: 'amber', reorder: 'amber' };

  async function plan(ev) {
    ev.preventDefault();
    const text = $('plan-config').value;
    const out = $('plan-out');
    out.hidden = false;
    out.replaceChildren();
    if (!text.trim()) {
      out.append(el('p', 'err', 'Paste a configuration first.'));
      return;
    }
    out.append(el('p', 'muted', 'Asking the daemon…'));
    const r = await call('POST', '/v1/plan', { body: text, type: 'application/toml' });
    out.replaceChildren();
    const b = r.body || {};
    if (!r.ok) {
      out.append(el('p', 'err', 'The preview failed: ' + (b.error ? errText(r) : 'HTTP ' + r.status)));
      if (Array.isArray(b.errors) && b.errors.length) out.append(el('pre', 'log', b.errors.join('\n')));
      return;
    }
    if (Array.isArray(b.warnings) && b.warnings.length) {
      const ul = el('ul', 'warn');
      for (const w of b.warnings) ul.append(el('li', '', String(w)));
      out.append(ul);
    }
    const certs = Array.isArray(b.certificates) ? b.certificates : [];
    for (const c of certs) {
      const sec = el('section');
      const h = el('h3', '', c.name || '');
      const badge = el('span', 'badge ' + (CHANGE_HEALTH[c.change] || 'amber'), c.change || '');
      h.append(badge);
      sec.append(h, el('pre', 'log', c.plan || ''));
      out.append(sec);
    }
    if (!certs.length) out.append(el('p', 'muted', 'The text changes no certificate.'));
  }

  // ---- live updates (Server-Sent Events) ------------------------------------------

  function setLive(state, text) {
    $('live').dataset.state = state;
    $('live').textContent = text;
  }

  function onEvent(e) {
    let d = {};
    try {
      d = JSON.parse(e.data);
    } catch (x) {
      return;
    }
    const li = document.createElement('li');
    li.dataset.event = d.event || e.type;
    li.dataset.certificate = d.certificate || '';
    const t = document.createElement('time');
    // the webhook body's time is RFC 3339 text
    const at = typeof d.time === 'string' ? new Date(d.time) : new Date();
    t.dateTime = at.toISOString();
    t.textContent = at.toLocaleTimeString('en-GB');
    const bad = d.event === 'failed' || d.event === 'deploy_failed' || d.event === 'expiring';
    const b = document.createElement('span');
    b.className = 'badge ' + (bad ? 'red' : 'green');
    b.textContent = d.event || e.type;
    const n = document.createElement('span');
    n.textContent = (d.certificate || '') + (d.error ? ': ' + d.error : '');
    li.append(t, b, n);
    const list = $('events');
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
    $('events-empty').hidden = true;
    loadList();
  }

  function startLive() {
    stopLive();
    setLive('wait', 'Connecting');
    const es = new EventSource('/v1/events');
    st.es = es;
    es.onopen = () => setLive('on', 'Live');
    es.onerror = () => {
      setLive('wait', 'Reconnecting');
      // a closed stream may mean the session ended: ask once
      call('GET', '/v1/session');
    };
    es.onmessage = onEvent;
    for (const name of EVENTS) es.addEventListener(name, onEvent);
  }

  function stopLive() {
    if (st.es) st.es.close();
    st.es = null;
    clearInterval(st.poll);
    clearInterval(st.busyPoll);
    st.poll = st.busyPoll = null;
    setLive('off', 'Offline');
  }

  // ---- wiring ---------------------------------------------------------------------

  async function boot() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('filter').addEventListener('input', () => renderList(null));
    $('health').addEventListener('change', () => renderList(null));
    for (const th of document.querySelectorAll('#certs th')) {
      th.querySelector('button').addEventListener('click', () => sortBy(th.dataset.key));
    }
    $('detail-close').addEventListener('click', () => {
      const name = st.selected;
      st.selected = null;
      $('detail').hidden = true;
      renderList(null);
      const b = document.querySelector('#cert-rows tr[data-name="' + CSS.escape(name || '') + '"] button');
      if (b) b.focus();
    });
    $('act-renew').addEventListener('click', () => action('renew'));
    $('act-test').addEventListener('click', () => action('test'));
    $('act-dry').addEventListener('click', () => action('dry'));
    $('tab-history').addEventListener('click', () => setTab('history'));
    $('tab-log').addEventListener('click', () => setTab('log'));
    for (const id of ['tab-history', 'tab-log']) {
      $(id).addEventListener('keydown', (e) => {
        if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') setTab(id === 'tab-log' ? 'history' : 'log');
      });
    }
    $('plan-form').addEventListener('submit', plan);
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !$('detail').hidden) $('detail-close').click();
      if (e.key === '/' && document.activeElement === document.body && !$('app-view').hidden) {
        e.preventDefault();
        $('filter').focus();
      }
    });

    const r = await call('GET', '/v1/session');
    if (r.ok && r.body && r.body.csrf_token) start(r.body);
    else {
      show('login');
      $('token').focus();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();

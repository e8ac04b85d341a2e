// The dashboard in a real browser (Debian's chromium, headless, driven by
// puppeteer-core), against a running daemon; run by
// tests/integration/test_browser.sh, which starts the world and passes:
//   PUPPETEER_DIR  where npm installed puppeteer-core
//   CHROMIUM       the browser binary
//   URL            https://127.0.0.1:PORT of the API listener
//   SPKI           base64 SHA-256 of the bootstrap certificate's key (pinned)
//   TOKEN, BAD_TOKEN, RENEW (the certificate to renew), N (how many there are)
//   ATTACKER       http://127.0.0.1:PORT/attack.html, a page on another site
//   ARTIFACTS      where the screenshots go
// Every step asserts what a user sees; the first failure ends the run.
'use strict';

const path = require('path');
const fs = require('fs');
const puppeteer = require(path.join(process.env.PUPPETEER_DIR, 'node_modules', 'puppeteer-core'));

const E = process.env;
const N = Number(E.N);
const shots = [];
let step = 'start';

function log(msg) {
  console.log('[browser] ' + msg);
}

function check(cond, what) {
  if (!cond) throw new Error(step + ': ' + what);
}

async function shot(page, name) {
  const file = path.join(E.ARTIFACTS, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

const text = (page, sel) => page.$eval(sel, (el) => el.textContent.trim());

async function main() {
  fs.mkdirSync(E.ARTIFACTS, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: E.CHROMIUM,
    headless: true, // --headless=new in current Chromium
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--ignore-certificate-errors-spki-list=' + E.SPKI, '--window-size=1440,1000'],
    defaultViewport: { width: 1440, height: 1000 },
  });
  const consoleErrors = [];
  try {
    const page = await browser.newPage();
    // every wait ends on an event; the bound is for a loaded 2-core CI
    // machine, where Chromium and the daemon beside the suite are slow
    page.setDefaultTimeout(60000);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

    // ---- a bad token is rejected
    step = 'bad token';
    await page.goto(E.URL + '/', { waitUntil: 'networkidle0' });
    await page.waitForSelector('#login-view:not([hidden])');
    check(await page.$eval('#token', (el) => el.labels.length === 1 && el.labels[0].textContent === 'API token'),
      'the token field has no label');
    check(await page.evaluate(() => document.activeElement.id) === 'token', 'the token field has no focus');
    await page.type('#token', E.BAD_TOKEN);
    await page.keyboard.press('Enter'); // the keyboard submits the form
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
    const err = await text(page, '#login-error');
    check(/not accepted/.test(err), 'the error says ' + err);
    check(await page.$eval('#app-view', (el) => el.hidden), 'the dashboard shows after a bad token');
    check((await page.cookies()).length === 0, 'a bad token got a cookie');
    await shot(page, '1-bad-token');
    log('bad token rejected: "' + err + '"');

    // ---- log in, see every certificate
    step = 'login';
    await page.type('#token', E.TOKEN);
    await page.click('#login-submit');
    await page.waitForSelector('#app-view:not([hidden])');
    await page.waitForFunction((n) => document.querySelectorAll('#cert-rows tr[data-name]').length === n, {}, N);
    const cookies = await page.cookies();
    const c = cookies.find((x) => x.name === '__Host-certloop');
    check(c && c.httpOnly && c.secure && c.sameSite === 'Strict' && c.path === '/',
      'the session cookie: ' + JSON.stringify(cookies));
    check(await page.evaluate(() => document.cookie) === '', 'the session cookie is readable by script');
    check(await text(page, '#n-all') === String(N), 'the summary counts ' + (await text(page, '#n-all')));
    const names = await page.$$eval('#cert-rows tr[data-name]', (rows) => rows.map((r) => r.dataset.name));
    for (let i = 0; i < N; i++) {
      const want = 'cert-' + String(i).padStart(2, '0');
      check(names.includes(want), want + ' is not in the table: ' + names.join(' '));
    }
    // (the broken one's deploy retries pass through "deploying" now and then)
    await page.waitForFunction((n) => document.getElementById('n-green').textContent === String(n - 1) &&
      document.getElementById('n-red').textContent === '1', { timeout: 60000 }, N);
    const healthy = await text(page, '#n-green');
    await page.waitForFunction((b) => {
      const tr = document.querySelector('#cert-rows tr[data-name="' + b + '"]');
      return tr && /Attention/.test(tr.textContent) && /deploy-failed/.test(tr.textContent);
    }, { timeout: 60000 }, E.BROKEN);
    await page.waitForFunction(() => document.getElementById('live').dataset.state === 'on');
    // every control has a name a screen reader can say
    const unnamed = await page.evaluate(() => {
      const bad = [];
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.labels.length === 0 && !el.getAttribute('aria-label')) bad.push(el.id);
      }
      for (const el of document.querySelectorAll('button')) {
        if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.id || el.outerHTML);
      }
      return bad;
    });
    check(unnamed.length === 0, 'controls without a label: ' + unnamed.join(' '));
    // text contrast (WCAG 2 AA: 4.5:1) of every kind of text on the page
    const low = await page.evaluate(() => {
      const lum = (c) => {
        const v = c.match(/[\d.]+/g).slice(0, 3).map((x) => {
          const s = Number(x) / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
      };
      const bg = (el) => {
        for (; el; el = el.parentElement) {
          // a faint translucent layer (alpha under 0.5) counts as its parent's colour
          const b = getComputedStyle(el).backgroundColor;
          const alpha = /^rgba/.test(b) ? Number(b.match(/[\d.]+/g)[3]) : 1;
          if (alpha >= 0.5) return b;
        }
        return 'rgb(255, 255, 255)';
      };
      const bad = [];
      const sels = ['body', '.muted', '.tile-l', '.badge.green', '.badge.red', '.state', '.state.bad', '.link',
        '.sub', '.domains', '#certs th button', '.token-name', '.btn.primary', '.btn', '.live', '.legend'];
      for (const sel of sels) {
        const el = document.querySelector(sel);
        if (!el) continue;
        const a = lum(getComputedStyle(el).color);
        const b = lum(bg(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) bad.push(sel + ' ' + ratio.toFixed(2));
      }
      return bad;
    });
    check(low.length === 0, 'text below 4.5:1 contrast: ' + low.join(', '));
    await shot(page, '2-certificates');
    log('signed in; ' + names.length + ' certificates, ' + healthy + ' healthy, event stream live');

    // ---- sorting and filtering
    step = 'sort and filter';
    await page.click('#certs th[data-key="name"] button');
    let order = await page.$$eval('#cert-rows tr[data-name]', (rows) => rows.map((r) => r.dataset.name));
    check(order.join() === names.slice().sort().join(), 'ascending by name: ' + order.join(' '));
    await page.click('#certs th[data-key="name"] button');
    order = await page.$$eval('#cert-rows tr[data-name]', (rows) => rows.map((r) => r.dataset.name));
    check(order.join() === names.slice().sort().reverse().join(), 'descending by name: ' + order.join(' '));
    check(await page.$eval('#certs th[data-key="name"]', (th) => th.getAttribute('aria-sort')) === 'descending',
      'aria-sort');
    await page.select('#health', 'red');
    await page.waitForFunction((b) => [...document.querySelectorAll('#cert-rows tr[data-name]')]
      .map((r) => r.dataset.name).join() === b, { timeout: 60000 }, E.BROKEN);
    await page.select('#health', '');
    await page.type('#filter', E.RENEW);
    check((await page.$$('#cert-rows tr[data-name]')).length === 1, 'the filter left more than one row');
    check(/1 of /.test(await text(page, '#count')), 'the count says ' + (await text(page, '#count')));
    await page.click('#filter', { clickCount: 3 });
    await page.keyboard.press('Backspace');
    await page.waitForFunction((n) => document.querySelectorAll('#cert-rows tr[data-name]').length === n, {}, N);

    // ---- a change without the CSRF token is refused, inside the page too
    step = 'csrf';
    const forged = await page.evaluate(async (name) => {
      const r = await fetch('/v1/certificates/' + name + '/renew', { method: 'POST', credentials: 'same-origin' });
      return r.status + ' ' + (await r.text());
    }, E.RENEW);
    check(/^403 .*X-CSRF-Token/.test(forged), 'a POST without the CSRF token: ' + forged);
    log('a same-origin POST without X-CSRF-Token: ' + forged.trim());

    // ---- open one certificate, renew it, watch the state change live
    step = 'renew';
    await page.focus('#cert-rows tr[data-name="' + E.RENEW + '"] button.link');
    await page.keyboard.press('Enter'); // the keyboard opens it
    await page.waitForFunction((n) => document.getElementById('detail-title').textContent === n &&
      document.getElementById('detail-facts').children.length > 0, {}, E.RENEW);
    const before = await page.$eval('#detail-facts', (dl) => dl.textContent);
    await page.evaluate((name) => {
      // every state the row shows, in order, as the page renders it
      window.__states = [];
      const seen = () => {
        const cell = document.querySelector('#cert-rows tr[data-name="' + name + '"] .state');
        const s = cell && cell.textContent;
        if (s && window.__states[window.__states.length - 1] !== s) window.__states.push(s);
      };
      seen();
      new MutationObserver(seen).observe(document.getElementById('cert-rows'), { childList: true, subtree: true });
    }, E.RENEW);
    await page.click('#act-renew');
    await page.waitForFunction(() => /queued/.test(document.getElementById('act-result').textContent));
    await page.waitForFunction((name) =>
      document.querySelector('#events li[data-event="renewed"][data-certificate="' + name + '"]'),
    { timeout: 90000 }, E.RENEW);
    await page.waitForFunction((name) => {
      const s = window.__states;
      return s.length >= 3 && s[s.length - 1] === 'valid';
    }, { timeout: 60000 }, E.RENEW);
    const states = await page.evaluate(() => window.__states);
    check(states[0] === 'valid' && states.some((s) => s !== 'valid'), 'states seen: ' + states.join(' -> '));
    await page.waitForFunction((b) => document.getElementById('detail-facts').textContent !== b, {}, before);
    await shot(page, '3-renewed');
    log('renewed ' + E.RENEW + ' live: ' + states.join(' -> ') + '; event "renewed" on the stream');

    // ---- its history and log
    step = 'log';
    const hist = await text(page, '#history');
    check(/renewed/.test(hist), 'the history has no renewal: ' + hist.slice(0, 300));
    await page.focus('#tab-history');
    await page.keyboard.press('ArrowRight'); // the tabs follow the keyboard
    await page.waitForSelector('#panel-log:not([hidden])');
    const logText = await text(page, '#log');
    check(logText.split('\n').length >= 3 && logText.includes(E.RENEW), 'the log: ' + logText.slice(0, 300));
    await shot(page, '4-log');
    log('log of ' + E.RENEW + ': ' + logText.split('\n').length + ' lines');

    // ---- test and dry run: whatever the daemon answers is shown as it is
    step = 'test and dry run';
    for (const [btn, label] of [['#act-test', 'Test'], ['#act-dry', 'Dry run']]) {
      await page.click(btn);
      await page.waitForFunction((l) => {
        const t = document.getElementById('act-result').textContent;
        return t.startsWith(l + ' of ') && !/asking the daemon/.test(t);
      }, { timeout: 300000 }, label);
      // what the daemon reported (the checks' lines, the dry run's summary or errors) is shown
      const shown = await page.$eval('#act-output', (el) => (el.hidden ? '' : el.textContent));
      check(shown.length > 0, label + ': nothing shown under the buttons');
      log(label + ': ' + (await text(page, '#act-result')) + ' | ' + shown.split('\n')[0]);
    }
    await shot(page, '5-actions');

    // ---- the preview of a pasted configuration change
    step = 'plan';
    const plan = async (toml) => {
      await page.$eval('#plan-config', (el, v) => { el.value = v; }, toml);
      await page.click('#plan-run');
      await page.waitForFunction(() => {
        const o = document.getElementById('plan-out');
        return !o.hidden && !/Asking the daemon/.test(o.textContent);
      }, { timeout: 60000 });
      return text(page, '#plan-out');
    };
    let planned = await plan('[certificate.cert-new]\ndomains = ["new.test"]\nca = "pebble"\nkey = "ec-p256"\n');
    check(/cert-new/.test(planned) && (await page.$$eval('#plan-out h3 .badge', (b) => b.map((x) => x.textContent)))
      .includes('added'), 'the preview of a new certificate: ' + planned.slice(0, 400));
    await page.$eval('#plan-out', (el) => el.scrollIntoView());
    await shot(page, '6-plan');
    log('preview of a new certificate: ' + planned.replace(/\s+/g, ' ').slice(0, 160));
    planned = await plan('[certificate.bad]\ndomains = ["bad.test"]\nca = "nope"\n');
    check(/\(config\):\d+:\d+: error:/.test(planned), 'the preview of an invalid change: ' + planned.slice(0, 400));
    log('preview of an invalid change: ' + planned.replace(/\s+/g, ' ').slice(0, 160));

    // ---- a phone-sized window: nothing wider than the screen
    step = 'narrow';
    await page.setViewport({ width: 390, height: 844 });
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 390, 'the page is ' + wide + ' px wide in a 390 px window');
    await shot(page, '7-narrow');
    await page.setViewport({ width: 1440, height: 1000 });

    // ---- a page on another site cannot use the session
    step = 'cross-site';
    const other = await browser.newPage();
    other.setDefaultTimeout(60000);
    const target = E.URL + '/v1/certificates/' + E.RENEW + '/renew';
    await other.goto(E.ATTACKER + '?target=' + encodeURIComponent(target), { waitUntil: 'networkidle0' });
    // a fetch with the browser's credentials, then a plain form post
    const fetched = await other.evaluate((t) =>
      fetch(t, { method: 'POST', credentials: 'include', mode: 'no-cors' }).then(() => 'sent', (e) => 'error ' + e.message),
    target);
    await Promise.all([other.waitForNavigation({ waitUntil: 'load' }), other.evaluate(() => document.getElementById('f').submit())]);
    const answer = await other.evaluate(() => document.body.textContent);
    // refused: 401 (the cookie was not sent) or 400 (bodies are refused before anything)
    check(other.url() === target && /^\{"error":"(an Authorization: Bearer token is required|Bad Request)"\}/.test(answer.trim()),
      'the form post was answered ' + other.url() + ' ' + answer);
    await other.close();
    log('another site\'s fetch (' + fetched + ') and form post: ' + answer.trim());

    // ---- sign out
    step = 'logout';
    await page.click('#logout');
    await page.waitForSelector('#login-view:not([hidden])');
    check(!(await page.cookies()).some((x) => x.name === '__Host-certloop'), 'the cookie stays after sign-out');
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForSelector('#login-view:not([hidden])');
    await shot(page, '8-signed-out');
    log('signed out');
    // the answers the steps above expect (401, 403, 404, 501) are logged by
    // the browser; anything else (a CSP violation, a script error) fails
    check(consoleErrors.filter((m) => !/^Failed to load resource: the server responded with a status of \d{3}/.test(m)).length === 0,
      'console errors: ' + consoleErrors.join(' | '));
  } finally {
    await browser.close();
    for (const f of shots) console.log('screenshot: ' + f);
  }
}

main().then(() => {
  log('ok');
}, (e) => {
  console.error('[browser] FAIL: ' + e.message);
  process.exit(1);
});

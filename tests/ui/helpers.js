// Shared by the UI tests: Debian's chromium through playwright-core (no
// downloaded browser), a fresh context (cookies) and page per test, login,
// axe-core, screenshots, and a check that nothing broke the CSP.
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import assert from 'node:assert/strict';

export const BASE = process.env.VIGIL_URL;
export const PASSWORD = process.env.VIGIL_PASSWORD;

// A time as the UI's links carry it: RFC 3339 UTC, whole seconds.
export const isoS = (ms) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
const SHOTS = process.env.VIGIL_SCREENSHOTS;
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

if (!BASE || !PASSWORD) throw new Error('run through tests/integration_ui.py (VIGIL_URL unset)');

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--mute-audio'],
  });
}

// A page in its own context; CSP reports and page errors are collected
// so every test can assert there were none.
export async function newPage(browser, { width = 1440, height = 900, locale = 'ru-RU', storageState } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale, storageState,
    extraHTTPHeaders: { 'Accept-Language': locale } });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    // answers the test provokes (not logged in, wrong password, not found)
    // are logged by the browser as failed loads: they are not faults
    if (m.type() === 'error' && !/status of (401|404|429)/.test(m.text())) page.problems.push(m.text());
  });
  page.on('pageerror', (e) => page.problems.push(String(e)));
  return page;
}

// The app booted and drew the page of the current URL.
export async function ready(page) {
  await page.waitForSelector('body[data-ready="1"]');
  await page.waitForFunction(() => document.body.dataset.rendered === location.pathname);
}

// A logged-in page for user: the form is filled once per user and test file,
// later pages reuse the session cookie (a login costs an Argon2id verify).
const sessions = new Map();
export async function as(browser, user, opts = {}) {
  if (!sessions.has(user)) {
    const first = await newPage(browser, opts);
    await login(first, user);
    sessions.set(user, await first.context().storageState());
    return first;
  }
  const page = await newPage(browser, { ...opts, storageState: sessions.get(user) });
  await page.goto(BASE + '/');
  await ready(page);
  return page;
}

export async function login(page, user, password = PASSWORD, path = '/') {
  await page.goto(BASE + path);
  await page.waitForSelector('input[name=user]');
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  await ready(page);
}

// Navigates as a user would (History API, no reload), then waits for the page.
export async function go(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, path);
  await page.waitForFunction((p) => location.pathname === p.split('?')[0] &&
    document.body.dataset.rendered === location.pathname, path);
}

export async function axe(page, what) {
  await page.evaluate(axeSource);
  const res = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(' ')})`), [],
    `axe-core on ${what}`);
}

export function noProblems(page) {
  assert.deepEqual(page.problems, [], 'console errors or CSP violations');
}

export async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

// The API over the page's own session cookie (checks of audit rows).
export async function apiGet(page, p) {
  const res = await page.request.get(BASE + '/api/v1' + p);
  assert.equal(res.status(), 200, `GET ${p}`);
  return res.json();
}

export async function auditRows(page, action) {
  const from = new Date(Date.now() - 3600e3).toISOString();
  const { rows } = await apiGet(page, `/audit?action=${encodeURIComponent(action)}&from=${from}`);
  return rows;
}

export async function narrowFits(page) {
  const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth,
    document.documentElement.clientWidth]);
  assert.ok(sw <= cw, `the page is ${sw} px wide in a ${cw} px window`);
}

// Regressions of a review of the UI: pages opened by their address (a
// reload), roles the forms must keep, an expired session, double submits,
// the player's keys on a Russian layout, expired holds, the announcement
// detail of a call, the pbx permission of tokens, where each role lands,
// and API errors in words.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, go, noProblems, apiGet, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

// A change through the API over the page's session (setting a test up).
async function apiSend(page, method, p, data) {
  const res = await page.request.fetch(BASE + '/api/v1' + p, { method, data,
    headers: { 'X-Requested-With': 'vigil' } });
  assert.ok(res.ok(), `${method} ${p}: ${res.status()} ${await res.text()}`);
  return res.json();
}

test('/reports, /reports/announcement-missing and /qa/forms load by their address', async () => {
  const page = await as(browser, 'admin');
  for (const [path, h1] of [['/reports', 'Отчёты'], ['/reports/announcement-missing', 'Звонки без предупреждения о записи'],
    ['/qa/forms', 'Анкеты контроля']]) {
    const res = await page.goto(BASE + path);
    assert.equal(res.status(), 200, path);
    assert.match(res.headers()['content-type'], /^text\/html/, path);
    await page.waitForSelector(`h1:has-text("${h1}")`);
  }
  noProblems(page);
  await page.context().close();
});

test('/admin/users: saving the sources of an officer keeps the role', async () => {
  const page = await as(browser, 'admin');
  await apiSend(page, 'POST', '/users', { name: 'rv-officer', role: 'officer', password: 'rv-officer-password' });
  await go(page, '/admin/users');
  const role = page.locator('select[aria-label="Роль rv-officer"]');
  assert.equal(await role.inputValue(), 'officer');
  assert.equal(await role.locator('option:checked').textContent(), 'офицер безопасности');
  await page.fill('input[aria-label="Источники rv-officer"]', 'hall-1');
  await page.click('button[aria-label="Сохранить rv-officer"]');
  await page.waitForSelector('.msg.ok:has-text("Изменения rv-officer сохранены")');
  const { users } = await apiGet(page, '/users');
  const u = users.find((x) => x.name === 'rv-officer');
  assert.equal(u.role, 'officer');
  assert.deepEqual(u.sources, ['hall-1']);
  // and the role is still changed when it is picked
  await page.selectOption('select[aria-label="Роль rv-officer"]', 'auditor');
  const [patch] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'PATCH'),
    page.click('button[aria-label="Сохранить rv-officer"]')]);
  assert.equal(patch.status(), 200);
  assert.equal((await apiGet(page, '/users')).users.find((x) => x.name === 'rv-officer').role, 'auditor');
  await apiSend(page, 'DELETE', '/users/rv-officer');
  noProblems(page);
  await page.context().close();
});

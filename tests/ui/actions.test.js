// Each action a page offers goes through the API and leaves its audit row.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, as, login, go, shot, noProblems, auditRows, apiGet } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

async function admin(path) {
  const page = await as(browser, 'admin');
  page.on('dialog', (d) => d.accept(page.answer));
  await go(page, path);
  return page;
}

test('holds: create from the form, release with a reason', async () => {
  const page = await admin('/holds');
  await page.fill('input[name=case]', 'CASE-77');
  await page.fill('input[name=reason]', 'жалоба клиента');
  await page.check('input[name=sources][value=hall-1]');
  await page.click('form button[type=submit]');
  await page.waitForSelector('main td:has-text("CASE-77")');
  assert.ok((await auditRows(page, 'hold.create')).some((r) => r.detail.includes('CASE-77') || r.object.includes('hold')));
  await shot(page, 'holds');
  page.answer = 'дело закрыто';
  await page.click('button[aria-label*="CASE-77"]');
  await page.waitForSelector('main td:has-text("дело закрыто")');
  assert.equal((await auditRows(page, 'hold.release')).length, 1);
  noProblems(page);
  await page.context().close();
});

test('users: create, change role, reset password, delete', async () => {
  const page = await admin('/admin/users');
  await page.fill('input[name=name]', 'olga');
  await page.selectOption('select[name=role]', 'auditor');
  await page.fill('input[name=password]', 'olga-password-1');
  await page.click('form button[type=submit]');
  await page.waitForSelector('main td:text-is("olga")');
  await page.selectOption('select[aria-label="Роль olga"]', 'investigator');
  await page.fill('input[aria-label="Источники olga"]', 'hall-1, line-1');
  await page.click('button[aria-label="Сохранить olga"]');
  await page.waitForSelector('.msg.ok:has-text("Изменения olga сохранены")');
  const { users } = await apiGet(page, '/users');
  const olga = users.find((u) => u.name === 'olga');
  assert.equal(olga.role, 'investigator');
  assert.deepEqual(olga.sources, ['hall-1', 'line-1']);
  page.answer = 'olga-new-password';
  await page.click('button[aria-label="Сменить пароль olga"]');
  await page.waitForSelector('.msg.ok:has-text("Пароль olga")');
  page.answer = undefined;
  await page.click('button[aria-label="Удалить olga"]');
  await page.waitForSelector('.msg.ok:has-text("удалён")');
  for (const a of ['user.create', 'user.update', 'user.delete'])
    assert.ok((await auditRows(page, a)).some((r) => r.object === 'user:olga'), a);
  noProblems(page);
  await page.context().close();
});

test('tokens: the secret is shown once with a copy button; revoke', async () => {
  const page = await admin('/admin/tokens');
  await page.fill('input[name=name]', 'central-point');
  await page.check('input[name=perm][value=live]');
  await page.click('form button[type=submit]');
  const secret = await page.textContent('code.token-secret');
  assert.ok(secret.length > 20);
  assert.equal(await page.locator('button:has-text("Копировать")').count(), 1);
  await shot(page, 'tokens');
  await page.click('button[aria-label="Отозвать central-point"]');
  await page.waitForSelector('main td:has-text("отозван")');
  assert.equal(await page.locator('code.token-secret').count(), 0, 'not shown again');
  // (the suite's own tokens are made by vigilctl: system:vigilctl)
  assert.equal((await auditRows(page, 'token.create')).filter((r) => r.actor === 'user:admin').length, 1);
  assert.equal((await auditRows(page, 'token.revoke')).length, 1);
  noProblems(page);
  await page.context().close();
});

test('retention: a keep_days override above the floor, then back to the config', async () => {
  const page = await admin('/admin/sources');
  const input = page.locator('input[aria-label="Срок хранения hall-2, сут."]');
  await input.fill('30');
  await page.click('button[aria-label="Сохранить срок hall-2"]');
  await page.waitForSelector('.msg.error:has-text("не меньше 60")');
  await input.fill('90');
  await page.click('button[aria-label="Сохранить срок hall-2"]');
  await page.waitForSelector('button[aria-label="Вернуть срок hall-2 из конфигурации"]');
  assert.equal((await apiGet(page, '/sources/hall-2')).keep_days, 90);
  await page.click('button[aria-label="Вернуть срок hall-2 из конфигурации"]');
  await page.waitForFunction(() => !document.querySelector('button[aria-label="Вернуть срок hall-2 из конфигурации"]'));
  assert.equal((await apiGet(page, '/sources/hall-2')).keep_days, 60);
  assert.ok((await auditRows(page, 'source.update')).length >= 2);
  noProblems(page);
  await page.context().close();
});

test('audit: filter by action, verify the chain, CSV link', async () => {
  const page = await admin('/admin/audit');
  await page.fill('input[name=action]', 'login');
  await page.click('form button[type=submit]');
  await page.waitForFunction(() => [...document.querySelectorAll('main tbody tr')].every((tr) => tr.children[3].textContent === 'login'));
  await page.click('button:has-text("Проверить целостность")');
  await page.waitForSelector('.msg.ok:has-text("Цепочка цела")');
  const href = await page.getAttribute('a[download]', 'href');
  const res = await page.request.get(new URL(href, page.url()).href);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /csv/);
  assert.ok((await auditRows(page, 'audit.verify')).length >= 1);
  noProblems(page);
  await page.context().close();
});

test('language switch is kept per user', async () => {
  const page = await newPage(browser);
  await login(page, 'inv');
  await page.selectOption('select[aria-label="Язык интерфейса"]', 'en');
  await page.waitForSelector('h1:has-text("Sources")');
  await page.waitForFunction(async () => (await (await fetch('/api/v1/me/language')).json()).language === 'en');
  await page.context().close();
  const fresh = await newPage(browser); // a new browser profile, Russian
  await login(fresh, 'inv');
  await fresh.waitForSelector('h1:has-text("Sources")');
  await shot(fresh, 'sources-en');
  await fresh.selectOption('select[aria-label="Language"]', 'ru');
  await fresh.waitForSelector('h1:has-text("Источники")');
  assert.ok((await auditRows(await adminPage(), 'user.language')).length >= 2);
  await fresh.context().close();
});

let adminP;
async function adminPage() {
  if (!adminP) adminP = await admin('/');
  return adminP;
}

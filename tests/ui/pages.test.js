// Each page renders real data from the running vigild, passes axe-core,
// and the main ones are photographed for the README.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, as, go, axe, shot, noProblems, narrowFits, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('sources overview: every source, recording, linked, with depth and bitrate', async () => {
  const page = await as(browser, 'admin');
  for (const name of ['hall-1', 'hall-2', 'line-1'])
    assert.equal(await page.locator(`main a[href="/sources/${name}"]`).count(), 1, name);
  await page.waitForSelector('main .status.recording');
  assert.ok(await page.locator('main tbody tr').count() >= 3);
  assert.match(await page.textContent('main tbody'), /из 60 сут\./);
  assert.match(await page.textContent('main tbody'), /GMT\+3/, 'times in the office zone with offset');
  await axe(page, 'sources');
  await shot(page, 'sources');
  await page.click('main a[href="/sources/hall-1"]');
  await page.waitForSelector('h1:has-text("hall-1")');
  assert.equal(new URL(page.url()).pathname, '/sources/hall-1');
  noProblems(page);
  await page.context().close();
});

test('sources overview at 390 px: nothing wider than the window', async () => {
  const page = await as(browser, 'admin', { width: 390, height: 844 });
  await narrowFits(page);
  await axe(page, 'sources at 390 px');
  await shot(page, 'sources-390');
  await page.context().close();
});

const adminPages = [
  ['/admin/storage', 'Хранилище', 'storage'],
  ['/admin/sources', 'Сроки хранения', 'admin-sources'],
  ['/admin/users', 'Пользователи', 'users'],
  ['/admin/tokens', 'Токены API', 'tokens'],
  ['/admin/audit', 'Журнал аудита', 'audit'],
  ['/admin/destruction-log', 'Журнал уничтожения', 'destruction-log'],
  ['/holds', 'Удержания', 'holds'],
];

for (const [path, h1, name] of adminPages) {
  test(`${path} renders real data and passes axe`, async () => {
    const page = await as(browser, 'admin');
    await go(page, path);
    await page.waitForSelector(`h1:has-text("${h1}")`);
    assert.equal(await page.locator(`nav a[href="${path}"][aria-current=page]`).count(), 1, 'in the menu');
    if (name === 'storage') {
      await page.waitForSelector('svg.bars');
      assert.match(await page.textContent('main table'), /hall-1/);
      assert.match(await page.textContent('main .cards'), /Пакеты экспорта/);
    }
    if (name === 'users') assert.match(await page.textContent('main table'), /guard/);
    if (name === 'audit') assert.match(await page.textContent('main table'), /login/);
    if (name === 'admin-sources') assert.equal(await page.locator('main input[type=number]').count(), 7);
    await axe(page, path);
    await shot(page, name);
    await page.setViewportSize({ width: 390, height: 844 });
    await narrowFits(page);
    noProblems(page);
    await page.context().close();
  });
}

test('security role: no admin menu, admin URLs say not found', async () => {
  const page = await as(browser, 'guard');
  const menu = await page.textContent('nav');
  assert.doesNotMatch(menu, /Пользователи|Хранилище|Журнал аудита|Удержания/);
  assert.equal(await page.locator('main tbody tr').count(), 5, 'video sources only');
  for (const path of ['/admin/users', '/admin/storage', '/admin/audit', '/holds']) {
    await go(page, path);
    await page.waitForSelector('h1:has-text("Страница не найдена")');
  }
  await page.goto(BASE + '/admin/tokens');
  await page.waitForSelector('h1:has-text("Страница не найдена")');
  await axe(page, 'not found');
  noProblems(page);
  await page.context().close();
});

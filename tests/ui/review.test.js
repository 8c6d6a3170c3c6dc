// Regressions of a review of the UI: pages opened by their address (a
// reload), roles the forms must keep, an expired session, double submits,
// the player's keys on a Russian layout, expired holds, the announcement
// detail of a call, the pbx permission of tokens, where each role lands,
// and API errors in words.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, noProblems, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

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

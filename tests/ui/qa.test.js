// Call quality end to end: an admin writes a QA form in the editor; an
// auditor scores a range of the recorded line beside the player, with a
// comment pinned to the time the player reached, jumps back to it from the
// list, and finds the evaluation in the reports page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, go, axe, shot, noProblems, apiGet, auditRows, isoS } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('QA: a form from the editor, a scored range with a timed comment, the report', async () => {
  const admin = await as(browser, 'admin');
  await go(admin, '/qa/forms');
  await admin.fill('input[name=key]', 'ui-calls');
  await admin.fill('input[name=title]', 'Проверка звонка');
  await admin.fill('input[name=section-title]', 'Разговор');
  const q1 = admin.locator('.qa-edit-q').nth(0);
  await q1.locator('[name=id]').fill('greet');
  await q1.locator('[name=text]').fill('Поздоровался');
  await admin.click('button.qa-add-q');
  const q2 = admin.locator('.qa-edit-q').nth(1);
  await q2.locator('[name=id]').fill('solve');
  await q2.locator('[name=text]').fill('Решил вопрос клиента');
  await q2.locator('[name=type]').selectOption('scale');
  await q2.locator('[name=weight]').fill('2');
  await admin.click('form.qa-editor button[type=submit]');
  await admin.waitForSelector('main td:text-is("ui-calls")');
  await admin.waitForSelector('.msg.ok:has-text("ui-calls")');
  await axe(admin, 'QA forms');
  await shot(admin, 'qa-forms');
  noProblems(admin);

  // the auditor: the line 30 s back, range starts there
  const page = await as(browser, 'qaaud');
  const at = Math.floor((Date.now() - 30000) / 1000) * 1000;
  await go(page, '/sources/line-1?at=' + isoS(at));
  await page.click('button.qa-start');
  await page.waitForSelector('.qa-box[data-ready="1"]');
  await page.selectOption('.qa-panel select[name=form]', 'ui-calls');
  await page.waitForSelector('input[name="q-0-solve"]');
  await page.check('input[name="q-0-greet"][value=yes]');
  await page.check('input[name="q-0-solve"][value="4"]');
  // let the line play a few seconds: the comment is pinned to where it is
  await page.waitForFunction(() => { const a = document.querySelector('main audio'); return a && !a.paused && a.currentTime > 0; },
    null, { timeout: 30000 }).catch(async () => { await page.click('main button.play'); });
  await page.waitForFunction(() => {
    const m = /(\d+):(\d\d)/.exec(document.querySelector('.qa-panel .qa-now')?.textContent || '');
    return m && Number(m[1]) * 60 + Number(m[2]) >= 3;
  }, null, { timeout: 30000 });
  await page.fill('.qa-panel input[name=comment]', 'долгое ожидание');
  await page.click('button.qa-add-comment');
  await page.click('.qa-panel button[type=submit]');
  await page.waitForSelector('.qa-panel .msg.ok');
  assert.match(await page.textContent('.qa-panel .msg.ok'), /83,3/);
  const { evaluations } = await apiGet(page, '/qa/evaluations?auditor=qaaud');
  assert.equal(evaluations.length, 1);
  const ev = evaluations[0];
  assert.ok(Math.abs(ev.score - 2.5 / 3) < 1e-5, `score ${ev.score}`);
  assert.equal(ev.source, 'line-1');
  assert.equal(Date.parse(ev.from), at);
  assert.equal(ev.comments.length, 1);
  assert.equal(ev.comments[0].text, 'долгое ожидание');
  assert.ok(ev.comments[0].offset_s >= 3 && ev.comments[0].offset_s < 120, `offset ${ev.comments[0].offset_s}`);
  // the comment in the list seeks the player back to its time
  const jump = page.locator('.qa-history button.qa-jump').first();
  await jump.click();
  await page.waitForFunction((ms) => {
    const c = Number(document.querySelector('main time.clock')?.dataset.ms);
    return Math.abs(c - ms) < 2500;
  }, at + ev.comments[0].offset_s * 1000, { timeout: 20000 });
  await axe(page, 'QA panel');
  await shot(page, 'qa-panel');
  assert.ok((await auditRows(admin, 'qa.evaluate')).some((r) => r.object === 'qa_evaluation:' + ev.id));

  // the reports page: the auditor's row with the score
  await go(page, '/reports');
  const row = page.locator('main tr', { has: page.locator('td:text-is("qaaud")') });
  await row.waitFor();
  assert.match(await row.textContent(), /83,3/);
  assert.ok(await page.locator('main svg.bars').count() >= 1, 'charts drawn');
  await axe(page, 'reports');
  await shot(page, 'reports');
  assert.ok((await auditRows(admin, 'report.run')).some((r) => r.actor === 'user:qaaud'));
  noProblems(page);
  await page.context().close();
  await admin.context().close();
});

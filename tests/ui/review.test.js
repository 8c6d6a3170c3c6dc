// Regressions of a review of the UI: pages opened by their address (a
// reload), roles the forms must keep, an expired session, double submits,
// the player's keys on a Russian layout, expired holds, the announcement
// detail of a call, the pbx permission of tokens, where each role lands,
// and API errors in words.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, login, ready, as, go, noProblems, apiGet, isoS, BASE, PASSWORD } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

// Counts the page's requests of method to path (API path, no query).
function counter(page, method, p) {
  const n = { count: 0 };
  page.on('request', (r) => {
    if (r.method() === method && new URL(r.url()).pathname === '/api/v1' + p) n.count++;
  });
  return n;
}

// A change through the API over the page's session (setting a test up).
async function apiSend(page, method, p, data) {
  const res = await page.request.fetch(BASE + '/api/v1' + p, { method, data,
    headers: { 'X-Requested-With': 'vigil' } });
  const text = await res.text();
  assert.ok(res.ok(), `${method} ${p}: ${res.status()} ${text}`);
  return text ? JSON.parse(text) : null;
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

test('a session ended under an open page: an action shows the login page, which leads back', async () => {
  const page = await newPage(browser);
  await login(page, 'inv', PASSWORD, '/holds');
  assert.equal(new URL(page.url()).pathname, '/holds');
  await page.waitForSelector('h1:has-text("Удержания")');
  // the session ends on the server (a logout from elsewhere with its cookie)
  const cookie = (await page.context().cookies()).map((c) => c.name + '=' + c.value).join('; ');
  const res = await fetch(BASE + '/api/v1/logout', { method: 'POST', headers: { Cookie: cookie, 'X-Requested-With': 'vigil' } });
  assert.equal(res.status, 200);
  await page.fill('input[name=case]', 'rv-expired');
  await page.fill('input[name=reason]', 'проверка');
  await page.check('input[name=sources][value=hall-1]');
  await page.click('form button[type=submit]');
  await page.waitForURL((u) => u.pathname === '/login');
  assert.equal(new URL(page.url()).searchParams.get('next'), '/holds');
  await ready(page);
  assert.doesNotMatch(await page.textContent('body'), /session has expired/);
  await page.fill('input[name=user]', 'inv');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.pathname === '/holds');
  await page.waitForSelector('h1:has-text("Удержания")');
  noProblems(page);
  await page.context().close();
});

test('/exports keeps following a running export after a failed poll, and says so', async () => {
  const page = await as(browser, 'admin');
  let job = null, polls = 0;
  // the list the page loads first is asked for right after an export of
  // every source's last hour is queued (it runs for a while); the first
  // poll after it fails as if the network were down
  await page.route('**/api/v1/exports', async (route) => {
    if (!job) {
      const now = Date.now();
      job = await apiSend(page, 'POST', '/exports', { sources: ['hall-1', 'hall-2', 'gate-1', 'yard-1', 'hall-3', 'line-1'],
        from: new Date(now - 3600e3).toISOString(), to: new Date(now).toISOString(), case: 'rv-poll', reason: 'проверка' });
      return route.continue();
    }
    if (++polls === 1) return route.abort('failed');
    return route.continue();
  });
  await go(page, '/exports');
  const row = page.locator(`main tr[data-id="${job.id}"]`);
  assert.match(await row.textContent(), /в очереди|собирается/, 'running when the page was drawn');
  await page.waitForSelector('main .msg.error:not(:empty)');
  await row.locator('a[download]').waitFor();
  assert.equal(await page.textContent('main .msg'), '', 'the error is gone once the list loads again');
  await apiSend(page, 'DELETE', '/exports/' + job.id);
  page.problems = page.problems.filter((p) => !/ERR_FAILED/.test(p));
  noProblems(page);
  await page.context().close();
});

test('/holds: a double click on create makes one hold', async () => {
  const page = await as(browser, 'inv');
  await go(page, '/holds');
  const posts = counter(page, 'POST', '/holds');
  await page.fill('input[name=case]', 'rv-double');
  await page.fill('input[name=reason]', 'проверка');
  await page.check('input[name=sources][value=hall-1]');
  await page.dblclick('form button[type=submit]');
  await page.waitForSelector('main td:text-is("rv-double")');
  assert.equal(posts.count, 1, 'one POST /holds');
  const { holds } = await apiGet(page, '/holds?all=1');
  assert.equal(holds.filter((x) => x.case === 'rv-double').length, 1);
  noProblems(page);
  await page.context().close();
});

test('/admin/tokens: a double click on create makes one token', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/admin/tokens');
  const posts = counter(page, 'POST', '/tokens');
  await page.fill('input[name=name]', 'rv-double');
  await page.check('input[name=perm][value=metrics]');
  await page.dblclick('form button[type=submit]');
  await page.waitForSelector('main .token-secret');
  assert.equal(posts.count, 1, 'one POST /tokens');
  const { tokens } = await apiGet(page, '/tokens');
  const mine = tokens.filter((x) => x.name === 'rv-double');
  assert.equal(mine.length, 1);
  await apiSend(page, 'DELETE', '/tokens/' + mine[0].id);
  noProblems(page);
  await page.context().close();
});

test('QA panel: a double click on submit stores one evaluation', async () => {
  const admin = await as(browser, 'admin');
  await apiSend(admin, 'POST', '/qa/forms', { key: 'rv-double', title: 'Двойной щелчок',
    sections: [{ title: 'Разговор', questions: [{ id: 'hello', text: 'Поздоровался', type: 'yesno' }] }] });
  await apiSend(admin, 'POST', '/users', { name: 'rv-aud', role: 'auditor', password: PASSWORD });
  await admin.context().close();
  const page = await as(browser, 'rv-aud');
  await go(page, '/sources/line-1?at=' + isoS(Date.now() - 30000));
  await page.click('button.qa-start');
  await page.waitForSelector('.qa-box[data-ready="1"]');
  await page.selectOption('.qa-panel select[name=form]', 'rv-double');
  await page.check('input[name="q-0-hello"][value=yes]');
  const posts = counter(page, 'POST', '/qa/evaluations');
  await page.dblclick('.qa-panel button[type=submit]');
  await page.waitForSelector('.qa-panel .msg.ok');
  await page.waitForSelector('.qa-history .qa-evals li');
  assert.equal(posts.count, 1, 'one POST /qa/evaluations');
  const { evaluations } = await apiGet(page, '/qa/evaluations?auditor=rv-aud');
  assert.equal(evaluations.length, 1);
  noProblems(page);
  await page.context().close();
});

test('player: J/K/L and , . work on the Russian layout (by the key\'s place)', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/sources/hall-1?at=' + isoS(Date.now() - 15000));
  const video = 'main video';
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && !el.paused && el.currentTime > 0;
  }, video, { timeout: 30000 });
  // what a Russian layout sends: the Cyrillic letter, the Latin key's code
  const press = (key, code) => page.evaluate(([k, c]) => document.body.dispatchEvent(
    new KeyboardEvent('keydown', { key: k, code: c, bubbles: true, cancelable: true })), [key, code]);
  const rate = () => page.evaluate((sel) => document.querySelector(sel).playbackRate, video);
  await press('д', 'KeyL');
  assert.equal(await rate(), 2, 'L: faster');
  await press('о', 'KeyJ');
  assert.equal(await rate(), 1, 'J: slower');
  await press('л', 'KeyK');
  await page.waitForFunction((sel) => document.querySelector(sel).paused, video);
  const t0 = await page.evaluate((sel) => document.querySelector(sel).currentTime, video);
  await press('ю', 'Period');
  const t1 = await page.evaluate((sel) => document.querySelector(sel).currentTime, video);
  assert.ok(t1 > t0, `. steps a frame forward (${t0} -> ${t1})`);
  await press('б', 'Comma');
  const t2 = await page.evaluate((sel) => document.querySelector(sel).currentTime, video);
  assert.ok(t2 < t1, `, steps a frame back (${t1} -> ${t2})`);
  noProblems(page);
  await page.context().close();
});

test('/holds: a hold past its end says so and offers no release', async () => {
  const page = await as(browser, 'admin');
  const now = Date.now();
  const range = { sources: ['hall-2'], from: isoS(now - 3600e3), to: isoS(now - 1800e3), reason: 'проверка' };
  const old = await apiSend(page, 'POST', '/holds', { ...range, case: 'rv-ended', until: isoS(now - 60e3) });
  const live = await apiSend(page, 'POST', '/holds', { ...range, case: 'rv-running', until: isoS(now + 86400e3) });
  await go(page, '/holds');
  const row = (c) => page.locator('main tr', { has: page.locator(`td:text-is("${c}")`) });
  const ended = row('rv-ended');
  assert.match(await ended.textContent(), /истекло/);
  assert.equal(await ended.locator('button').count(), 0, 'no release button');
  const running = row('rv-running');
  assert.doesNotMatch(await running.textContent(), /истекло/);
  assert.equal(await running.locator('button:text-is("Снять")').count(), 1);
  // both show their end, in the office zone
  for (const row of [ended, running]) assert.match(await row.textContent(), /GMT\+3.*GMT\+3.*GMT\+3/);
  for (const id of [old.id, live.id]) await apiSend(page, 'POST', `/holds/${id}/release`, { reason: 'конец проверки' });
  noProblems(page);
  await page.context().close();
});

test('/admin/tokens: the PBX token can be made here (the pbx permission)', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/admin/tokens');
  await page.fill('input[name=name]', 'rv-pbx');
  await page.check('input[name=perm][value=pbx]');
  await page.click('form button[type=submit]');
  const secret = await page.textContent('main .token-secret');
  const { tokens } = await apiGet(page, '/tokens');
  const mine = tokens.find((x) => x.name === 'rv-pbx');
  assert.deepEqual(mine.permissions, ['pbx']);
  // the token works for what a PBX does: it reports a call
  const now = Date.now();
  const res = await fetch(BASE + '/api/v1/calls', { method: 'POST', headers: { Authorization: 'Bearer ' + secret,
    'Content-Type': 'application/json' }, body: JSON.stringify({ call_id: 'rv-pbx-1', source: 'line-1',
    start: isoS(now - 20000), end: isoS(now - 10000), direction: 'in', caller: '101', callee: '102' }) });
  assert.equal(res.status, 201, await res.text());
  await apiSend(page, 'DELETE', '/tokens/' + mine.id);
  noProblems(page);
  await page.context().close();
});

test('an officer (audit only) starts at its first menu entry and sees the exports it may not download', async () => {
  const admin = await as(browser, 'admin');
  await apiSend(admin, 'POST', '/users', { name: 'rv-off', role: 'officer', password: PASSWORD });
  // an admin's finished export, of hall-1's newest stored segment
  const now = Date.now();
  const { segments } = await apiGet(admin, `/sources/hall-1/segments?from=${isoS(now - 600e3)}&to=${isoS(now)}`);
  const seg = segments.filter((x) => x.end).at(-1);
  const job = await apiSend(admin, 'POST', '/exports', { sources: ['hall-1'], from: seg.start, to: seg.end,
    case: 'rv-officer', reason: 'проверка' });
  for (const deadline = Date.now() + 30000; (await apiGet(admin, '/exports/' + job.id)).state !== 'done';) {
    assert.ok(Date.now() < deadline, 'the export is done');
    await new Promise((r) => setTimeout(r, 200));
  }
  await admin.context().close();

  // after the login: the first page of the menu (exports, then the audit log)
  const page = await as(browser, 'rv-off');
  assert.equal(new URL(page.url()).pathname, '/exports');
  assert.equal(await page.getAttribute('nav ul.menu a', 'href'), '/exports');
  assert.equal(await page.locator('nav a[href="/admin/audit"]').count(), 1, 'the audit log in the menu');
  await page.waitForSelector('h1:has-text("Выгрузки")');
  const row = page.locator(`main tr[data-id="${job.id}"]`);
  await row.waitFor();
  assert.equal(await row.locator('a, button').count(), 0, 'neither download nor delete (the API refuses both)');
  // the brand link ("/") leads there too
  await go(page, '/admin/audit');
  await page.click('nav a.brand');
  await page.waitForURL((u) => u.pathname === '/exports');
  await ready(page);
  noProblems(page);
  await page.context().close();
});

test('API errors are said in Russian: a known code in its own words, any other named in a general sentence', async () => {
  const page = await as(browser, 'inv');
  await go(page, '/holds');
  // the end before the start: the server answers 400 invalid_range
  const from = await page.inputValue('input[name=from]'), to = await page.inputValue('input[name=to]');
  await page.fill('input[name=from]', to);
  await page.fill('input[name=to]', from);
  await page.fill('input[name=case]', 'rv-backwards');
  await page.fill('input[name=reason]', 'проверка');
  await page.check('input[name=sources][value=hall-1]');
  const [res] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'),
    page.click('form button[type=submit]')]);
  assert.equal(res.status(), 400);
  assert.equal((await res.json()).error.code, 'invalid_range');
  await page.waitForSelector('main .msg.error:has-text("Неверный период: начало должно быть раньше конца.")');
  // a code without its own sentence (the same module the page uses)
  const text = await page.evaluate(async () => {
    const src = document.querySelector('script[type=module]').src.replace(/app\.js$/, 'api.js');
    return (await import(src)).errorText('some_new_code');
  });
  assert.equal(text, 'Сервер не выполнил запрос (код ошибки: some_new_code).');
  page.problems = page.problems.filter((p) => !/status of 400/.test(p)); // the answer provoked here
  noProblems(page);
  await page.context().close();
});

test('a call page shows where the announcement starts and how sure the check is', async () => {
  // ann-1 plays the suite's reference announcement 1 s into every 20 s:
  // a call over its last 30 s holds one whole, starting within 20 s
  const now = Date.now();
  const res = await fetch(BASE + '/api/v1/calls', { method: 'POST', headers: { Authorization: 'Bearer ' + process.env.VIGIL_PBX_TOKEN,
    'Content-Type': 'application/json' }, body: JSON.stringify({ call_id: 'rv-announced', source: 'ann-1',
    start: isoS(now - 33000), end: isoS(now - 3000), direction: 'in', caller: '101', callee: '102' }) });
  const body = await res.text();
  assert.equal(res.status, 201, body);
  const { id } = JSON.parse(body);
  const page = await as(browser, 'admin');
  let ann = null;
  for (const deadline = Date.now() + 60000; !(ann = (await apiGet(page, '/calls/' + id)).announcement);) {
    assert.ok(Date.now() < deadline, 'the call is checked');
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(ann.state, 'present', JSON.stringify(ann));
  await go(page, '/calls/' + id);
  await page.waitForSelector('main dl');
  const text = await page.textContent('main');
  const m = /есть, с (\d+(?:,\d)?) с, уверенность (\d(?:,\d{1,2})?)/.exec(text);
  assert.ok(m, 'the detail in ' + text);
  const num = (x) => Number(x.replace(',', '.'));
  assert.ok(Math.abs(num(m[1]) - ann.offset_s) <= 0.051, `offset ${m[1]} of ${ann.offset_s}`);
  assert.ok(Math.abs(num(m[2]) - ann.score) <= 0.0051, `score ${m[2]} of ${ann.score}`);
  noProblems(page);
  await page.context().close();
});

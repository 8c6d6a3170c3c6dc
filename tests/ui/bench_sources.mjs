// A measurement, not a test (bench/bench_ui.py runs it): from the login's
// answer to the sources page showing every one of N rows with the focus on
// its heading, in headless chromium on loopback. Prints one JSON line.
import { launch, newPage, BASE, PASSWORD } from './helpers.js';

const n = Number(process.argv[2] || 100);
const rounds = Number(process.argv[3] || 5);
const browser = await launch();
const times = [];
const logins = [];
for (let i = 0; i < rounds; i++) {
  const page = await newPage(browser);
  await page.goto(BASE + '/login');
  await page.waitForSelector('body[data-ready="1"]');
  await page.fill('input[name=user]', 'admin');
  await page.fill('input[name=password]', PASSWORD);
  const t0 = Date.now();
  let t1 = 0;
  page.on('response', (r) => { if (r.url().endsWith('/api/v1/login')) t1 = Date.now(); });
  await page.click('button[type=submit]');
  await page.waitForFunction((k) => document.querySelectorAll('main tbody tr').length === k &&
    document.activeElement && document.activeElement.tagName === 'H1', n, { polling: 'raf' });
  const t2 = Date.now();
  times.push(t2 - t1);
  logins.push(t1 - t0);
  await page.context().close();
}
await browser.close();
times.sort((a, b) => a - b);
logins.sort((a, b) => a - b);
// after_login: from the login's answer to the page interactive (the goal);
// login: the POST itself (Argon2id), reported apart
console.log(JSON.stringify({ sources: n, rounds, median_ms: times[Math.floor(rounds / 2)],
  max_ms: times[rounds - 1], login_median_ms: logins[Math.floor(rounds / 2)], all_ms: times }));

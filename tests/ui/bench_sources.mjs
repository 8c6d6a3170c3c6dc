// A measurement, not a test (bench/bench_ui.py runs it): from pressing
// "sign in" to the sources page showing every one of N rows, in headless
// chromium on loopback. Prints one JSON line.
import { launch, newPage, BASE, PASSWORD } from './helpers.js';

const n = Number(process.argv[2] || 100);
const rounds = Number(process.argv[3] || 5);
const browser = await launch();
const times = [];
for (let i = 0; i < rounds; i++) {
  const page = await newPage(browser);
  await page.goto(BASE + '/login');
  await page.waitForSelector('body[data-ready="1"]');
  await page.fill('input[name=user]', 'admin');
  await page.fill('input[name=password]', PASSWORD);
  const t0 = Date.now();
  await page.click('button[type=submit]');
  await page.waitForFunction((k) => document.querySelectorAll('main tbody tr').length === k &&
    document.activeElement && document.activeElement.tagName === 'H1', n, { polling: 'raf' });
  times.push(Date.now() - t0);
  await page.context().close();
}
await browser.close();
times.sort((a, b) => a - b);
console.log(JSON.stringify({ sources: n, rounds, median_ms: times[Math.floor(rounds / 2)], max_ms: times[rounds - 1], all_ms: times }));

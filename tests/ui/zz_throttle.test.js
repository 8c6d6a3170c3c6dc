// Last, because it blocks logins from this address for a while: failed
// logins are throttled and the login page says so in words.
import { test, before, after } from 'node:test';
import { launch, newPage, ready, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('throttled login is explained', async () => {
  const page = await newPage(browser);
  await page.goto(BASE + '/login');
  await ready(page);
  for (let i = 0; i < 8; i++) {
    await page.fill('input[name=user]', 'locked');
    await page.fill('input[name=password]', 'wrong-password-' + i);
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.querySelector('[role=alert]').textContent !== '' &&
      !document.querySelector('button[type=submit]').disabled);
    if (await page.locator('[role=alert]:has-text("Слишком много неудачных попыток")').count()) break;
    await page.evaluate(() => { document.querySelector('[role=alert]').textContent = ''; });
  }
  await page.waitForSelector('[role=alert]:has-text("Слишком много неудачных попыток")');
  await page.context().close();
});

// The signed-out page in Chromium against the real gateway: only the sign-in form shows, it has no
// serious accessibility problem, and a throttled sign-in says when to try again.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { accessibilityProblems, launchChromium, ROOT, screenshot, startGateway, stopGateway, tempDir } from './harness.mjs';

const WAIT = { timeout: 20000 };
const env = { errors: [] };

async function signedOutPage(contextOptions = {}) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
  const page = await context.newPage();
  page.on('pageerror', (error) => env.errors.push(error.message));
  await page.goto(`${env.gateway.base}/`);
  await page.locator('#sign-in').waitFor(WAIT);
  return { context, page };
}

describe('the signed-out page in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-signin-');
    env.gateway = await startGateway({ dataDir: join(env.dir, 'data'), usersFile: join(ROOT, 'tests/fixtures/web-users.toml') });
    env.browser = await launchChromium();
  });

  after(async () => {
    await env.browser?.close();
    await stopGateway(env.gateway);
  });

  test('shows the sign-in form and nothing of the app', async () => {
    const { context, page } = await signedOutPage();
    assert.equal(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), true);
    for (const name of ['Contacts', 'Add a contact', 'Who watches me']) {
      assert.equal(await page.getByRole('heading', { name }).count(), 0, `no “${name}” under the form`);
    }
    for (const name of ['Update', 'Search', 'Add group', 'Sign out']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `no “${name}” button`);
    }
    assert.equal(await page.locator('#app').isVisible(), false);
    assert.equal(await page.locator('#app').evaluate((el) => getComputedStyle(el).display), 'none', 'hidden wins over the grid layout');
    await screenshot(page, 'signin-1-signed-out');
    await context.close();
  });

  test('axe finds no serious accessibility problem on the signed-out page', async () => {
    const { context, page } = await signedOutPage({ bypassCSP: true });
    assert.deepEqual(await accessibilityProblems(page), []);
    await context.close();
  });

  test('a throttled sign-in says when to try again, from Retry-After', async () => {
    const { context, page } = await signedOutPage();
    const attempt = async () => {
      const reply = page.waitForResponse((r) => r.url().endsWith('/forms/logon.html'));
      await page.getByLabel('User', { exact: true }).fill('erin@example.com');
      await page.getByLabel('Password', { exact: true }).fill('wrong');
      await page.getByRole('button', { name: 'Sign in' }).click();
      return reply;
    };
    // Wrong passwords until the gateway's sign-in limit (a handful, by default) refuses the next one.
    let throttled = await attempt();
    for (let failures = 0; throttled.status() === 401 && failures < 10; failures += 1) {
      await page.locator('#sign-in-error', { hasText: 'Wrong user or password.' }).waitFor(WAIT);
      await page.getByRole('button', { name: 'Sign in' }).and(page.locator(':enabled')).waitFor(WAIT);
      throttled = await attempt();
    }
    assert.equal(throttled.status(), 429);
    const error = page.locator('#sign-in-error', { hasText: 'Too many sign-in attempts.' });
    await error.waitFor(WAIT);
    const seconds = Number((await throttled.allHeaders())['retry-after']);
    if (Number.isInteger(seconds)) {
      const text = await error.textContent();
      assert.match(text, /Try again in \d+ (seconds?|minutes?|hours?) \(at \d{1,2}:\d\d:\d\d( [AP]M)?\)\./);
      const shown = Number(/in (\d+) minute/.exec(text)?.[1] ?? Number.NaN);
      if (seconds >= 90) assert.equal(shown, Math.ceil(seconds / 60), text);
      if (seconds >= 10) assert.equal(await page.getByRole('button', { name: 'Sign in' }).isDisabled(), true, 'until then the button waits');
    }
    await screenshot(page, 'signin-2-throttled');
    await context.close();
  });

  test('no script errors', () => {
    assert.deepEqual(env.errors, []);
  });
});

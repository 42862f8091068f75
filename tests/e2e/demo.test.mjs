// `serve --demo` in Chromium: the first sign-in shows a realistic contact list with live presence
// at once — the team as a group, colleagues, a favourite, one external contact, team rights — and
// the rich presence the viewer's level allows (in a meeting, out of office, the next appointment).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launchChromium, screenshot, startGateway, stopGateway, tempDir } from './harness.mjs';

const WAIT = { timeout: 20000 };
const env = { errors: [] };

async function signIn(user) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (error) => env.errors.push(`${user}: ${error.message}`));
  await page.goto(`${env.gateway.base}/`);
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill('demo');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor(WAIT);
  return { context, page };
}

const section = (page, name) => page.locator('#groups section', { has: page.locator('h3', { hasText: name }) });
const row = (page, group, uri) => section(page, group).locator(`li.contact[data-uri="${uri}"]`);

describe('the demo organisation in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-demo-');
    env.gateway = await startGateway({ dataDir: join(env.dir, 'data'), demo: true });
    env.browser = await launchChromium();
  });

  after(async () => {
    await env.browser?.close();
    await stopGateway(env.gateway);
  });

  test('Alice’s first sign-in shows her team, colleagues and a partner with live presence', async () => {
    const { context, page } = await signIn('alice@example.com');
    const expected = [
      ['R&D team', 'sip:bob@example.com', 'available'],
      ['R&D team', 'sip:carol@example.com', 'busy'],
      ['R&D team', 'sip:ivan@example.com', 'dnd'],
      ['Colleagues', 'sip:erin@example.com', 'brb'],
      ['Colleagues', 'sip:frank@example.com', 'busy'],
      ['Favourites', 'sip:bob@example.com', 'available'],
      ['Other contacts', 'sip:oscar@partner.example.org', 'available'],
    ];
    for (const [group, uri, presence] of expected) await row(page, group, uri).and(page.locator(`[data-presence="${presence}"]`)).waitFor(WAIT);
    const headings = await page.locator('#groups h3').allTextContents();
    assert.deepEqual(headings, ['R&D team', 'Colleagues', 'Favourites', 'Other contacts']);
    const bob = row(page, 'R&D team', 'sip:bob@example.com');
    assert.equal(await bob.locator('.note').textContent(), 'Ask me about the build server');
    assert.equal(await bob.getByLabel('Access level for Bob Builder').inputValue(), 'team', 'teammates see each other at Team');
    assert.equal(await row(page, 'R&D team', 'sip:carol@example.com').locator('.status-text').textContent(), 'Code review');
    await row(page, 'Colleagues', 'sip:frank@example.com').locator('.activity', { hasText: 'In a meeting' }).waitFor(WAIT);
    assert.equal(await row(page, 'Colleagues', 'sip:dave@example.com').count(), 1);
    assert.equal(await page.locator('#groups li[data-uri="sip:mallory@partner.example.org"]').count(), 0, 'not the contractor Alice blocks');
    await screenshot(page, 'demo-1-alice');
    await context.close();
  });

  test('the rich presence the level allows: out of office with its note, the next appointment’s time', async () => {
    const dave = await signIn('dave@example.com');
    const grace = row(dave.page, 'Colleagues', 'sip:grace@example.com');
    await grace.locator('.activity', { hasText: 'Out of office' }).waitFor(WAIT);
    assert.equal(await grace.getAttribute('data-presence'), 'away');
    assert.equal(await grace.locator('.note').textContent(), 'Out of office: Visiting customers in Munich, back on Monday');
    await screenshot(dave.page, 'demo-2-dave');
    await dave.context.close();

    const heidi = await signIn('heidi@example.com');
    const judy = row(heidi.page, 'Management', 'sip:judy@example.com');
    await judy.locator('.next', { hasText: 'Next:' }).waitFor(WAIT);
    assert.match(await judy.locator('.next').textContent(), /^Next: ([A-Z][a-z]{1,3}\.? )?\d{1,2}:\d\d( [AP]M)?$/, 'the time (and the weekday once it is tomorrow); the subject is for Personal only');
    await screenshot(heidi.page, 'demo-3-heidi');
    await heidi.context.close();
  });

  test('no script errors', () => {
    assert.deepEqual(env.errors, []);
  });
});

// The web app and the presence badge in Chromium against the real gateway: two browser contexts
// are two people. Every scenario saves a screenshot under test-artifacts/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { CwaClient, Availability } from '../../static/cwa-client.js';
import { launchChromium, ROOT, screenshot, startGateway, startSite, stopGateway, tempDir, writeConfig } from './harness.mjs';

const WAIT = { timeout: 20000 };
const BOB = 'sip:bob@example.com';
const ALICE = 'sip:alice@example.com';
const RED = 'rgb(209, 52, 56)';
const GREEN = 'rgb(46, 158, 68)';
const GREY = 'rgb(154, 160, 166)';

const env = { errors: [] };

async function openApp(user, viewport = { width: 1280, height: 900 }) {
  const context = await env.browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', (error) => env.errors.push(`${user}: ${error.message}`));
  await page.goto(`${env.gateway.base}/`);
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill('pw');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor(WAIT);
  await page.locator('#my-dot:not(.offline)').waitFor(WAIT); // the session's first events arrived
  return { context, page };
}

const contact = (page, uri) => page.locator(`#groups li.contact[data-uri="${uri}"]`);
const withPresence = (page, uri, cls) => page.locator(`#groups li.contact[data-uri="${uri}"][data-presence="${cls}"]`);
const dotColour = (locator) => locator.locator('.dot').evaluate((el) => getComputedStyle(el).backgroundColor);

async function addByDirectorySearch(page, query, displayName, uri) {
  await page.getByLabel('Name or e-mail').fill(query);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('button', { name: `Add ${displayName}` }).click();
  await contact(page, uri).waitFor(WAIT);
}

async function setStatus(page, label) {
  await page.getByLabel('My status').selectOption({ label });
  await page.locator('#status-message', { hasText: 'Saved.' }).waitFor(WAIT);
}

describe('the web app in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-');
    env.site = await startSite((path) => (path === '/' ? badgePage(env.gateway.base) : null));
    const configFile = writeConfig(env.dir, [`cors_origins = ["${env.site.origin}"]`, 'hold_seconds = 20']);
    env.start = (listen) => startGateway({ dataDir: join(env.dir, 'data'), usersFile: join(ROOT, 'tests/fixtures/web-users.toml'), configFile, listen });
    env.gateway = await env.start();
    env.browser = await launchChromium();
    env.alice = await openApp('alice@example.com');
    env.bob = await openApp('bob@example.com');
  });

  after(async () => {
    await env.browser?.close();
    await stopGateway(env.gateway);
    env.site?.server.close();
  });

  test('Bob sets Busy and Alice’s list turns red with “Busy”', async () => {
    const { page } = env.alice;
    await addByDirectorySearch(page, 'Bob', 'Bob Builder', BOB);
    await withPresence(page, BOB, 'available').waitFor(WAIT);
    assert.equal(await dotColour(contact(page, BOB)), GREEN);

    await setStatus(env.bob.page, 'Busy');
    await withPresence(page, BOB, 'busy').waitFor(WAIT);
    assert.equal(await contact(page, BOB).locator('.status').textContent(), 'Busy');
    assert.equal(await dotColour(contact(page, BOB)), RED);
    await screenshot(page, '1-bob-busy-seen-by-alice');
  });

  test('Bob’s note and status text appear for Alice', async () => {
    const { page } = env.bob;
    await page.getByLabel('Status text').fill('In the lab');
    await page.getByLabel('Note').fill('Coffee break until 3');
    await page.getByRole('button', { name: 'Update' }).click();
    const row = contact(env.alice.page, BOB);
    await row.locator('.note', { hasText: 'Coffee break until 3' }).waitFor(WAIT);
    assert.equal(await row.locator('.status-text').textContent(), 'In the lab');
    await row.getByText('Details').click();
    await row.locator('dd', { hasText: '+4989123457' }).waitFor(WAIT); // Company level: the work phone…
    assert.equal(await row.locator('dd', { hasText: '+49170123457' }).count(), 0, '…but not the mobile');
    await screenshot(env.alice.page, '2-bob-note-seen-by-alice');
  });

  test('Alice blocks Bob and Bob’s view of Alice turns grey', async () => {
    await addByDirectorySearch(env.bob.page, 'alice', 'Alice Example', ALICE);
    await withPresence(env.bob.page, ALICE, 'available').waitFor(WAIT);
    const watcher = env.alice.page.locator(`#watcher-list li[data-uri="${BOB}"]`);
    await watcher.waitFor(WAIT); // Bob now watches Alice

    await contact(env.alice.page, BOB).getByLabel('Access level').selectOption({ label: 'Blocked' });
    await withPresence(env.bob.page, ALICE, 'offline').waitFor(WAIT);
    const seen = contact(env.bob.page, ALICE);
    assert.equal(await dotColour(seen), GREY);
    assert.equal(await seen.locator('.status').textContent(), 'Offline');
    assert.equal(await contact(env.alice.page, BOB).getByLabel('Access level').inputValue(), 'blocked');
    await screenshot(env.bob.page, '3-alice-blocked-bob');

    await contact(env.alice.page, BOB).getByLabel('Access level').selectOption({ label: 'Default' });
    await withPresence(env.bob.page, ALICE, 'available').waitFor(WAIT);
  });

  test('a dropped server shows the reconnecting state and recovers without losing the last change', async () => {
    const address = env.gateway.address;
    await stopGateway(env.gateway); // every connection drops, every ticket and session is gone
    for (const { page } of [env.alice, env.bob]) await page.locator('#connection.lost', { hasText: 'Connection lost' }).waitFor(WAIT);
    assert.equal(await contact(env.alice.page, BOB).getAttribute('data-presence'), 'busy', 'the last known state stays on screen');
    await screenshot(env.alice.page, '4-connection-lost');

    // A change made while the connection is down goes out once it is back.
    await env.alice.page.getByLabel('Note').fill('Written while offline');
    await env.alice.page.getByRole('button', { name: 'Update' }).click();

    env.gateway = await env.start(address);
    for (const { page } of [env.alice, env.bob]) await page.locator('#connection.restored').waitFor(WAIT);
    await withPresence(env.alice.page, BOB, 'busy').waitFor(WAIT);
    await contact(env.alice.page, BOB).locator('.note', { hasText: 'Coffee break until 3' }).waitFor(WAIT);
    await contact(env.bob.page, ALICE).locator('.note', { hasText: 'Written while offline' }).waitFor(WAIT);
    await screenshot(env.alice.page, '5-connection-restored');
  });

  test('a reload resumes the same session', async () => {
    const { page } = env.alice;
    const sid = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('cwa-client:same-origin')).sid);
    const before = await sid();
    await page.reload();
    await withPresence(page, BOB, 'busy').waitFor(WAIT);
    assert.equal(await sid(), before);
    assert.equal(await page.locator('#sign-in').isHidden(), true);
  });

  test('a badge on another origin shows live presence through CORS', async () => {
    const page = await env.alice.context.newPage(); // signed in to the gateway: its cookie is sent
    const sessions = [];
    page.on('request', (r) => r.method() === 'POST' && (r.postData() ?? '').includes('<initiateSession') && sessions.push(r.url()));
    page.on('pageerror', (error) => env.errors.push(`badge page: ${error.message}`));
    await page.goto(`${env.site.origin}/`);
    const badge = (uri, cls) => page.locator(`presence-badge[uri="${uri}"][data-presence="${cls}"]`);
    const bob = page.locator(`presence-badge[uri="${BOB}"]`).first();
    await badge(BOB, 'busy').first().waitFor(WAIT);
    assert.equal(await badge(BOB, 'busy').count(), 2, 'every badge of a uri shows it');
    await badge('sip:carol@example.com', 'offline').waitFor(WAIT);
    assert.match(await bob.evaluate((el) => el.shadowRoot.textContent), /Bob Builder/);
    assert.equal(await bob.evaluate((el) => getComputedStyle(el.shadowRoot.querySelector('.dot')).backgroundColor), RED);

    await setStatus(env.bob.page, 'Available');
    await badge(BOB, 'available').first().waitFor(WAIT);
    const carol = await openApp('carol@example.com');
    await setStatus(carol.page, 'Do not disturb');
    await badge('sip:carol@example.com', 'dnd').waitFor(WAIT);
    assert.equal(sessions.length, 1, 'all badges of a page share one session');
    assert.equal(new URL(sessions[0]).origin, env.gateway.base);
    await screenshot(page, '6-badges-on-another-origin');
    await carol.context.close();
  });

  test('the app fits a phone-sized screen', async () => {
    const phone = await openApp('dave@example.com', { width: 390, height: 844 });
    await addByDirectorySearch(phone.page, 'Bob', 'Bob Builder', BOB);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
    await screenshot(phone.page, '7-phone');
    await contact(phone.page, BOB).getByRole('button', { name: 'Remove' }).click();
    await contact(phone.page, BOB).waitFor({ state: 'detached', ...WAIT });
    await phone.page.getByText('No contacts yet').waitFor(WAIT);
    await phone.context.close();
  });

  test('every presence colour in one list (the README screenshot)', async () => {
    const others = {
      'carol@example.com': { availability: Availability.DO_NOT_DISTURB, text: 'Deep work' },
      'dave@example.com': { availability: Availability.AWAY, note: 'Back on Monday' },
      'erin@example.com': { availability: Availability.BE_RIGHT_BACK },
    };
    const clients = [];
    for (const [user, presence] of Object.entries(others)) {
      const client = new CwaClient({ server: env.gateway.base, DOMParser, storage: null, isUserActive: () => true });
      await client.signIn(user, 'pw'); // the same library, from node, against the same server
      await client.start();
      await client.publishPresence(presence);
      clients.push(client);
    }
    const { page } = env.alice;
    await page.getByLabel('New group').fill('Design team');
    await page.getByRole('button', { name: 'Add group' }).click();
    await page.locator('#groups h3', { hasText: 'Design team' }).waitFor(WAIT);
    for (const [query, name, uri] of [['Carol', 'Carol Chen', 'sip:carol@example.com'], ['Dave', 'Dave Dunn', 'sip:dave@example.com'], ['Erin', 'Erin Evans', 'sip:erin@example.com'], ['Frank', 'Frank Fischer', 'sip:frank@example.com']]) {
      await addByDirectorySearch(page, query, name, uri);
    }
    for (const uri of ['sip:carol@example.com', 'sip:erin@example.com']) {
      await contact(page, uri).getByLabel('Group').selectOption({ label: 'Design team' });
      await page.locator(`#groups section:has(h3:text("Design team")) li[data-uri="${uri}"]`).waitFor(WAIT);
    }
    await setStatus(env.bob.page, 'Busy');
    const expected = { 'sip:bob@example.com': 'busy', 'sip:carol@example.com': 'dnd', 'sip:dave@example.com': 'away', 'sip:erin@example.com': 'brb', 'sip:frank@example.com': 'offline' };
    for (const [uri, cls] of Object.entries(expected)) await withPresence(page, uri, cls).waitFor(WAIT);
    const style = (uri) => contact(page, uri).locator('.dot').evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).backgroundImage]);
    assert.equal((await style('sip:dave@example.com'))[0], 'rgb(242, 200, 17)', 'absent is yellow');
    assert.equal((await style('sip:erin@example.com'))[0], 'rgb(242, 200, 17)');
    assert.equal((await style('sip:frank@example.com'))[0], GREY);
    const dnd = (await style('sip:carol@example.com'))[1];
    assert.match(dnd, /linear-gradient\(rgb\(209, 52, 56\) 38%, rgb\(255, 255, 255\) 38%, rgb\(255, 255, 255\) 62%, rgb\(209, 52, 56\) 62%\)/, 'do not disturb: red with a white stripe');
    assert.equal(await contact(page, 'sip:carol@example.com').locator('.status').textContent(), 'Do not disturb');
    assert.equal(await contact(page, 'sip:carol@example.com').locator('.status-text').textContent(), 'Deep work');
    await contact(page, BOB).getByText('Details').click();
    await screenshot(page, '8-overview');
    await Promise.all(clients.map((c) => c.stop()));

    // Groups can be renamed and deleted; the contacts of a deleted group stay, in "Other contacts".
    const section = (name) => page.locator('#groups section', { has: page.locator('h3', { hasText: name }) });
    await section('Design team').getByText('Edit group').click();
    await section('Design team').getByLabel('New group name').fill('Designers');
    await section('Design team').getByRole('button', { name: 'Rename' }).click();
    await section('Designers').locator('li[data-uri="sip:carol@example.com"]').waitFor(WAIT);
    await section('Designers').getByRole('button', { name: 'Delete group' }).click();
    await section('Designers').waitFor({ state: 'detached', ...WAIT });
    await section('Other contacts').locator('li[data-uri="sip:carol@example.com"]').waitFor(WAIT);
  });

  test('no script errors on any page', () => {
    assert.deepEqual(env.errors, []);
  });
});

function badgePage(gatewayBase) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Intranet</title>
<script type="module" src="${gatewayBase}/presence-badge.js"></script>
<style>body { font: 16px system-ui, sans-serif; margin: 24px; } li { margin: 8px 0; }</style></head>
<body><h1>Team directory</h1>
<ul>
  <li><presence-badge uri="${BOB}"></presence-badge> — site manager</li>
  <li><presence-badge uri="sip:carol@example.com"></presence-badge> — design</li>
</ul>
<p>Ask <presence-badge uri="${BOB}">Bob</presence-badge> about the building.</p>
</body></html>`;
}

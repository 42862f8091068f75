// The web app and the presence badge in Chromium against the real gateway: two browser contexts
// are two people. Every scenario saves a screenshot under test-artifacts/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { DOMParser } from '@xmldom/xmldom';
import { CwaClient, Availability } from '../../static/cwa-client.js';
import { accessibilityProblems, launchChromium, ROOT, screenshot, startGateway, startSite, stopGateway, tempDir, writeConfig } from './harness.mjs';

const WAIT = { timeout: 20000 };
const BOB = 'sip:bob@example.com';
const ALICE = 'sip:alice@example.com';
const RED = 'rgb(209, 52, 56)';
const GREEN = 'rgb(46, 158, 68)';
const GREY = 'rgb(154, 160, 166)';

const SOURCE_TOKEN = 'e2e-source-token-0123456789';
const env = { errors: [] };

/** Reports a source of `uri` through the JSON API, as a PBX or calendar connector would. */
async function report(uri, source, body) {
  const reply = await fetch(`${env.gateway.base}/api/v1/users/${encodeURIComponent(uri)}/sources/${source}`, {
    method: body ? 'PUT' : 'DELETE',
    headers: { Authorization: `Bearer ${SOURCE_TOKEN}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  assert.ok(reply.ok, `${source}: HTTP ${reply.status} ${await reply.text()}`);
}

async function openApp(user, viewport = { width: 1280, height: 900 }, contextOptions = {}) {
  const context = await env.browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  page.on('pageerror', (error) => env.errors.push(`${user}: ${error.message}`));
  await page.goto(`${env.gateway.base}/`);
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill('pw');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor(WAIT);
  await page.locator('#my-dot:not(.unknown)').waitFor(WAIT); // the session's first events arrived
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

/** Answers the confirmation dialog with the button named `answer`. */
async function answer(page, answer) {
  const dialog = page.getByRole('dialog');
  await dialog.waitFor(WAIT);
  await dialog.getByRole('button', { name: answer, exact: true }).click();
  await dialog.waitFor({ state: 'hidden', ...WAIT });
}

async function setStatus(page, label) {
  await page.getByLabel('My status').selectOption({ label });
  await page.locator('#status-message', { hasText: 'Saved.' }).waitFor(WAIT);
}

describe('the web app in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-');
    env.site = await startSite((path) => (path === '/' ? badgePage(env.gateway.base) : null));
    const configFile = writeConfig(env.dir, [
      `cors_origins = ["${env.site.origin}"]`,
      'hold_seconds = 20',
      '[[api_tokens]]',
      'name = "connectors"',
      `token = "${SOURCE_TOKEN}"`,
      'role = "source"',
    ]);
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

    const level = contact(env.alice.page, BOB).getByLabel('Access level for Bob Builder');
    await level.selectOption({ label: 'Blocked' });
    assert.match(await env.alice.page.getByRole('dialog').textContent(), /Block Bob Builder\?/);
    await answer(env.alice.page, 'Cancel'); // asked first: cancelling changes nothing
    // The dialog's close event (which puts the old level back) is a task of its own, after the
    // dialog is hidden: wait for the select to read the old level again.
    await env.alice.page.waitForFunction((select) => select.value === '', await level.elementHandle(), WAIT);
    assert.equal(await level.inputValue(), '');
    assert.equal(await contact(env.bob.page, ALICE).getAttribute('data-presence'), 'available');
    await level.selectOption({ label: 'Blocked' });
    await answer(env.alice.page, 'Block');
    await withPresence(env.bob.page, ALICE, 'offline').waitFor(WAIT);
    const seen = contact(env.bob.page, ALICE);
    assert.equal(await dotColour(seen), GREY);
    assert.equal(await seen.locator('.status').textContent(), 'Offline');
    assert.equal(await contact(env.alice.page, BOB).getByLabel('Access level').inputValue(), 'blocked');
    await screenshot(env.bob.page, '3-alice-blocked-bob');

    await contact(env.alice.page, BOB).getByLabel('Access level').selectOption({ label: 'Default' });
    await withPresence(env.bob.page, ALICE, 'available').waitFor(WAIT);
  });

  test('two tabs: the form follows selfPresence and Update sends only what was touched', async () => {
    const first = env.bob.page;
    const second = await env.bob.context.newPage(); // same cookie, its own session
    second.on('pageerror', (error) => env.errors.push(`bob tab 2: ${error.message}`));
    await second.goto(`${env.gateway.base}/`);
    await second.locator('#app').waitFor(WAIT);
    const note = (page) => page.getByLabel('Note', { exact: true });
    await expectValue(note(second), 'Coffee break until 3');

    await note(first).fill('Lunch at 1');
    await first.getByRole('button', { name: 'Update' }).click();
    await expectValue(note(second), 'Lunch at 1'); // tab 2 follows
    await expectValue(second.getByLabel('My status'), '6500');

    await setStatus(second, 'Away'); // only the status: note and status text stay as tab 1 left them
    const row = contact(env.alice.page, BOB);
    await withPresence(env.alice.page, BOB, 'away').waitFor(WAIT);
    assert.equal(await row.locator('.note').textContent(), 'Lunch at 1');
    assert.equal(await row.locator('.status-text').textContent(), 'In the lab');
    await expectValue(first.getByLabel('My status'), '15500'); // and tab 1 follows tab 2

    await note(second).fill('Coffee break until 3'); // back to what the later tests expect
    await second.getByLabel('My status').selectOption({ label: 'Busy' });
    await second.locator('#status-message', { hasText: 'Saved.' }).waitFor(WAIT);
    await withPresence(env.alice.page, BOB, 'busy').waitFor(WAIT);
    await row.locator('.note', { hasText: 'Coffee break until 3' }).waitFor(WAIT);
    await expectValue(note(first), 'Coffee break until 3');
    await second.close();
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

    // Someone not signed in to the gateway sees "unknown", which looks unlike offline.
    const stranger = await env.browser.newContext();
    const outside = await stranger.newPage();
    outside.on('pageerror', (error) => env.errors.push(`badge page, signed out: ${error.message}`));
    await outside.goto(`${env.site.origin}/`);
    const unknown = outside.locator(`presence-badge[uri="${BOB}"][data-presence="unknown"]`).first();
    await unknown.waitFor(WAIT);
    const look = (badge) => badge.evaluate((el) => { const s = getComputedStyle(el.shadowRoot.querySelector('.dot')); return `${s.backgroundColor} ${s.borderTopStyle}`; });
    const offline = page.locator('presence-badge[uri="sip:carol@example.com"]');
    await setStatus(carol.page, 'Appear offline');
    await page.locator('presence-badge[uri="sip:carol@example.com"][data-presence="offline"]').waitFor(WAIT);
    assert.equal(await look(offline), `${GREY} none`);
    assert.equal(await look(unknown), 'rgba(0, 0, 0, 0) dashed');
    assert.match(await unknown.evaluate((el) => el.shadowRoot.textContent), /Presence unknown \(not signed in/);
    await screenshot(outside, '6b-badges-signed-out');
    await stranger.close();
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
    await contact(phone.page, BOB).getByRole('button', { name: 'Remove Bob Builder' }).click();
    await answer(phone.page, 'Cancel');
    assert.equal(await contact(phone.page, BOB).count(), 1, 'cancelled: Bob stays');
    await contact(phone.page, BOB).getByRole('button', { name: 'Remove Bob Builder' }).click();
    await answer(phone.page, 'Remove');
    await contact(phone.page, BOB).waitFor({ state: 'detached', ...WAIT });
    await phone.page.getByText('No contacts yet').waitFor(WAIT);
    assert.equal(await phone.page.getByRole('heading', { name: 'Other contacts' }).count(), 0, 'an empty “Other contacts” is hidden');
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
    const section = (name) => page.locator('#groups section', { has: page.locator('h3', { hasText: name }) });
    for (const [uri, name] of [['sip:carol@example.com', 'Carol Chen'], ['sip:erin@example.com', 'Erin Evans']]) {
      // Several groups per contact: first in both, then only in Design team.
      const row = section('Other contacts').locator(`li[data-uri="${uri}"]`);
      await row.locator('summary', { hasText: `Groups of ${name}` }).press('Enter'); // by keyboard
      await row.getByRole('checkbox', { name: 'Design team' }).check();
      await section('Design team').locator(`li[data-uri="${uri}"]`).waitFor(WAIT);
      assert.equal(await page.locator(`#groups li[data-uri="${uri}"]`).count(), 2, `${name} is listed in both groups`);
      await row.getByRole('checkbox', { name: 'Other contacts' }).uncheck();
      await row.waitFor({ state: 'detached', ...WAIT });
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
    await section('Design team').getByText('Edit group').click();
    await section('Design team').getByLabel('New name for Design team').fill('Designers');
    await section('Design team').getByRole('button', { name: 'Rename Design team' }).click();
    await section('Designers').locator('li[data-uri="sip:carol@example.com"]').waitFor(WAIT);
    await section('Designers').getByRole('button', { name: 'Delete group Designers' }).click();
    await answer(page, 'Delete group');
    await section('Designers').waitFor({ state: 'detached', ...WAIT });
    await section('Other contacts').locator('li[data-uri="sip:carol@example.com"]').waitFor(WAIT);
  });

  test('on the phone, in a meeting, out of office and the next appointment, from real sources', async () => {
    const { page } = env.alice;
    const ERIN = 'sip:erin@example.com';
    const erin = contact(page, ERIN);
    const call = { id: 'c1', state: 'connected', direction: 'incoming', external: true, partnerNumber: 'tel:+4930111222', line: 'tel:+498912345604' };
    await report(ERIN, 'pbx', { kind: 'phone', lines: [{ number: 'tel:+498912345604', state: 'in-service', dnd: false }], calls: [call] });
    await erin.locator('.activity.on-the-phone', { hasText: 'On the phone' }).waitFor(WAIT);
    assert.equal(await erin.getAttribute('data-presence'), 'busy');
    await report(ERIN, 'pbx', null);

    const FRANK = 'sip:frank@example.com';
    const frank = contact(page, FRANK);
    await report(FRANK, 'desktop', { kind: 'computer', state: 'logged-in' }); // signed in at his desk
    await withPresence(page, FRANK, 'available').waitFor(WAIT);
    const at = (minutes) => new Date(Date.now() + minutes * 60000).toISOString().replace(/\.\d+Z$/, 'Z');
    const appointments = [
      { id: 'now', start: at(-10), end: at(50), status: 'busy', subject: 'Budget', location: 'Room 2', private: false },
      { id: 'later', start: at(120), end: at(180), status: 'busy', subject: 'Review', location: 'Room 3', private: false },
    ];
    await report(FRANK, 'exchange', { kind: 'calendar', appointments });
    await frank.locator('.activity.in-a-meeting', { hasText: 'In a meeting' }).waitFor(WAIT);
    // Company level: the time only, no subject (with the weekday when it is tomorrow already).
    await frank.locator('.next', { hasText: /^Next: ([A-Z][a-z]{1,3}\.? )?\d{1,2}:\d\d( [AP]M)?$/ }).waitFor(WAIT);
    await screenshot(page, '10-phone-meeting');

    const trip = [{ id: 'trip', start: at(-60), end: at(3 * 1440), status: 'out-of-office', subject: 'Trip', location: 'Lyon', private: false }];
    await report(FRANK, 'exchange', { kind: 'calendar', appointments: trip, oofMessage: 'Back on Thursday' });
    await frank.locator('.activity.out-of-office', { hasText: 'Out of office' }).waitFor(WAIT);
    await frank.locator('.note', { hasText: 'Out of office: Back on Thursday' }).waitFor(WAIT);
    await report(FRANK, 'exchange', null);
    await report(FRANK, 'desktop', null);
    await withPresence(page, FRANK, 'offline').waitFor(WAIT);
  });

  test('my picture: uploaded from the app, shown to my contacts, removed again', async () => {
    const bob = env.bob.page;
    await bob.getByLabel('My picture').setInputFiles({ name: 'bob.png', mimeType: 'image/png', buffer: PNG });
    await bob.locator('#picture-message', { hasText: 'Picture saved.' }).waitFor(WAIT);
    await bob.locator('#my-avatar img').waitFor(WAIT);
    const seen = contact(env.alice.page, BOB).locator('.avatar img');
    await seen.waitFor(WAIT);
    await expectLoaded(seen);
    assert.match(await seen.getAttribute('src'), /^\/api\/v1\/users\/sip%3Abob%40example\.com\/image\?v=[0-9a-f]{64}$/);
    await screenshot(env.alice.page, '9-pictures');

    await bob.getByLabel('My picture').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') });
    await bob.locator('#picture-message.error', { hasText: 'The picture was not saved' }).waitFor(WAIT);

    await bob.getByRole('button', { name: 'Remove my picture' }).click();
    await answer(bob, 'Remove picture');
    await contact(env.alice.page, BOB).locator('.avatar img').waitFor({ state: 'detached', ...WAIT });
    assert.equal(await contact(env.alice.page, BOB).locator('.avatar').textContent(), 'BB', 'initials instead');
  });

  test('a contact whose presence is not known looks unknown, not offline', async () => {
    const client = new CwaClient({ server: env.gateway.base, DOMParser, storage: null, isUserActive: () => true });
    await client.signIn('alice@example.com', 'pw');
    await client.start();
    // In the list but not subscribed: the gateway sends no presence for it.
    await client.addContact({ uri: 'sip:nobody@elsewhere.example', name: 'Nobody Known', subscribed: false, groups: [1] });
    await client.stop();
    const { page } = env.alice;
    const unknown = withPresence(page, 'sip:nobody@elsewhere.example', 'unknown');
    await unknown.waitFor(WAIT);
    assert.match(await unknown.locator('.status').textContent(), /^Unknown/);
    const frank = contact(page, 'sip:frank@example.com');
    assert.equal(await frank.getAttribute('data-presence'), 'offline');
    const look = (row) => row.locator('.dot').evaluate((el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).borderStyle].join(' '));
    assert.notEqual(await look(unknown), await look(frank), 'unknown and offline look different');
    assert.equal(await look(frank), `${GREY} solid`);
  });

  test('the filter box narrows my contacts and hides emptied groups', async () => {
    const { page } = env.alice;
    const filter = page.getByLabel('Filter my contacts');
    await filter.fill('dave');
    await contact(page, BOB).waitFor({ state: 'hidden', ...WAIT });
    assert.equal(await contact(page, 'sip:dave@example.com').isVisible(), true);
    await filter.fill('zzz');
    await page.locator('#contacts-message', { hasText: 'No contact matches' }).waitFor(WAIT);
    assert.equal(await page.locator('#groups section:visible').count(), 0);
    await filter.fill('');
    await contact(page, BOB).waitFor({ state: 'visible', ...WAIT });
  });

  test('axe finds no serious accessibility problem in the signed-in app', async () => {
    const { context, page } = await openApp('alice@example.com', undefined, { bypassCSP: true });
    await contact(page, BOB).waitFor(WAIT);
    await contact(page, BOB).getByText('Details').click();
    assert.deepEqual(await accessibilityProblems(page), []);
    await contact(page, BOB).getByRole('button', { name: 'Remove Bob Builder' }).click();
    await page.getByRole('dialog').waitFor(WAIT);
    assert.deepEqual(await accessibilityProblems(page), [], 'with the confirmation open');
    await answer(page, 'Cancel');
    assert.equal(await contact(page, BOB).locator('[aria-label]').evaluateAll((els) => els.map((el) => el.getAttribute('aria-label'))).then((labels) => labels.sort().join('|')), 'Access level for Bob Builder|Remove Bob Builder');
    assert.equal(await contact(page, BOB).getAttribute('aria-label'), null, 'the row itself has no label hiding its content');
    await context.close();
  });

  test('no script errors on any page', () => {
    assert.deepEqual(env.errors, []);
  });
});

/** A 16×16 PNG of one colour, made here (chunks with their CRCs, the pixels deflated). */
const PNG = (() => {
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(16, 0);
  header.writeUInt32BE(16, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const line = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: 16 }, () => [26, 95, 180]).flat())]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: 16 }, () => line)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))]);
})();

async function expectValue(locator, value) {
  await locator.page().waitForFunction(([el, v]) => el.value === v, [await locator.elementHandle(), value], WAIT);
}

async function expectLoaded(img) {
  await img.page().waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle(), WAIT);
}

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

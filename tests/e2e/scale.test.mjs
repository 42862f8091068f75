// Rendering cost with 500 contacts, in Chromium against the real gateway: a presence change of one
// contact touches that contact's row and nothing else (DOM mutations are counted, not time).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { Availability, CwaClient } from '../../static/cwa-client.js';
import { launchChromium, ROOT, screenshot, startGateway, stopGateway, tempDir } from './harness.mjs';

const WAIT = { timeout: 60000 };
const BOB = 'sip:bob@example.com';
const CONTACTS = 500;
const env = { errors: [] };

function nodeClient() {
  return new CwaClient({ server: env.gateway.base, DOMParser, storage: null, isUserActive: () => true });
}

describe('500 contacts in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-scale-');
    env.gateway = await startGateway({ dataDir: join(env.dir, 'data'), usersFile: join(ROOT, 'tests/fixtures/web-users.toml') });
    env.browser = await launchChromium();
    // Frank's list: Bob and 499 people of another company, added over CWA like any client would.
    const frank = nodeClient();
    await frank.signIn('frank@example.com', 'pw');
    await frank.start();
    const uris = [BOB, ...Array.from({ length: CONTACTS - 1 }, (_, i) => `sip:person${String(i + 1).padStart(3, '0')}@example.net`)];
    for (let i = 0; i < uris.length; i += 50) {
      await Promise.all(uris.slice(i, i + 50).map((uri, j) => frank.addContact({ uri, name: uri === BOB ? 'Bob Builder' : `Person ${i + j}`, groups: [1], subscribed: true })));
    }
    await frank.stop();
    env.bob = nodeClient();
    await env.bob.signIn('bob@example.com', 'pw');
    await env.bob.start();
  });

  after(async () => {
    await env.bob?.stop();
    await env.browser?.close();
    await stopGateway(env.gateway);
  });

  test('one contact’s update touches one row', async () => {
    const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => env.errors.push(error.message));
    await page.goto(`${env.gateway.base}/`);
    await page.getByLabel('User', { exact: true }).fill('frank@example.com');
    await page.getByLabel('Password', { exact: true }).fill('pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator(`#groups li.contact[data-uri="${BOB}"][data-presence="available"]`).waitFor(WAIT);
    await page.waitForFunction((n) => document.querySelectorAll('#groups li.contact[data-presence="offline"]').length === n, CONTACTS - 1, WAIT);

    await page.evaluate(() => {
      const touched = (globalThis.touched = { rows: new Set(), outside: 0, records: 0 });
      new MutationObserver((records) => {
        for (const record of records) {
          touched.records += 1;
          const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
          const row = node?.closest('li.contact');
          if (row) touched.rows.add(row.dataset.uri);
          else touched.outside += 1;
        }
      }).observe(document.getElementById('groups'), { subtree: true, childList: true, attributes: true, characterData: true });
    });
    await env.bob.publishPresence({ availability: Availability.BUSY, note: 'Only my row changes' });
    await page.locator(`#groups li.contact[data-uri="${BOB}"][data-presence="busy"] .note`, { hasText: 'Only my row changes' }).waitFor(WAIT);
    const touched = await page.evaluate(() => ({ rows: [...globalThis.touched.rows], outside: globalThis.touched.outside, records: globalThis.touched.records }));
    assert.deepEqual(touched.rows, [BOB], 'only Bob’s row');
    assert.equal(touched.outside, 0, 'no list, section or heading rebuilt');
    assert.ok(touched.records > 0 && touched.records < 20, `a handful of changes (${touched.records})`);

    // A change to the list itself (Frank renames Bob from another device) also touches Bob's row only.
    await page.evaluate(() => Object.assign(globalThis.touched, { rows: new Set(), outside: 0, records: 0 }));
    const device = nodeClient();
    await device.signIn('frank@example.com', 'pw');
    await device.start();
    await device.updateContact({ uri: BOB, name: 'Bob B. Builder', groups: [1], subscribed: true });
    await device.stop();
    await page.locator(`#groups li.contact[data-uri="${BOB}"] .name`, { hasText: 'Bob B. Builder' }).waitFor(WAIT);
    const renamed = await page.evaluate(() => ({ rows: [...globalThis.touched.rows], outside: globalThis.touched.outside }));
    assert.deepEqual(renamed, { rows: [BOB], outside: 0 });
    await screenshot(page, 'scale-500-contacts');
    await context.close();
  });

  test('no script errors', () => {
    assert.deepEqual(env.errors, []);
  });
});

// A network drop between browser and gateway (a TCP relay that cuts every connection while the
// gateway keeps its sessions): the app says it lost the connection and, once the network is back,
// says so and sends what was queued at once — not when a held poll returns. The hold time here is
// far longer than any wait of the test, so waiting for a held poll would fail it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { CwaClient } from '../../static/cwa-client.js';
import { launchChromium, ROOT, screenshot, startGateway, startRelay, stopGateway, tempDir, writeConfig } from './harness.mjs';

const WAIT = { timeout: 20000 };
const HOLD_SECONDS = 55; // the most the gateway allows (proxies cut longer polls)
const env = { errors: [] };

describe('a network drop in Chromium', () => {
  before(async () => {
    env.dir = tempDir('pg-e2e-network-');
    const configFile = writeConfig(env.dir, [`hold_seconds = ${HOLD_SECONDS}`, 'session_timeout_seconds = 600']);
    env.gateway = await startGateway({ dataDir: join(env.dir, 'data'), usersFile: join(ROOT, 'tests/fixtures/web-users.toml'), configFile });
    env.relay = await startRelay(env.gateway.address);
    env.browser = await launchChromium();
  });

  after(async () => {
    await env.browser?.close();
    env.relay?.close();
    await stopGateway(env.gateway);
  });

  test('recovery is shown and queued commands go out at once, without waiting for a held poll', async () => {
    const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => env.errors.push(error.message));
    await page.goto(`${env.relay.base}/`);
    await page.getByLabel('User', { exact: true }).fill('erin@example.com');
    await page.getByLabel('Password', { exact: true }).fill('pw');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#my-dot.available').waitFor(WAIT);
    const sid = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('cwa-client:same-origin')).sid);
    const before = await sid();

    env.relay.drop();
    await page.locator('#connection.lost', { hasText: 'Connection lost' }).waitFor(WAIT);
    await page.getByLabel('Note', { exact: true }).fill('Typed during the outage');
    await page.getByRole('button', { name: 'Update' }).click();
    await page.locator('#status-message', { hasText: 'Saving…' }).waitFor(WAIT);
    await screenshot(page, 'network-1-lost');

    env.relay.restore();
    await page.locator('#connection.restored', { hasText: 'Connection restored' }).waitFor(WAIT);
    await page.locator('#status-message', { hasText: 'Saved.' }).waitFor(WAIT);
    assert.equal(await sid(), before, 'the same session: the gateway never noticed the drop');
    await screenshot(page, 'network-2-restored');

    const watcher = new CwaClient({ server: env.gateway.base, DOMParser, storage: null, isUserActive: () => true });
    await watcher.signIn('dave@example.com', 'pw');
    await watcher.start();
    await watcher.query(['sip:erin@example.com']); // the snapshot comes before the request's success
    assert.equal(watcher.model.users['sip:erin@example.com']?.note, 'Typed during the outage', 'the queued note reached the gateway');
    await watcher.stop();
    await context.close();
  });

  test('no script errors', () => {
    assert.deepEqual(env.errors, []);
  });
});

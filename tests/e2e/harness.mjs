// End-to-end harness: the real gateway binary on 127.0.0.1 (its address read from the line it
// prints), a tiny second-origin web server for the badge page, and Debian's Chromium driven by
// playwright-core. Nothing here waits by sleeping: readiness is a printed line, page state is
// waited for with Playwright's DOM waits.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const ARTIFACTS = join(ROOT, 'test-artifacts');
const BINARY = process.env.GATEWAY_BIN ?? join(ROOT, 'target/debug/presence-gateway');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts `presence-gateway serve` and resolves once it printed its address. */
export function startGateway({ dataDir, usersFile, configFile, listen = '127.0.0.1:0' }) {
  const args = ['serve', '--users', usersFile, '--data-dir', dataDir, '--listen', listen];
  if (configFile) args.push('--config', configFile);
  const child = spawn(BINARY, args, { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const match = /^presence-gateway listening on (http:\/\/\S+)$/.exec(line);
      if (match) resolvePromise({ child, base: match[1], address: match[1].replace('http://', '') });
    });
    child.on('exit', (code, signal) => reject(new Error(`the gateway exited (${code ?? signal}) before listening:\n${stderr}`)));
    child.on('error', reject);
  });
}

/** Stops a gateway: SIGKILL drops every connection at once, as a network failure would. */
export function stopGateway(gateway, signal = 'SIGKILL') {
  if (!gateway || gateway.child.exitCode !== null || gateway.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    gateway.child.once('exit', () => resolvePromise());
    gateway.child.kill(signal);
  });
}

/** Writes a config TOML holding `lines`. */
export function writeConfig(dir, lines) {
  const path = join(dir, 'gateway.toml');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** A web server of another origin; `page(path)` returns the HTML it serves. */
export function startSite(page) {
  const server = createServer((request, response) => {
    const html = page(new URL(request.url, 'http://site').pathname);
    response.writeHead(html ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    response.end(html ?? 'not found');
  });
  return new Promise((resolvePromise) => {
    server.listen(0, '127.0.0.1', () => resolvePromise({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

// End-to-end harness: the real gateway binary on 127.0.0.1 (its address read from the line it
// prints), a tiny second-origin web server for the badge page, and Debian's Chromium driven by
// playwright-core. Nothing here waits by sleeping: readiness is a printed line, page state is
// waited for with Playwright's DOM waits.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createTcpServer, connect } from 'node:net';
import { createRequire } from 'node:module';
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

/** Starts `presence-gateway serve` (with a users file, or `demo`) and resolves once it printed its address. */
export function startGateway({ dataDir, usersFile, configFile, listen = '127.0.0.1:0', demo = false }) {
  const args = ['serve', '--data-dir', dataDir, '--listen', listen];
  if (usersFile) args.push('--users', usersFile);
  if (demo) args.push('--demo');
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

/**
 * A TCP relay in front of the gateway, standing for the network between browser and server:
 * `drop()` cuts every connection and refuses new ones (the gateway keeps its sessions, as it does
 * when a laptop loses its Wi-Fi), `restore()` lets connections through again.
 */
export function startRelay(address) {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const sockets = new Set();
  let down = false;
  const server = createTcpServer((inbound) => {
    if (down) return inbound.destroy();
    const outbound = connect(port, host);
    const close = () => {
      sockets.delete(inbound);
      sockets.delete(outbound);
      inbound.destroy();
      outbound.destroy();
    };
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', close);
      socket.on('close', close);
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  return new Promise((resolvePromise) => {
    server.listen(0, '127.0.0.1', () =>
      resolvePromise({
        base: `http://127.0.0.1:${server.address().port}`,
        drop() {
          down = true;
          for (const socket of sockets) socket.destroy();
        },
        restore() {
          down = false;
        },
        close() {
          this.drop();
          server.close();
        },
      }),
    );
  });
}

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/**
 * axe-core's serious and critical findings on the page (WCAG 2 A/AA rules and best practices).
 * The page's context must bypass the CSP for the script to be injected.
 */
export async function accessibilityProblems(page) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => (await globalThis.axe.run(document, { resultTypes: ['violations'] })).violations);
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
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

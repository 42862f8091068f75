// @ts-check
// presence-badge.js — <presence-badge uri="sip:bob@example.com"></presence-badge> shows a live
// presence dot and name on any page. All badges of a page share one session with the gateway this
// script was loaded from (or the server given to configure()). Signing in: the gateway's ticket
// cookie when the person is signed in to the gateway's web app (same site), or signIn() below.
// Cross-origin pages need their origin in the gateway's `cors_origins`.
//
//   <script type="module" src="https://presence.example/presence-badge.js"></script>
//   <presence-badge uri="sip:bob@example.com"></presence-badge>
//   <presence-badge uri="sip:carol@example.com">Carol (text shown instead of the directory name)</presence-badge>

import { CwaClient, activityLabel, presenceClass, presenceLabel } from './cwa-client.js';

const settings = { server: new URL('.', import.meta.url).href.replace(/\/$/, '') };
let shared = null;

/**
 * Chooses the gateway before the first badge connects: `configure({server: 'https://…'})`.
 * @param {{server?: string}} [options]
 */
export function configure({ server } = {}) {
  if (shared) throw new Error('configure() must run before the first <presence-badge> connects');
  if (server) settings.server = String(server).replace(/\/$/, '');
}

/** Signs in explicitly (pages that are not on the gateway's site) and starts the shared session. */
export async function signIn(user, password) {
  const s = session(false);
  await s.started; // a start without a ticket may still be on its way to failing
  await s.client.signIn(user, password);
  if (!s.client.running) await startSession(s);
}

/** The shared session: one client, the count of badges per uri, what must be (un)subscribed. */
function session(start = true) {
  if (!shared) {
    const client = new CwaClient({ server: settings.server, keepCredentials: true, storageKey: `presence-badge:${settings.server}` });
    shared = { client, badges: new Set(), subscribed: new Set(), started: null, flushing: false };
    client.on('change', () => shared.badges.forEach((b) => b.render()));
    client.on('connection', (e) => {
      shared.badges.forEach((b) => b.render());
      if (e.state === 'connected') queueMicrotask(flush);
    });
    client.on('session', (e) => {
      if (!e.resumed) shared.subscribed.clear(); // subscriptions belong to a session
      queueMicrotask(flush);
    });
  }
  if (start && !shared.started) startSession(shared);
  return shared;
}

function startSession(s) {
  s.started = s.client.start().then(flush, () => {
    s.started = null; // not signed in: badges show "unknown" until signIn()
    s.badges.forEach((b) => b.render());
  });
  return s.started;
}

function wantedUris() {
  return new Set([...shared.badges].map((b) => b.uri).filter(Boolean));
}

/** Brings the session's subscriptions in line with the badges on the page (batched). */
async function flush() {
  if (!shared || shared.flushing || !['connected', 'connecting'].includes(shared.client.state) || !shared.client.sid) return;
  shared.flushing = true;
  try {
    const wanted = wantedUris();
    const add = [...wanted].filter((u) => !shared.subscribed.has(u));
    const drop = [...shared.subscribed].filter((u) => !wanted.has(u));
    add.forEach((u) => shared.subscribed.add(u));
    drop.forEach((u) => shared.subscribed.delete(u));
    if (add.length) await shared.client.subscribe(add).catch(() => add.forEach((u) => shared.subscribed.delete(u)));
    if (drop.length) await shared.client.unsubscribe(drop).catch(() => {});
  } finally {
    shared.flushing = false;
  }
  const again = wantedUris();
  if ([...again].some((u) => !shared.subscribed.has(u)) || [...shared.subscribed].some((u) => !again.has(u))) queueMicrotask(flush);
}

const CSS = `
:host { display: inline-flex; align-items: center; gap: 0.35em; vertical-align: baseline; }
.dot { width: 0.7em; height: 0.7em; border-radius: 50%; flex: none; background: #9aa0a6; box-shadow: 0 0 0 1px rgb(0 0 0 / 0.2); }
.available { background: #2e9e44; }
.busy { background: #d13438; }
.away, .brb { background: #f2c811; }
.inactive { background: linear-gradient(90deg, #2e9e44 50%, #f2c811 50%); }
.busy-idle { background: linear-gradient(90deg, #d13438 50%, #f2c811 50%); }
.dnd { background: linear-gradient(180deg, #d13438 38%, #fff 38%, #fff 62%, #d13438 62%); }
.offline { background: #9aa0a6; }
.unknown { background: transparent; box-sizing: border-box; border: 0.14em dashed #5f6670; box-shadow: none; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`;

function styleFor(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
    return null;
  }
  const style = document.createElement('style');
  style.textContent = CSS;
  return style;
}

export class PresenceBadge extends HTMLElement {
  static observedAttributes = ['uri'];

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    this.dot = Object.assign(document.createElement('span'), { className: 'dot unknown' });
    this.dot.setAttribute('part', 'dot');
    this.nameSlot = document.createElement('slot');
    const name = Object.assign(document.createElement('span'), { className: 'name' });
    name.setAttribute('part', 'name');
    name.append(this.nameSlot);
    this.status = Object.assign(document.createElement('span'), { className: 'sr' });
    const style = styleFor(root);
    root.append(...(style ? [style] : []), this.dot, name, this.status);
  }

  get uri() {
    return (this.getAttribute('uri') || '').trim().toLowerCase();
  }

  connectedCallback() {
    const s = session();
    s.badges.add(this);
    this.render();
    queueMicrotask(flush);
  }

  disconnectedCallback() {
    shared?.badges.delete(this);
    queueMicrotask(flush);
  }

  attributeChangedCallback() {
    if (!this.isConnected || !shared) return;
    this.render();
    queueMicrotask(flush);
  }

  render() {
    const client = shared?.client;
    const presence = client?.model.users[this.uri];
    const live = client && ['connected', 'connecting', 'reconnecting'].includes(client.state) && client.sid;
    const cls = presence && live ? presenceClass(presence.availability) : 'unknown';
    const label = !live ? 'Presence unknown (not signed in to the presence service)' : presence ? [presenceLabel(presence), activityLabel(presence)].filter(Boolean).join(', ') : 'Presence unknown';
    const name = presence?.card?.displayName || this.uri.replace(/^sip:/, '');
    this.dot.className = `dot ${cls}`;
    this.nameSlot.textContent = name;
    this.status.textContent = ` (${label})`;
    this.title = `${name}: ${label}`;
    if (this.dataset.presence !== cls) this.dataset.presence = cls;
  }
}

if (!customElements.get('presence-badge')) customElements.define('presence-badge', PresenceBadge);

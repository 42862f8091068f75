// @ts-check
// cwa-client.js — a dependency-free ES module for the CWA "Unified Communications AJAX API" as
// presence-gateway speaks it: sign in, keep the rotating CWA-Ticket, start (or resume) a session,
// run the data channel with AckId, turn events into plain objects and a small model, and send the
// commands as promise-returning methods.
//
//   import { CwaClient } from 'https://presence.example/cwa-client.js';
//   const client = new CwaClient({ server: 'https://presence.example' });
//   client.on('userPresence', (e) => e.users.forEach((u) => console.log(u.uri, u.availability)));
//   await client.signIn('alice@example.com', 'secret');
//   await client.start();
//   await client.subscribe(['sip:bob@example.com']);
//   await client.publishPresence({ availability: Availability.BUSY, note: 'In the lab' });

export const NS = 'http://schemas.microsoft.com/2006/09/rtc/cwa';

/**
 * @typedef {{status?: string, start?: string, end?: string, subject?: string, location?: string}} Appointment
 * @typedef {{displayName?: string, email?: string, company?: string, department?: string, title?: string,
 *   office?: string, phones?: Record<string, string>, photoHash?: string}} Card
 * @typedef {{availability: number, activity: string, statusText: string, note: string, oofNote: string,
 *   card: Card, calendar: {current?: Appointment, next?: Appointment} | null}} Presence
 * @typedef {{uri: string, name: string, subscribed: boolean, tag: boolean, groups: number[]}} ContactEntry
 * @typedef {{uri: string, displayName: string, sourceNetwork?: string, acknowledged: boolean}} Subscriber
 * @typedef {{uri: string, self: Presence | null, users: Record<string, Presence>,
 *   groups: Record<number, {id: number, name: string}>, contacts: Record<string, ContactEntry>,
 *   contactListKnown: boolean, containers: Record<number, {type: string, value: string}[]>,
 *   subscribers: Record<string, Subscriber>, configuration: Record<string, any>}} Model
 */

/** Availability numbers to publish (CWA ranges). */
export const Availability = Object.freeze({
  AVAILABLE: 3500,
  BUSY: 6500,
  DO_NOT_DISTURB: 9500,
  BE_RIGHT_BACK: 12500,
  AWAY: 15500,
  APPEAR_OFFLINE: 18500,
});

/** Access levels and their CWA container ids. */
export const AccessLevel = Object.freeze({ public: 100, company: 200, team: 300, personal: 400, blocked: 32000 });

/**
 * An error answered by the gateway (`code` is the CWA code, e.g. 18102) or by HTTP. A throttled
 * request (HTTP 429) carries `retryAfterSeconds` from the reply's `Retry-After` when it had one.
 */
export class CwaError extends Error {
  /**
   * @param {number} code
   * @param {string} reason
   * @param {string} [detail]
   * @param {number} [status]
   */
  constructor(code, reason, detail = '', status = 0) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = 'CwaError';
    this.code = code;
    this.reason = reason;
    this.detail = detail;
    this.status = status;
    /** @type {number | undefined} seconds until a throttled request may be tried again */
    this.retryAfterSeconds = undefined;
  }
  /** The method is not served by this gateway (18102 Invalid Operation). */
  get notAvailable() {
    return this.code === 18102;
  }
}

// ---------- presence helpers ----------

/** The presence class of an availability number: the colour family a UI shows. */
export function presenceClass(availability) {
  const a = Number(availability) || 0;
  if (a >= 3000 && a < 4500) return 'available';
  if (a >= 4500 && a < 6000) return 'inactive';
  if (a >= 6000 && a < 7500) return 'busy';
  if (a >= 7500 && a < 9000) return 'busy-idle';
  if (a >= 9000 && a < 12000) return 'dnd';
  if (a >= 12000 && a < 15000) return 'brb';
  if (a >= 15000 && a < 18000) return 'away';
  return 'offline';
}

const CLASS_LABELS = {
  available: 'Available',
  inactive: 'Inactive',
  busy: 'Busy',
  'busy-idle': 'Busy (inactive)',
  dnd: 'Do not disturb',
  brb: 'Be right back',
  away: 'Away',
  offline: 'Offline',
};

const ACTIVITY_LABELS = {
  'on-the-phone': 'On the phone',
  'in-a-meeting': 'In a meeting',
  'in-a-conference': 'In a conference call',
  'out-of-office': 'Out of office',
  'urgent-interruptions-only': 'Urgent interruptions only',
};

/** A short human label: "Busy", "Away", "Appear offline"… */
export function presenceLabel(presence) {
  if (!presence) return 'Unknown';
  if (presence.availability >= 18000) return 'Appear offline';
  return CLASS_LABELS[presenceClass(presence.availability)];
}

/** What the person is doing, when the level allows it: "On the phone", "In a meeting"… */
export function activityLabel(presence) {
  return (presence && ACTIVITY_LABELS[presence.activity]) || '';
}

/**
 * The delay before retry number `attempt` (0, 1, 2…): exponential from `baseMs`, capped at
 * `capMs`, with jitter in [50 %, 100 %] of that so that many clients do not retry in step, and
 * never below half of `baseMs` — a failing channel can never spin.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/**
 * Acknowledgement bookkeeping of the data channel: `ack` is what the next poll sends as AckId.
 * A batch moves it to the batch's `ackId`; events at or below the current position were already
 * handled (a re-sent batch after a lost response, or a reload) and are skipped.
 */
export class EventCursor {
  constructor(ack = 0) {
    this.ack = ack;
  }
  /** Returns the events to handle, in order, and advances the position. */
  accept(ackId, events) {
    const fresh = events.filter((e) => e.eid === undefined || e.eid > this.ack);
    const last = Math.max(this.ack, Number.isFinite(ackId) ? ackId : 0, ...fresh.map((e) => e.eid ?? 0));
    this.ack = last;
    return fresh;
  }
}

// ---------- XML ----------

export function escapeXml(text) {
  return String(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);
}

const elements = (node) => Array.from(node?.childNodes ?? []).filter((n) => n.nodeType === 1);
const nameOf = (el) => el.localName || String(el.nodeName).replace(/^.*:/, '');
const child = (el, name) => elements(el).find((c) => nameOf(c) === name);
const childText = (el, name) => {
  const c = child(el, name);
  return c ? c.textContent.trim() : undefined;
};
const attr = (el, name) => (el.hasAttribute(name) ? el.getAttribute(name) : undefined);
const intAttr = (el, name) => (el.hasAttribute(name) ? Number.parseInt(el.getAttribute(name), 10) : undefined);
const boolAttr = (el, name) => (el.getAttribute(name) || '').toLowerCase() === 'true';

function parseXml(DOMParserImpl, text) {
  let doc;
  try {
    doc = new DOMParserImpl().parseFromString(text, 'text/xml');
  } catch {
    throw new CwaError(18000, 'Invalid Format', 'the reply is not XML');
  }
  const root = doc?.documentElement;
  if (!root || nameOf(root) === 'parsererror' || doc.getElementsByTagName('parsererror').length) {
    throw new CwaError(18000, 'Invalid Format', 'the reply is not XML');
  }
  return root;
}

function parseError(el) {
  const e = el && child(el, 'error');
  if (!e) return new CwaError(18400, 'Internal Failure');
  return new CwaError(intAttr(e, 'code') ?? 18400, attr(e, 'reason') ?? 'Failed', attr(e, 'detail') ?? '');
}

/**
 * The presence categories under a `user` (or `selfPresence`) element as one plain object.
 * @returns {Presence}
 */
export function parsePresence(el) {
  /** @type {Presence} */
  const p = { availability: 0, activity: '', statusText: '', note: '', oofNote: '', card: {}, calendar: null };
  for (const category of elements(el).filter((c) => nameOf(c) === 'cwaCategory')) {
    const body = elements(category)[0];
    if (!body) continue;
    switch (attr(category, 'name')) {
      case 'state': {
        p.availability = Number.parseInt(childText(body, 'availability') ?? '0', 10) || 0;
        const activity = child(body, 'activity');
        p.activity = (activity && attr(activity, 'token')) || '';
        p.statusText = (activity && childText(activity, 'custom')) || '';
        break;
      }
      case 'note':
        for (const b of elements(body).filter((c) => nameOf(c) === 'body')) {
          if ((attr(b, 'type') || 'personal') === 'OOF') p.oofNote = b.textContent.trim();
          else p.note = b.textContent.trim();
        }
        break;
      case 'contactCard':
        Object.assign(p.card, parseCard(body));
        break;
      case 'calendarData': {
        const appointment = (a) => a && { status: attr(a, 'status'), start: attr(a, 'start'), end: attr(a, 'end'), subject: childText(a, 'subject'), location: childText(a, 'location') };
        p.calendar = { current: appointment(child(body, 'current')), next: appointment(child(body, 'next')) };
        break;
      }
    }
  }
  return p;
}

function parseCard(card) {
  const out = {};
  const name = child(child(card, 'identity') ?? card, 'name');
  const identity = child(card, 'identity');
  const set = (key, value) => value !== undefined && value !== '' && (out[key] = value);
  set('displayName', name && childText(name, 'displayName'));
  set('email', identity && childText(identity, 'email'));
  for (const key of ['company', 'department', 'title', 'office']) set(key, childText(card, key));
  const phones = {};
  for (const phone of elements(card).filter((c) => nameOf(c) === 'phone')) {
    const number = childText(phone, 'uri');
    if (number) phones[attr(phone, 'type') || 'other'] = number;
  }
  if (Object.keys(phones).length) out.phones = phones;
  const photo = child(card, 'photo');
  set('photoHash', photo && attr(photo, 'hash'));
  return out;
}

const groupIds = (text) => (text || '').split(/\s+/).filter(Boolean).map(Number);

/** One element of `cwaEvents` as a typed plain object (`type` = the element's name). */
export function parseEvent(el) {
  const type = nameOf(el);
  const event = { type, eid: intAttr(el, 'eid'), rid: attr(el, 'rid') };
  const kids = elements(el);
  switch (type) {
    case 'userPresence':
      event.users = kids.filter((c) => nameOf(c) === 'user').map((u) => ({ uri: attr(u, 'uri'), sourceNetwork: attr(u, 'sourceNetwork'), ...parsePresence(u) }));
      break;
    case 'selfPresence':
      event.presence = parsePresence(el);
      break;
    case 'presenceSubscriptionState':
      event.users = kids.map((u) => ({ uri: attr(u, 'uri'), state: attr(u, 'state') }));
      break;
    case 'contactGroup':
      event.fullList = boolAttr(el, 'fullList');
      event.deltaNum = intAttr(el, 'deltaNum');
      event.groups = kids.filter((c) => nameOf(c) === 'group').map((g) => ({ id: intAttr(g, 'id'), name: attr(g, 'name') ?? '', action: attr(g, 'action') }));
      event.contacts = kids
        .filter((c) => nameOf(c) === 'contact')
        .map((c) => ({ uri: attr(c, 'uri'), name: attr(c, 'name') ?? '', subscribed: boolAttr(c, 'subscribed'), tag: boolAttr(c, 'tag'), groups: groupIds(attr(c, 'groups')), action: attr(c, 'action') }));
      break;
    case 'containers':
      event.containers = kids.map((c) => ({ id: intAttr(c, 'id'), members: elements(c).map((m) => ({ type: attr(m, 'type'), value: attr(m, 'value') ?? '' })) }));
      break;
    case 'subscribers':
      event.subscribers = kids.map((s) => ({ uri: attr(s, 'uri'), displayName: attr(s, 'displayName') ?? '', sourceNetwork: attr(s, 'sourceNetwork'), acknowledged: boolAttr(s, 'acknowledged') }));
      break;
    case 'searchResult':
      event.returned = intAttr(el, 'returned');
      event.moreAvailable = boolAttr(el, 'moreAvailable');
      event.users = kids.map((u) => Object.fromEntries(Array.from(u.attributes).map((a) => [a.localName || a.name, a.value])));
      break;
    case 'configuration':
      event.settings = Object.fromEntries(kids.map((c) => [nameOf(c), c.textContent.trim() || Object.fromEntries(Array.from(c.attributes).map((a) => [a.name, a.value]))]));
      break;
    case 'requestFailed':
      event.error = parseError(el);
      break;
  }
  return event;
}

// ---------- the model ----------

/**
 * An empty model: what a client knows, built from events only.
 * @returns {Model}
 */
export function emptyModel() {
  return { uri: '', self: null, users: {}, groups: {}, contacts: {}, contactListKnown: false, containers: {}, subscribers: {}, configuration: {} };
}

/** Applies one event to the model (pure with respect to everything but `model`). */
export function applyEvent(model, e) {
  switch (e.type) {
    case 'selfPresence':
      model.self = e.presence;
      break;
    case 'userPresence':
      for (const u of e.users) model.users[u.uri] = u;
      break;
    case 'contactGroup':
      if (e.fullList) {
        model.groups = {};
        model.contacts = {};
      }
      model.contactListKnown = true;
      for (const g of e.groups) {
        if (g.action === 'deleted') delete model.groups[g.id];
        else model.groups[g.id] = { id: g.id, name: g.name };
      }
      for (const c of e.contacts) {
        if (c.action === 'deleted') delete model.contacts[c.uri];
        else model.contacts[c.uri] = { uri: c.uri, name: c.name, subscribed: c.subscribed, tag: c.tag, groups: c.groups };
      }
      break;
    case 'containers':
      for (const c of e.containers) model.containers[c.id] = c.members;
      break;
    case 'subscribers':
      for (const s of e.subscribers) model.subscribers[s.uri] = s;
      break;
    case 'configuration':
      Object.assign(model.configuration, e.settings);
      break;
  }
  return model;
}

/** The access level (`public`…`blocked`) a uri has been given, or `null` for the default. */
export function accessLevelOf(model, uri) {
  for (const [name, id] of Object.entries(AccessLevel)) {
    if ((model.containers[id] || []).some((m) => m.type === 'uri' && m.value === uri)) return name;
  }
  return null;
}

// ---------- the client ----------

/** @type {(ms: number, signal?: AbortSignal) => Promise<void>} */
const defaultSleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true });
  });

/** In a browser: did the person touch keyboard or pointer within the last minute? */
function defaultActivity() {
  if (typeof document === 'undefined' || typeof addEventListener === 'undefined') return () => true;
  let last = Date.now();
  for (const type of ['pointerdown', 'keydown', 'wheel', 'touchstart', 'focus']) addEventListener(type, () => (last = Date.now()), { passive: true, capture: true });
  return () => document.visibilityState !== 'hidden' && Date.now() - last < 60000;
}

/**
 * Seconds from `now` a `Retry-After` value stands for (delta-seconds or an HTTP date), or
 * `undefined` when there is none or it does not parse.
 * @param {string | null | undefined} value
 * @param {number} [now] milliseconds since the epoch
 * @returns {number | undefined}
 */
export function retryAfterSeconds(value, now = Date.now()) {
  const text = (value ?? '').trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = text ? Date.parse(text) : Number.NaN;
  return Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}

const HTTP_ERRORS = { 401: [18001, 'Not signed in'], 404: [18100, 'Session Not Found'], 429: [18101, 'Request Throttled'] };

/**
 * One signed-in user's connection to the gateway. Events: every CWA event by its element name
 * (`userPresence`, `selfPresence`, `contactGroup`, `containers`, `subscribers`, `searchResult`,
 * `configuration`, `presenceSubscriptionState`, `requestSucceeded`, `requestFailed`), plus
 * `change` (once per batch, after the model was updated, with the batch's `events`), `connection`
 * (`{state}`: connecting, connected, reconnecting, signedOut, stopped) and `session` (`{sid,
 * resumed}`).
 */
export class CwaClient {
  /**
   * @param {{server?: string, fetch?: typeof fetch, storage?: Storage | null, DOMParser?: typeof DOMParser,
   *   sleep?: (ms: number, signal?: AbortSignal) => Promise<void>, random?: () => number, isUserActive?: () => boolean,
   *   backoff?: {baseMs?: number, capMs?: number}, keepCredentials?: boolean, commandTimeoutMs?: number,
   *   storageKey?: string, saveDelayMs?: number}} [options]
   */
  constructor(options = {}) {
    this.server = String(options.server ?? '').replace(/\/$/, '');
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.storage = options.storage !== undefined ? options.storage : (globalThis.sessionStorage ?? null);
    this.DOMParser = options.DOMParser ?? globalThis.DOMParser;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.isUserActive = options.isUserActive ?? defaultActivity();
    this.backoff = { baseMs: 500, capMs: 30000, ...options.backoff };
    this.keepCredentials = Boolean(options.keepCredentials);
    this.commandTimeoutMs = options.commandTimeoutMs ?? 30000;
    this.storageKey = options.storageKey ?? `cwa-client:${this.server || 'same-origin'}`;
    this.saveDelayMs = options.saveDelayMs ?? 1000;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.saveTimer = undefined;
    this.ticket = null;
    this.signInData = '';
    this.sid = null;
    this.cursor = new EventCursor();
    this.pollWaitTime = 0;
    this.sessionTimeout = 0;
    this.rid = 0;
    this.model = emptyModel();
    this.state = 'idle';
    this.listeners = new Map();
    this.pending = new Map();
    this.credentials = null;
    this.running = false;
    this.abort = null;
    this.wake = null;
    this.connectedWaiters = [];
    // The session is saved at most once per saveDelayMs, and when the page goes away (a reload).
    if (typeof document !== 'undefined' && typeof addEventListener === 'function') addEventListener('pagehide', () => this.running && this.save());
  }

  /** Calls `callback(event)` for events of `type` (`'*'` for all); returns a function that stops it. */
  on(type, callback) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(callback);
    return () => this.listeners.get(type)?.delete(callback);
  }

  emit(type, event) {
    for (const key of [type, '*']) {
      for (const callback of [...(this.listeners.get(key) ?? [])]) {
        try {
          callback(event);
        } catch (error) {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit('connection', { type: 'connection', state, ...detail });
    if (state === 'connected') this.connectedWaiters.splice(0).forEach((w) => w.resolve());
    if (state === 'signedOut' || state === 'stopped') this.connectedWaiters.splice(0).forEach((w) => w.reject(new CwaError(18001, 'Not signed in')));
  }

  /** One HTTP exchange; remembers the ticket every reply carries. */
  async request(path, init = {}) {
    const headers = { ...(init.headers || {}) };
    if (this.ticket) headers['CWA-Ticket'] = this.ticket;
    const response = await this.fetch(this.server + path, { credentials: 'include', cache: 'no-store', ...init, headers });
    const ticket = response.headers.get('CWA-Ticket'); // Headers: any case the gateway writes
    if (ticket) this.ticket = ticket;
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, root: () => parseXml(this.DOMParser, text) };
  }

  failure(reply) {
    const error = this.replyError(reply);
    if (reply.status === 429) error.retryAfterSeconds = retryAfterSeconds(reply.headers?.get('Retry-After'));
    return error;
  }

  replyError(reply) {
    try {
      const root = reply.root();
      const failed = elements(root).find((c) => ['requestFailed', 'requestInvalid'].includes(nameOf(c)));
      if (failed) return Object.assign(parseError(failed), { status: reply.status });
    } catch {
      /* not XML: fall through */
    }
    const [code, reason] = HTTP_ERRORS[reply.status] ?? [18400, `HTTP ${reply.status}`];
    return new CwaError(code, reason, '', reply.status);
  }

  /** Signs in (`user` as `a@b`, `sip:a@b` or `DOMAIN\\a`); resolves with the user's SIP URI. */
  async signIn(user, password) {
    const body = `<cwaRequests xmlns="${NS}"><logon><user>${escapeXml(user)}</user><password>${escapeXml(password)}</password></logon></cwaRequests>`;
    this.ticket = null;
    const reply = await this.request('/forms/logon.html', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body });
    if (reply.status !== 200) throw this.failure(reply);
    const succeeded = child(reply.root(), 'requestSucceeded');
    this.signInData = (succeeded && childText(succeeded, 'signInData')) || '';
    this.model.uri = (succeeded && childText(succeeded, 'uri')) || '';
    this.credentials = this.keepCredentials ? { user, password } : null;
    return this.model.uri;
  }

  /**
   * Starts the data channel: resumes the session saved in `sessionStorage` (a reload within the
   * session timeout), or initiates a new one. Resolves once a session exists; rejects with
   * CwaError (status 401) when nobody is signed in.
   */
  async start({ availability = Availability.AVAILABLE } = {}) {
    if (this.running) return;
    this.availability = availability;
    this.running = true;
    this.setState('connecting');
    try {
      if (!this.restore()) await this.initiate();
    } catch (error) {
      this.running = false;
      this.setState(/** @type {any} */ (error)?.status === 401 ? 'signedOut' : 'stopped', { error });
      throw error;
    }
    this.loop = this.pollLoop();
  }

  restore() {
    let saved;
    try {
      saved = JSON.parse(this.storage?.getItem(this.storageKey) ?? 'null');
    } catch {
      saved = null;
    }
    if (!saved?.sid || !saved.model) return false;
    this.sid = saved.sid;
    this.cursor = new EventCursor(saved.ack || 0);
    this.rid = saved.rid || 0;
    this.pollWaitTime = saved.pollWaitTime || 0;
    this.model = saved.model;
    this.emit('session', { type: 'session', sid: this.sid, uri: this.model.uri, resumed: true });
    this.emit('change', { type: 'change', types: ['restored'], events: [], model: this.model });
    return true;
  }

  /** Saves the session within `saveDelayMs` (one write for any number of batches in between). */
  scheduleSave() {
    if (!this.storage || this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.save(), this.saveDelayMs);
  }

  /** Saves the session now: `sid`, the last ack, the rid counter and the model, as one item. */
  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (!this.storage) return;
    const saved = { sid: this.sid, ack: this.cursor.ack, rid: this.rid, pollWaitTime: this.pollWaitTime, model: this.model };
    try {
      this.storage.setItem(this.storageKey, JSON.stringify(saved));
    } catch {
      this.storage.removeItem?.(this.storageKey); // too large: a reload then starts a new session
    }
  }

  forget() {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    try {
      this.storage?.removeItem(this.storageKey);
    } catch {
      /* storage unavailable */
    }
  }

  /** Starts a new session; signs in again first when the ticket is gone and credentials are kept. */
  async initiate() {
    const rid = String(++this.rid);
    const body =
      `<cwaRequests sid="0" xmlns="${NS}"><initiateSession rid="${rid}">` +
      `<userStateAvailability>${this.availability ?? Availability.AVAILABLE}</userStateAvailability>` +
      `<options autoPublishMachineState="true" autoSubscribePresenceForContacts="true"/>` +
      (this.signInData ? `<signInData>${escapeXml(this.signInData)}</signInData>` : '') +
      `</initiateSession></cwaRequests>`;
    let reply = await this.request('/cwa/MainCommandHandler.ashx', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body });
    if (reply.status === 401 && (await this.signInAgain())) {
      reply = await this.request('/cwa/MainCommandHandler.ashx', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body });
    }
    if (reply.status !== 200) throw this.failure(reply);
    const root = reply.root();
    const accepted = elements(root).find((c) => nameOf(c) === 'requestAccepted');
    if (!accepted) throw this.failure(reply);
    this.sid = Number(attr(accepted, 'sid') ?? childText(accepted, 'sid') ?? attr(root, 'sid'));
    this.pollWaitTime = Number(attr(accepted, 'pollWaitTime') ?? childText(accepted, 'pollWaitTime') ?? 0) || 0;
    this.model.uri = childText(accepted, 'uri') || this.model.uri;
    this.cursor = new EventCursor(0);
    this.save();
    this.emit('session', { type: 'session', sid: this.sid, uri: this.model.uri, resumed: false });
  }

  async signInAgain() {
    if (!this.credentials) return false;
    try {
      await this.signIn(this.credentials.user, this.credentials.password);
      return true;
    } catch {
      return false;
    }
  }

  /** Ends a held wait (backoff or pollWaitTime) at once, e.g. when the browser is back online. */
  retryNow() {
    this.wake?.abort();
  }

  async pause(ms) {
    this.wake = new AbortController();
    await this.sleep(ms, this.wake.signal);
    this.wake = null;
  }

  async pollLoop() {
    let failures = 0;
    while (this.running) {
      let outcome;
      try {
        outcome = await this.pollOnce();
      } catch (error) {
        if (!this.running) break;
        outcome = { error };
      }
      if (!this.running) break;
      if (outcome.error) {
        const retryInMs = backoffDelay(failures, { ...this.backoff, random: this.random });
        failures += 1;
        this.setState('reconnecting', { attempt: failures, retryInMs, error: outcome.error });
        await this.pause(retryInMs);
        continue;
      }
      if (this.state !== 'connected') this.setState('connected', { recovered: failures > 0 });
      failures = 0;
      if (this.pollWaitTime > 0) await this.pause(this.pollWaitTime);
    }
  }

  /**
   * One GET on the data channel; `{error}` when it should be retried after a pause. After a
   * failure an empty command batch goes first: it is answered at once, so the channel counts as
   * connected again (and queued commands go out) without waiting for a held poll to return.
   */
  async pollOnce() {
    if (this.state === 'reconnecting') {
      this.abort = new AbortController();
      const body = `<cwaRequests sid="${this.sid}" xmlns="${NS}"/>`;
      const probe = await this.request('/cwa/MainCommandHandler.ashx', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body, signal: this.abort.signal });
      this.abort = null;
      const lost = await this.sessionLost(probe);
      if (lost) return lost;
      if (probe.status !== 200) return { error: this.failure(probe) };
      if (!this.running) return {};
      this.setState('connected', { recovered: true });
    }
    const query = `Sid=${this.sid}&AckId=${this.cursor.ack}&UA=${this.isUserActive() ? 'true' : 'false'}`;
    this.abort = new AbortController();
    const reply = await this.request(`/cwa/AsyncDataChannel.ashx?${query}`, { method: 'GET', signal: this.abort.signal });
    this.abort = null;
    const lost = await this.sessionLost(reply);
    if (lost) return lost;
    if (reply.status !== 200) return { error: this.failure(reply) };
    this.handleBatch(reply.root());
    return {};
  }

  /** The outcome when a reply says the ticket (401) or the session (404) is gone, else null. */
  async sessionLost(reply) {
    if (reply.status === 401) {
      if (await this.signInAgain()) return this.newSession();
      this.stopWith('signedOut', this.failure(reply));
      return {};
    }
    if (reply.status === 404) return this.newSession();
    return null;
  }

  /** The session is gone (expired, or the server restarted): start another one. */
  async newSession() {
    this.failPending(new CwaError(18100, 'Session Not Found', 'the session ended; a new one was started'));
    try {
      await this.initiate();
      return {};
    } catch (error) {
      if (/** @type {any} */ (error)?.status === 401) {
        this.stopWith('signedOut', error);
        return {};
      }
      return { error };
    }
  }

  handleBatch(root) {
    if (nameOf(root) !== 'cwaEvents') throw new CwaError(18000, 'Invalid Format', 'expected cwaEvents');
    const wait = intAttr(root, 'pollWaitTime');
    if (wait !== undefined && Number.isFinite(wait)) this.pollWaitTime = wait;
    this.sessionTimeout = intAttr(root, 'sessionTimeout') ?? this.sessionTimeout;
    const events = this.cursor.accept(intAttr(root, 'ackId'), elements(root).map(parseEvent));
    for (const event of events) applyEvent(this.model, event);
    if (events.length) this.scheduleSave();
    for (const event of events) {
      this.emit(event.type, event);
      this.settle(event);
    }
    if (events.length) this.emit('change', { type: 'change', types: [...new Set(events.map((e) => e.type))], events, model: this.model });
  }

  settle(event) {
    const waiting = event.rid !== undefined && this.pending.get(event.rid);
    if (!waiting) return;
    if (event.type === 'requestFailed') waiting.reject(event.error);
    else if (event.type === waiting.until || event.type === 'requestSucceeded') waiting.resolve(event);
  }

  failPending(error) {
    for (const waiting of [...this.pending.values()]) waiting.reject(error);
  }

  stopWith(state, error) {
    this.running = false;
    this.failPending(error);
    this.forget();
    this.setState(state, { error });
  }

  whenConnected() {
    if (this.sid && (this.state === 'connected' || this.state === 'connecting')) return Promise.resolve();
    if (!this.running) return Promise.reject(new CwaError(18001, 'Not signed in'));
    return new Promise((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
  }

  /**
   * Sends one method (`inner` is its XML with `RID` where the rid goes) and resolves with the
   * event that completes it (`requestSucceeded`, or `until`), or rejects with a CwaError.
   * While the channel is reconnecting, the command waits and goes out once it is back.
   */
  async command(method, inner = '', attrs = '', until = 'requestSucceeded') {
    if (this.state === 'reconnecting') this.retryNow(); // someone is waiting: try the gateway now
    await this.whenConnected();
    const rid = String(++this.rid);
    let timer;
    const outcome = new Promise((resolve, reject) => {
      const done = (fn) => (value) => (clearTimeout(timer), this.pending.delete(rid), fn(value));
      this.pending.set(rid, { until, resolve: done(resolve), reject: done(reject) });
      timer = setTimeout(() => this.pending.get(rid)?.reject(new CwaError(18400, 'Timeout', `${method} was not answered`)), this.commandTimeoutMs);
    });
    const body = `<cwaRequests sid="${this.sid}" xmlns="${NS}"><${method} rid="${rid}"${attrs}>${inner}</${method}></cwaRequests>`;
    const send = async () => {
      const reply = await this.request('/cwa/MainCommandHandler.ashx', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body });
      if (reply.status !== 200) throw this.failure(reply);
      const answer = elements(reply.root()).find((c) => attr(c, 'rid') === rid);
      if (answer && nameOf(answer) !== 'requestAccepted') throw parseError(answer);
    };
    send().catch((error) => this.pending.get(rid)?.reject(error));
    return outcome;
  }

  // ----- presence -----

  /** One snapshot of each user (a `userPresence` event). */
  query(uris) {
    return this.command('queryPresence', uriList(uris));
  }

  subscribe(uris) {
    return this.command('subscribePresence', uriList(uris));
  }

  unsubscribe(uris) {
    return this.command('unSubscribePresence', uriList(uris));
  }

  /**
   * Publishes any of: a manual `availability` (with an optional status `text`) and a `note`, all or
   * nothing. What is left out stays as it is.
   * @param {{availability?: number, text?: string, note?: string}} [presence]
   */
  publishPresence({ availability, text, note } = {}) {
    let inner = '';
    if (availability !== undefined) {
      const custom = text ? `<activity><custom LCID="1033">${escapeXml(text)}</custom></activity>` : '';
      inner +=
        `<cwaCategory name="state" instanceMask="0"><state xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState">` +
        `<availability>${Number(availability)}</availability>${custom}</state></cwaCategory>`;
    }
    if (note !== undefined) {
      inner += `<cwaCategory name="note" instanceMask="0"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal">${escapeXml(note)}</body></note></cwaCategory>`;
    }
    return this.command('publishSelfPresence', inner);
  }

  // ----- contact list -----

  addGroup(name) {
    return this.command('addGroup', `<group name="${escapeXml(name)}"/>`);
  }

  renameGroup(id, name) {
    return this.command('updateGroup', `<group id="${Number(id)}" name="${escapeXml(name)}"/>`);
  }

  deleteGroup(id) {
    return this.command('deleteGroup', `<group id="${Number(id)}"/>`);
  }

  addContact(contact) {
    return this.command('addContact', contactXml(contact));
  }

  updateContact(contact) {
    return this.command('updateContact', contactXml(contact));
  }

  deleteContact(uri) {
    return this.command('deleteContact', `<uri>${escapeXml(uri)}</uri>`);
  }

  // ----- access levels and watchers -----

  /** Adds and removes members of one container: `{add: [{type, value}], remove: [...]}`. */
  /**
   * @param {number} id
   * @param {{add?: {type: string, value?: string}[], remove?: {type: string, value?: string}[]}} [changes]
   */
  updateContainer(id, { add = [], remove = [] } = {}) {
    const member = (tag) => (m) => `<${tag} type="${escapeXml(m.type)}" value="${escapeXml(m.value ?? '')}"/>`;
    return this.command('updateContainer', `<container id="${Number(id)}">${add.map(member('addMember')).join('')}${remove.map(member('deleteMember')).join('')}</container>`);
  }

  /** Gives `uri` an access level (`public`…`blocked`), or back to the default with `null`. */
  setAccessLevel(uri, level) {
    if (level === null) {
      const current = accessLevelOf(this.model, uri);
      return current ? this.updateContainer(AccessLevel[current], { remove: [{ type: 'uri', value: uri }] }) : Promise.resolve(null);
    }
    if (!(level in AccessLevel)) return Promise.reject(new CwaError(18001, 'Invalid Request', `unknown access level ${level}`));
    return this.updateContainer(AccessLevel[level], { add: [{ type: 'uri', value: uri }] });
  }

  acknowledgeSubscriber(uri) {
    return this.command('acknowledgeSubscriber', `<uri>${escapeXml(uri)}</uri>`);
  }

  /** Directory search; resolves with `{users, moreAvailable}`. */
  async search({ displayName = '', firstName = '', lastName = '', emailAlias = '', match = 'or' } = {}) {
    const field = (name, value) => (value ? `<${name}>${escapeXml(value)}</${name}>` : `<${name}/>`);
    const inner = field('firstName', firstName) + field('lastName', lastName) + field('displayName', displayName) + field('emailAlias', emailAlias) + `<function>${match === 'and' ? 'and' : 'or'}</function>`;
    const result = await this.command('search', inner, '', 'searchResult');
    return { users: result.users ?? [], moreAvailable: Boolean(result.moreAvailable) };
  }

  // ----- ending -----

  /** Stops polling; with `terminate`, also ends the session on the server. */
  async stop({ terminate = true } = {}) {
    const wasRunning = this.running;
    this.running = false;
    this.abort?.abort();
    this.wake?.abort();
    if (terminate && wasRunning && this.sid) {
      const body = `<cwaRequests sid="${this.sid}" xmlns="${NS}"><terminateSession rid="${++this.rid}"/></cwaRequests>`;
      await this.request('/cwa/MainCommandHandler.ashx', { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body }).catch(() => {});
    }
    this.failPending(new CwaError(18100, 'Session Not Found', 'the client stopped'));
    if (terminate) this.forget();
    else if (wasRunning && this.sid) this.save();
    this.setState('stopped');
  }

  /** Ends the session and forgets the ticket and any kept credentials. */
  async signOut() {
    await this.stop({ terminate: true });
    this.ticket = null;
    this.credentials = null;
    this.model = emptyModel();
  }
}

function uriList(uris) {
  return `<uris>${[].concat(uris).map((u) => `<uri>${escapeXml(u)}</uri>`).join('')}</uris>`;
}

function contactXml({ uri, name = '', subscribed = true, tag = false, groups = [] }) {
  return `<contact uri="${escapeXml(uri)}" name="${escapeXml(name)}" subscribed="${Boolean(subscribed)}" tag="${Boolean(tag)}" groups="${groups.map(Number).join(' ')}"/>`;
}

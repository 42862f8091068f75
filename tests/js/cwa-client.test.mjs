// Unit tests of static/cwa-client.js: backoff, acknowledgement, event parsing and the model, and
// the data-channel loop against a scripted gateway (fetch, sleep and storage are injected).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DOMParser as XmlDomParser } from '@xmldom/xmldom';
import { CwaClient, EventCursor, applyEvent, backoffDelay, emptyModel, parseEvent, presenceClass, accessLevelOf, retryAfterSeconds } from '../../static/cwa-client.js';

const NS = 'http://schemas.microsoft.com/2006/09/rtc/cwa';
/** xmldom's DOMParser without its console output for the bodies that are meant to be unusable. */
class DOMParser extends XmlDomParser {
  constructor() {
    super({ onError: () => {} });
  }
}

const xml = (text) => new DOMParser().parseFromString(text, 'text/xml').documentElement;

// ---------- pure parts ----------

test('backoff grows exponentially, is capped, jittered, and never zero', () => {
  const opts = { baseMs: 500, capMs: 8000 };
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const ceiling = Math.min(8000, 500 * 2 ** attempt);
    const low = backoffDelay(attempt, { ...opts, random: () => 0 });
    const high = backoffDelay(attempt, { ...opts, random: () => 0.999999 });
    assert.equal(low, ceiling / 2, `lowest delay of attempt ${attempt}`);
    assert.ok(high <= ceiling && high > ceiling * 0.99, `highest delay of attempt ${attempt}`);
    assert.ok(low >= 250, 'never a tight loop');
  }
  assert.deepEqual([0, 1, 2, 3].map((a) => backoffDelay(a, { random: () => 1 })), [500, 1000, 2000, 4000]);
  assert.equal(backoffDelay(50, { random: () => 1 }), 30000, 'default cap');
  const spread = new Set(Array.from({ length: 20 }, () => backoffDelay(3)));
  assert.ok(spread.size > 1, 'jitter spreads retries');
});

test('the cursor acknowledges batches and skips events it has already handled', () => {
  const cursor = new EventCursor();
  const e = (eid) => ({ type: 'x', eid });
  assert.deepEqual(cursor.accept(3, [e(1), e(2), e(3)]).map((x) => x.eid), [1, 2, 3]);
  assert.equal(cursor.ack, 3);
  assert.deepEqual(cursor.accept(3, [e(2), e(3)]), [], 'a re-sent batch is not handled twice');
  assert.deepEqual(cursor.accept(5, [e(3), e(4), e(5)]).map((x) => x.eid), [4, 5]);
  assert.deepEqual(cursor.accept(5, []), []);
  assert.equal(cursor.ack, 5, 'an empty batch keeps the position');
  assert.equal(new EventCursor(9).accept(undefined, [e(10)]).length, 1);
});

test('the documented userPresence sample parses into a plain object', () => {
  const event = parseEvent(xml(readFileSync(new URL('../fixtures/user-presence-jay.xml', import.meta.url), 'utf8')));
  assert.equal(event.type, 'userPresence');
  assert.equal(event.eid, 10);
  const [jay] = event.users;
  assert.equal(jay.uri, 'sip:jaya@contoso.com');
  assert.equal(jay.sourceNetwork, 'sameEnterprise');
  assert.equal(jay.availability, 0);
  assert.equal(jay.activity, 'Offline');
  assert.equal(jay.note, '');
  assert.deepEqual(jay.card, { displayName: 'Jay Adams', email: 'jaya@contoso.com' });
  assert.equal(presenceClass(jay.availability), 'offline');
});

test('presence classes follow the CWA availability ranges', () => {
  const cases = { 3500: 'available', 4500: 'inactive', 6500: 'busy', 7500: 'busy-idle', 9500: 'dnd', 12500: 'brb', 15500: 'away', 18500: 'offline', 0: 'offline' };
  for (const [availability, cls] of Object.entries(cases)) assert.equal(presenceClass(Number(availability)), cls, availability);
});

test('contact list, containers and status text reach the model', () => {
  const model = emptyModel();
  const full = `<contactGroup xmlns="${NS}" eid="1" fullList="true" deltaNum="3"><group id="1" name="~"/><group id="2" name="Team"/><contact uri="sip:bob@x.org" name="Bob" subscribed="true" tag="false" groups="2"/></contactGroup>`;
  applyEvent(model, parseEvent(xml(full)));
  assert.deepEqual(model.contacts['sip:bob@x.org'].groups, [2]);
  assert.equal(model.groups[2].name, 'Team');
  const delta = `<contactGroup xmlns="${NS}" eid="2" fullList="false" deltaNum="4"><group id="2" name="Team" action="deleted"/><contact uri="sip:bob@x.org" name="Bob" subscribed="true" tag="false" groups="1" action="updated"/><contact uri="sip:eve@x.org" action="added" name="Eve" subscribed="true" tag="false" groups="1"/></contactGroup>`;
  applyEvent(model, parseEvent(xml(delta)));
  assert.equal(model.groups[2], undefined);
  assert.deepEqual(Object.keys(model.contacts).sort(), ['sip:bob@x.org', 'sip:eve@x.org']);
  applyEvent(model, parseEvent(xml(`<contactGroup eid="3" fullList="false"><contact uri="sip:eve@x.org" action="deleted"/></contactGroup>`)));
  assert.deepEqual(Object.keys(model.contacts), ['sip:bob@x.org']);

  applyEvent(model, parseEvent(xml(`<containers eid="4"><container id="32000"><member type="uri" value="sip:bob@x.org"/></container><container id="400"/></containers>`)));
  assert.equal(accessLevelOf(model, 'sip:bob@x.org'), 'blocked');
  applyEvent(model, parseEvent(xml(`<containers eid="5"><container id="32000"/></containers>`)));
  assert.equal(accessLevelOf(model, 'sip:bob@x.org'), null);

  const self = `<selfPresence eid="6"><cwaCategory name="state"><state><availability>6500</availability><activity token="Busy"><custom LCID="1033">In the lab</custom></activity></state></cwaCategory><cwaCategory name="note"><note><body type="personal">Back at 3</body></note></cwaCategory></selfPresence>`;
  applyEvent(model, parseEvent(xml(self)));
  assert.deepEqual([model.self.availability, model.self.activity, model.self.statusText, model.self.note], [6500, 'Busy', 'In the lab', 'Back at 3']);
});

test('a requestFailed event carries the CWA error', () => {
  const event = parseEvent(xml(`<requestFailed eid="3" rid="4"><error code="18102" subCode="0" reason="Invalid Operation" detail="search is not available"/></requestFailed>`));
  assert.equal(event.rid, '4');
  assert.equal(event.error.code, 18102);
  assert.ok(event.error.notAvailable);
});

// ---------- the loop against a scripted gateway ----------

const events = (sid, ackId, inner = '', pollWaitTime = 0) =>
  `<cwaEvents xmlns="${NS}" sid="${sid}" ackId="${ackId}" pollWaitTime="${pollWaitTime}" sessionTimeout="90">${inner}</cwaEvents>`;

/** A gateway played by the test: commands answered by `onCommand`, polls answered in order from `push`. */
class ScriptedGateway {
  constructor() {
    this.requests = [];
    this.queue = [];
    this.held = null;
    this.ticket = 'T1';
    this.nextSid = 7;
    this.loggedIn = true;
    this.onCommand = (req) => this.accept(req);
  }

  reply(status, body, headers = {}) {
    return new Response(body, { status, headers: { 'CWA-Ticket': this.ticket, ...headers } });
  }

  accept(req) {
    if (/^<cwaRequests [^>]*\/>$/.test(req.body)) return this.reply(200, `<cwaResponses xmlns="${NS}"/>`); // an empty batch
    const rid = /rid="([^"]+)"/.exec(req.body)[1];
    if (req.body.includes('<initiateSession')) {
      const sid = this.nextSid++;
      return this.reply(200, `<cwaResponses xmlns="${NS}" sid="${sid}"><requestAccepted rid="${rid}" sid="${sid}" pollWaitTime="0"><sid>${sid}</sid><pollWaitTime>0</pollWaitTime><uri>sip:alice@x.org</uri></requestAccepted></cwaResponses>`);
    }
    return this.reply(200, `<cwaResponses xmlns="${NS}"><requestAccepted rid="${rid}"/></cwaResponses>`);
  }

  fetch = async (url, init = {}) => {
    const u = new URL(url, 'http://gateway.test');
    const req = { method: init.method ?? 'GET', path: u.pathname, query: Object.fromEntries(u.searchParams), ticket: init.headers?.['CWA-Ticket'], body: init.body ?? '', credentials: init.credentials };
    this.requests.push(req);
    if (req.path === '/forms/logon.html') {
      this.loggedIn = true;
      return this.reply(200, `<cwaResponses xmlns="${NS}"><requestSucceeded><signInData>s</signInData><uri>sip:alice@x.org</uri></requestSucceeded></cwaResponses>`);
    }
    if (!this.loggedIn) return this.reply(401, `<cwaResponses xmlns="${NS}"><requestFailed><error code="18001" reason="Invalid Request" detail=""/></requestFailed></cwaResponses>`);
    if (req.path === '/cwa/MainCommandHandler.ashx') return this.onCommand(req);
    const next = this.queue.shift();
    if (next) return next(req);
    return new Promise((resolve, reject) => {
      this.held = { resolve, req };
      init.signal?.addEventListener('abort', () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' })));
    });
  };

  /** Answers the held poll, or the next one. `answer` is (req) => Response | Promise<Response>. */
  push(answer) {
    if (this.held) {
      const { resolve, req } = this.held;
      this.held = null;
      resolve(answer(req));
    } else {
      this.queue.push(answer);
    }
  }

  polls() {
    return this.requests.filter((r) => r.path === '/cwa/AsyncDataChannel.ashx');
  }
}

class MemoryStorage {
  constructor() {
    this.items = new Map();
    this.writes = 0;
  }
  getItem(k) {
    return this.items.has(k) ? this.items.get(k) : null;
  }
  setItem(k, v) {
    this.writes += 1;
    this.items.set(k, String(v));
  }
  removeItem(k) {
    this.items.delete(k);
  }
}

function setup(options = {}) {
  const gateway = new ScriptedGateway();
  const sleeps = [];
  const states = [];
  const client = new CwaClient({
    server: 'http://gateway.test',
    fetch: gateway.fetch,
    DOMParser,
    storage: options.storage ?? new MemoryStorage(),
    random: () => 1,
    isUserActive: () => true,
    sleep: (ms) => {
      sleeps.push(ms);
      return new Promise((resolve) => setImmediate(resolve)); // no real wait, but a turn of the event loop
    },
    ...options,
  });
  client.on('connection', (e) => states.push(e.state));
  return { gateway, client, sleeps, states };
}

/** Waits (bounded, without timers) until `check()` is true. */
async function until(check, what) {
  for (let i = 0; i < 2000; i += 1) {
    if (check()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`never happened: ${what}`);
}

test('the loop sends the last ackId, follows the rotating ticket and respects pollWaitTime', async () => {
  const { gateway, client, sleeps } = setup();
  const seen = [];
  client.on('userPresence', (e) => seen.push(...e.users.map((u) => u.uri)));
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  assert.deepEqual(gateway.polls()[0].query, { Sid: '7', AckId: '0', UA: 'true' });
  assert.equal(gateway.polls()[0].ticket, 'T1');
  assert.equal(gateway.polls()[0].credentials, 'include');

  gateway.ticket = 'T2'; // the gateway rotates the ticket; every reply carries the current one
  gateway.push(() => gateway.reply(200, events(7, 2, '<userPresence eid="1"><user uri="sip:bob@x.org"/></userPresence><requestSucceeded eid="2" rid="9"/>', 1500)));
  await until(() => gateway.polls().length === 2, 'second poll');
  assert.equal(gateway.polls()[1].query.AckId, '2');
  assert.equal(gateway.polls()[1].ticket, 'T2');
  assert.deepEqual(sleeps, [1500], 'waits pollWaitTime before polling again');
  assert.deepEqual(seen, ['sip:bob@x.org']);

  gateway.push(() => gateway.reply(200, events(7, 2))); // held poll ended empty
  await until(() => gateway.polls().length === 3, 'third poll');
  assert.equal(gateway.polls()[2].query.AckId, '2');
  await client.stop();
});

test('failures back off exponentially, report reconnecting, and recover', async () => {
  const { gateway, client, sleeps, states } = setup({ backoff: { baseMs: 500, capMs: 4000 } });
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  const down = () => Promise.reject(new TypeError('Failed to fetch'));
  gateway.onCommand = down; // the network is down: the probe fails too
  gateway.push(down);
  await until(() => sleeps.length >= 6, 'retries');
  assert.deepEqual(sleeps.slice(0, 6), [500, 1000, 2000, 4000, 4000, 4000], 'exponential, capped, never zero');
  assert.equal(gateway.polls().length, 1, 'while down, only the cheap probe is retried');
  assert.equal(client.state, 'reconnecting');
  const recovered = [];
  client.on('connection', (e) => recovered.push(e));
  gateway.onCommand = (req) => gateway.accept(req);
  await until(() => client.state === 'connected', 'recovery');
  assert.equal(recovered.at(-1).recovered, true);
  await until(() => gateway.polls().length === 2, 'polling again');
  assert.equal(gateway.polls().at(-1).query.Sid, '7', 'the same session is kept through network errors');
  assert.ok(states.includes('reconnecting'));

  gateway.push(() => gateway.reply(200, events(7, 0))); // the poll returns: the failures are over
  await until(() => gateway.polls().length === 3, 'polling again again');
  const before = sleeps.length;
  gateway.push(down); // a new failure starts the backoff again from the bottom
  await until(() => sleeps.length > before, 'next failure');
  assert.equal(sleeps[before], 500);
  await client.stop();
});

test('a lost session is replaced by a new one that starts from AckId 0', async () => {
  const { gateway, client } = setup();
  const sessions = [];
  client.on('session', (e) => sessions.push(e));
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  gateway.push(() => gateway.reply(200, events(7, 4, '<requestSucceeded eid="4" rid="1"/>')));
  await until(() => gateway.polls().length === 2, 'second poll');
  gateway.push(() => gateway.reply(404, `<cwaResponses xmlns="${NS}"><requestFailed><error code="18100" reason="Session Not Found" detail=""/></requestFailed></cwaResponses>`));
  await until(() => gateway.polls().length === 3, 'poll on the new session');
  assert.deepEqual(gateway.polls()[2].query, { Sid: '8', AckId: '0', UA: 'true' });
  assert.deepEqual(sessions.map((s) => [s.sid, s.resumed]), [[7, false], [8, false]]);
  await client.stop();
});

test('a reload resumes the saved session and its model from sessionStorage', async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  await first.client.start();
  await until(() => first.gateway.polls().length === 1, 'first poll');
  first.gateway.push(() => first.gateway.reply(200, events(7, 3, '<userPresence eid="3"><user uri="sip:bob@x.org"><cwaCategory name="state"><state><availability>6500</availability></state></cwaCategory></user></userPresence>')));
  await until(() => first.gateway.polls().length === 2, 'second poll');
  first.client.save(); // the page goes away without ending the session: pagehide saves it
  first.client.running = false;
  first.client.abort?.abort();

  const second = setup({ storage });
  const sessions = [];
  second.client.on('session', (e) => sessions.push(e));
  await second.client.start();
  await until(() => second.gateway.polls().length === 1, 'resumed poll');
  assert.equal(second.gateway.requests.filter((r) => r.path !== '/cwa/AsyncDataChannel.ashx').length, 0, 'no new session');
  assert.deepEqual(second.gateway.polls()[0].query, { Sid: '7', AckId: '3', UA: 'true' });
  assert.deepEqual(sessions.map((s) => [s.sid, s.resumed]), [[7, true]]);
  assert.equal(second.client.model.users['sip:bob@x.org'].availability, 6500, 'the model comes back with it');
  await second.client.stop();
  assert.equal(storage.getItem('cwa-client:http://gateway.test'), null, 'stopping forgets the session');
});

test('after the gateway forgot the ticket, kept credentials sign in again', async () => {
  const { gateway, client } = setup({ keepCredentials: true });
  await client.signIn('alice@x.org', 'pw');
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  gateway.loggedIn = false; // the gateway restarted: tickets and sessions are gone
  gateway.ticket = 'T9';
  gateway.push(() => gateway.reply(401, 'no'));
  await until(() => gateway.polls().length === 2, 'poll after signing in again');
  const paths = gateway.requests.map((r) => r.path.split('/').pop());
  assert.deepEqual(paths, ['logon.html', 'MainCommandHandler.ashx', 'AsyncDataChannel.ashx', 'logon.html', 'MainCommandHandler.ashx', 'AsyncDataChannel.ashx']);
  assert.equal(gateway.polls()[1].ticket, 'T9');
  assert.equal(gateway.polls()[1].query.Sid, '8');
  await client.stop();
});

test('without credentials a lost ticket ends in signedOut, not in a loop', async () => {
  const { gateway, client, states } = setup();
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  gateway.loggedIn = false;
  gateway.push(() => gateway.reply(401, 'no'));
  await until(() => client.state === 'signedOut', 'signed out');
  assert.equal(gateway.polls().length, 1);
  assert.equal(states.at(-1), 'signedOut');
});

test('commands resolve on their requestSucceeded and reject with the CWA error', async () => {
  const { gateway, client } = setup();
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');

  const subscribed = client.subscribe(['sip:bob@x.org']);
  await until(() => gateway.requests.some((r) => r.body.includes('subscribePresence')), 'command sent');
  const sent = gateway.requests.find((r) => r.body.includes('subscribePresence'));
  assert.match(sent.body, /<cwaRequests sid="7" xmlns="[^"]+"><subscribePresence rid="2"><uris><uri>sip:bob@x.org<\/uri><\/uris><\/subscribePresence><\/cwaRequests>/);
  gateway.push(() => gateway.reply(200, events(7, 2, '<presenceSubscriptionState eid="1"><user uri="sip:bob@x.org" state="subscribed"/></presenceSubscriptionState><requestSucceeded eid="2" rid="2"/>')));
  const done = await subscribed;
  assert.equal(done.type, 'requestSucceeded');

  gateway.onCommand = (req) => {
    const rid = /rid="([^"]+)"/.exec(req.body)[1];
    return gateway.reply(200, `<cwaResponses xmlns="${NS}"><requestFailed rid="${rid}"><error code="18102" subCode="0" reason="Invalid Operation" detail="addGroup is not available on this gateway"/></requestFailed></cwaResponses>`);
  };
  await assert.rejects(client.addGroup('Team'), (e) => e.code === 18102 && e.notAvailable);

  gateway.onCommand = (req) => gateway.accept(req);
  const search = client.search({ displayName: 'Bo' });
  await until(() => gateway.requests.some((r) => r.body.includes('<search ')), 'search sent');
  assert.match(gateway.requests.at(-1).body, /<displayName>Bo<\/displayName><emailAlias\/><function>or<\/function>/);
  const rid = /rid="([^"]+)"/.exec(gateway.requests.at(-1).body)[1];
  gateway.push(() => gateway.reply(200, events(7, 3, `<searchResult eid="3" rid="${rid}" returned="1" moreAvailable="false"><user uri="sip:bob@x.org" displayName="Bob B" title="Engineer"/></searchResult>`)));
  const found = await search;
  assert.deepEqual(found, { users: [{ uri: 'sip:bob@x.org', displayName: 'Bob B', title: 'Engineer' }], moreAvailable: false });

  const blocked = client.setAccessLevel('sip:bob@x.org', 'blocked');
  await until(() => gateway.requests.some((r) => r.body.includes('updateContainer')), 'container update sent');
  assert.match(gateway.requests.at(-1).body, /<container id="32000"><addMember type="uri" value="sip:bob@x.org"\/><\/container>/);
  const ridBlock = /rid="([^"]+)"/.exec(gateway.requests.at(-1).body)[1];
  gateway.push(() => gateway.reply(200, events(7, 4, `<requestFailed eid="4" rid="${ridBlock}"><error code="18001" reason="Invalid Request" detail="no"/></requestFailed>`)));
  await assert.rejects(blocked, (e) => e.code === 18001);
  await client.stop();
});

test('text is escaped in every command', async () => {
  const { gateway, client } = setup();
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  const published = client.publishPresence({ availability: 6500, text: 'R&D <lab>', note: '"quoted" & \'single\'' });
  await until(() => gateway.requests.some((r) => r.body.includes('publishSelfPresence')), 'publish sent');
  const body = gateway.requests.at(-1).body;
  assert.ok(body.includes('<custom LCID="1033">R&amp;D &lt;lab&gt;</custom>'), body);
  assert.ok(body.includes('&quot;quoted&quot; &amp; &apos;single&apos;'), body);
  assert.ok(xml(body), 'well-formed');
  gateway.push(() => gateway.reply(200, events(7, 1, '<requestSucceeded eid="1" rid="2"/>')));
  await published;
  await client.stop();
});

test('after a network drop the client is connected again at once, without waiting for a held poll', async () => {
  const pauses = [];
  const { gateway, client, states } = setup({ sleep: (ms, signal) => new Promise((resolve) => (pauses.push(resolve), signal?.addEventListener('abort', resolve))) });
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  const online = gateway.onCommand;
  gateway.onCommand = () => Promise.reject(new TypeError('Failed to fetch'));
  gateway.push(() => Promise.reject(new TypeError('Failed to fetch')));
  await until(() => client.state === 'reconnecting' && pauses.length === 1, 'backing off');

  const saved = client.publishPresence({ note: 'typed while offline' }); // queued; wakes the backoff
  await until(() => pauses.length === 2, 'the queued command made the client try again at once');
  gateway.onCommand = online; // the network is back
  pauses[1]();
  await until(() => gateway.requests.some((r) => r.body.includes('publishSelfPresence')), 'the queued command goes out');
  assert.ok(gateway.held, 'while the new poll is still held');
  assert.equal(states.at(-1), 'connected');
  const probe = gateway.requests.find((r) => r.method === 'POST' && r.body === `<cwaRequests sid="7" xmlns="${NS}"/>`);
  assert.ok(probe, 'an empty batch on the session proved the gateway and the session reachable');
  const rid = /rid="([^"]+)"/.exec(gateway.requests.at(-1).body)[1];
  gateway.push(() => gateway.reply(200, events(7, 1, `<requestSucceeded eid="1" rid="${rid}"/>`)));
  await saved;
  await client.stop();
});

test('a probe that finds the session gone starts a new one', async () => {
  const { gateway, client } = setup();
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  gateway.onCommand = (req) => (req.body.includes('sid="7"') ? gateway.reply(404, '') : gateway.accept(req));
  gateway.push(() => Promise.reject(new TypeError('Failed to fetch')));
  await until(() => gateway.polls().length === 2, 'polling the new session');
  assert.equal(gateway.polls()[1].query.Sid, '8');
  await client.stop();
});

test('a throttled sign-in tells when to try again, from Retry-After in seconds or as a date', async () => {
  for (const [header, expected] of [['120', 120], [new Date(Date.now() + 90_000).toUTCString(), 90], [null, undefined], ['soon', undefined]]) {
    const { gateway, client } = setup();
    const failed = `<cwaResponses xmlns="${NS}"><requestFailed><error code="18101" reason="Request Throttled" detail="too many failed sign-ins"/></requestFailed></cwaResponses>`;
    gateway.fetch = async () => gateway.reply(429, failed, header === null ? {} : { 'retry-after': header });
    client.fetch = gateway.fetch;
    const error = await client.signIn('alice@x.org', 'wrong').catch((e) => e);
    assert.equal(error.status, 429);
    assert.equal(error.reason, 'Request Throttled');
    if (expected === 90) assert.ok(Math.abs(error.retryAfterSeconds - 90) <= 1, `${header} → ${error.retryAfterSeconds}`);
    else assert.equal(error.retryAfterSeconds, expected, String(header));
  }
  assert.equal(retryAfterSeconds('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT')), 60);
  assert.equal(retryAfterSeconds('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT')), 0, 'a past date: now');
});

test('the ticket is read whatever the case of its header name', async () => {
  const { gateway, client } = setup();
  gateway.reply = (status, body, headers = {}) => new Response(body, { status, headers: { 'cwa-ticket': gateway.ticket, ...headers } });
  gateway.ticket = 'lower-case-T';
  await client.signIn('alice@x.org', 'pw');
  assert.equal(client.ticket, 'lower-case-T');
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  assert.equal(gateway.polls()[0].ticket, 'lower-case-T', 'and sent back as CWA-Ticket');
  await client.stop();
});

test('pretty-printed events (whitespace between elements) parse like compact ones', async () => {
  const compact = [
    '<userPresence eid="1"><user uri="sip:bob@x.org"><cwaCategory name="state"><state><availability>6500</availability><activity token="on-the-phone"><custom>Call</custom></activity></state></cwaCategory><cwaCategory name="note"><note><body type="personal">Hi</body></note></cwaCategory><cwaCategory name="contactCard"><contactCard><identity><name><displayName>Bob B</displayName></name><email>bob@x.org</email></identity><title>Eng</title><phone type="work"><uri>tel:+1</uri></phone><photo hash="abc"/></contactCard></cwaCategory><cwaCategory name="calendarData"><calendarData><next status="busy" start="2030-01-01T10:00:00Z" end="2030-01-01T11:00:00Z"><subject>Review</subject></next></calendarData></cwaCategory></user></userPresence>',
    '<contactGroup eid="2" fullList="true" deltaNum="3"><group id="1" name="~"/><group id="2" name="Team"/><contact uri="sip:bob@x.org" name="Bob" subscribed="true" groups="1 2"/></contactGroup>',
    '<containers eid="3"><container id="300"><member type="uri" value="sip:bob@x.org"/></container></containers>',
    '<subscribers eid="4"><subscriber uri="sip:bob@x.org" displayName="Bob" acknowledged="false"/></subscribers>',
    '<presenceSubscriptionState eid="5"><user uri="sip:bob@x.org" state="subscribed"/></presenceSubscriptionState>',
    '<configuration eid="6"><enableAppearOffline>false</enableAppearOffline></configuration>',
  ];
  const pretty = (text) => text.replace(/></g, '>\n    <');
  const parse = (text) => {
    const root = xml(`<cwaEvents xmlns="${NS}" ackId="6">${text}</cwaEvents>`);
    return Array.from(root.childNodes).filter((n) => n.nodeType === 1).map(parseEvent);
  };
  const a = parse(compact.join(''));
  const b = parse(`\n  ${compact.map(pretty).join('\n  ')}\n`);
  assert.deepEqual(b, a);
  assert.equal(a[0].users[0].card.photoHash, 'abc');
  assert.deepEqual(a[1].contacts[0].groups, [1, 2]);
  assert.equal(a[2].containers[0].members.length, 1);
  assert.equal(a[4].users.length, 1);
});

test('the session is written to storage at most once per saveDelayMs, and at once on save()', async () => {
  const storage = new MemoryStorage();
  const { gateway, client } = setup({ storage, saveDelayMs: 60_000 });
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  const afterStart = storage.writes;
  for (let i = 1; i <= 3; i += 1) {
    gateway.push(() => gateway.reply(200, events(7, i, `<userPresence eid="${i}"><user uri="sip:u${i}@x.org"/></userPresence>`)));
    await until(() => gateway.polls().length === i + 1, `poll ${i + 1}`);
  }
  assert.equal(storage.writes, afterStart, 'batches do not serialise the model each time');
  client.save();
  assert.equal(storage.writes, afterStart + 1);
  assert.equal(JSON.parse(storage.getItem('cwa-client:http://gateway.test')).ack, 3);
  await client.stop();
  assert.equal(storage.getItem('cwa-client:http://gateway.test'), null);
});

test('change events carry the batch’s events', async () => {
  const { gateway, client } = setup();
  const changes = [];
  client.on('change', (e) => changes.push(e));
  await client.start();
  await until(() => gateway.polls().length === 1, 'first poll');
  gateway.push(() => gateway.reply(200, events(7, 2, '<userPresence eid="1"><user uri="sip:a@x.org"/></userPresence><userPresence eid="2"><user uri="sip:b@x.org"/></userPresence>')));
  await until(() => changes.length === 1, 'one change');
  assert.deepEqual(changes[0].events.flatMap((e) => e.users.map((u) => u.uri)), ['sip:a@x.org', 'sip:b@x.org']);
  await client.stop();
});

// The presence web app: sign in, my status, text and note, my contacts by group with live
// presence, access levels, directory search and who watches me. Plain DOM, no build step; all
// protocol work is done by cwa-client.js.

import { CwaClient, accessLevelOf, activityLabel, presenceClass, presenceLabel } from './cwa-client.js';

const $ = (id) => document.getElementById(id);
const client = new CwaClient({ keepCredentials: true });
const LEVELS = [
  ['', 'Default'],
  ['public', 'Public'],
  ['company', 'Company'],
  ['team', 'Team'],
  ['personal', 'Personal'],
  ['blocked', 'Blocked'],
];
let restoredNotice = null;

/** Creates an element: h('li', {class: 'x', onclick: f}, child, 'text'…). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key in el && key !== 'list') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function say(id, text, kind = '') {
  const el = $(id);
  el.textContent = text;
  el.className = `message ${kind}`;
}

/** Turns a failed command into words; 18102 means the gateway does not offer it. */
function explain(error, what) {
  if (error?.notAvailable) return `${what} is not available on this server.`;
  return `${what} failed: ${error?.reason ?? error?.message ?? error}`;
}

// ---------- connection and sign-in ----------

function showConnection(event) {
  const banner = $('connection');
  clearTimeout(restoredNotice);
  document.body.classList.toggle('disconnected', event.state === 'reconnecting');
  if (event.state === 'reconnecting') {
    const seconds = Math.max(1, Math.round(event.retryInMs / 1000));
    banner.textContent = `Connection lost — reconnecting (next try in ${seconds} s)…`;
    banner.className = 'connection lost';
    banner.hidden = false;
  } else if (event.state === 'connected' && event.recovered) {
    banner.textContent = 'Connection restored — you are back online.';
    banner.className = 'connection restored';
    banner.hidden = false;
    restoredNotice = setTimeout(() => (banner.hidden = true), 6000);
  } else if (event.state === 'signedOut') {
    showSignIn('Your sign-in has ended. Please sign in again.');
  } else if (event.state !== 'connected') {
    banner.hidden = true;
  }
}

function showSignIn(message = '') {
  $('loading').hidden = true;
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('connection').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  $('sign-in-form').elements.user.focus();
}

function showApp() {
  $('loading').hidden = true;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  render();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector('button');
  button.disabled = true;
  $('sign-in-error').textContent = '';
  try {
    await client.signIn(form.elements.user.value.trim(), form.elements.password.value);
    form.elements.password.value = '';
    await client.start();
    showApp();
  } catch (error) {
    $('sign-in-error').textContent = error.status === 401 ? 'Wrong user or password.' : explain(error, 'Signing in');
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  await client.signOut();
  selfFormFilled = false;
  rows.clear();
  $('groups').replaceChildren();
  showSignIn('You are signed out.');
}

// ---------- me ----------

let selfFormFilled = false;

function statusValue(availability) {
  const family = presenceClass(availability);
  if (availability >= 18000) return '18500';
  return { available: '3500', inactive: '3500', busy: '6500', 'busy-idle': '6500', dnd: '9500', brb: '12500', away: '15500' }[family] ?? '3500';
}

function renderSelf(model) {
  const me = model.self;
  const name = me?.card?.displayName || model.uri;
  $('my-name').textContent = name;
  $('my-dot').className = `dot ${me ? presenceClass(me.availability) : 'offline'}`;
  $('my-summary').textContent = me ? [presenceLabel(me), activityLabel(me)].filter(Boolean).join(' · ') : '';
  const appearOffline = String(model.configuration.enableAppearOffline ?? 'true').toLowerCase() !== 'false';
  $('my-status').querySelector('option[value="18500"]').disabled = !appearOffline;
  if (me && !selfFormFilled) {
    $('my-status').value = statusValue(me.availability);
    $('my-status-text').value = me.statusText;
    $('my-note').value = me.note;
    selfFormFilled = true;
  }
}

async function publishSelf(event) {
  event.preventDefault();
  const availability = Number($('my-status').value);
  const text = $('my-status-text').value.trim();
  const note = $('my-note').value.trim();
  say('status-message', 'Saving…');
  try {
    await client.publishPresence({ availability, text, note });
    say('status-message', 'Saved.', 'ok');
  } catch (error) {
    say('status-message', explain(error, 'Changing your status'), 'error');
  }
}

// ---------- contacts ----------

/** One contact's row, kept across renders so that focus and open details survive updates. */
const rows = new Map();

function contactRow(uri) {
  if (rows.has(uri)) return rows.get(uri);
  const row = {
    dot: h('span', { class: 'dot offline', 'aria-hidden': 'true' }),
    name: h('span', { class: 'name' }),
    status: h('span', { class: 'status' }),
    statusText: h('span', { class: 'status-text' }),
    note: h('span', { class: 'note' }),
    details: h('dl', { class: 'details' }),
    group: h('select', { 'aria-label': 'Group', onchange: (e) => moveContact(uri, e.target) }),
    level: levelSelect(uri),
    remove: h('button', { type: 'button', onclick: () => removeContact(uri) }, 'Remove'),
  };
  const more = h('details', {}, h('summary', {}, 'Details'), row.details);
  row.el = h(
    'li',
    { class: 'contact', 'data-uri': uri },
    row.dot,
    h('div', { class: 'who' }, row.name, row.status, row.statusText, row.note, more),
    h('div', { class: 'actions' }, h('label', {}, 'Group ', row.group), h('label', {}, 'Access ', row.level), row.remove),
  );
  rows.set(uri, row);
  return row;
}

function levelSelect(uri) {
  const select = h('select', { 'aria-label': 'Access level', onchange: (e) => setLevel(uri, e.target) });
  select.append(...LEVELS.map(([value, label]) => h('option', { value }, label)));
  return select;
}

function updateRow(row, contact, presence, model) {
  const cls = presence ? presenceClass(presence.availability) : 'offline';
  const label = presence ? presenceLabel(presence) : 'Unknown';
  const activity = activityLabel(presence);
  const name = contact.name || presence?.card?.displayName || contact.uri;
  row.dot.className = `dot ${cls}`;
  row.el.dataset.presence = cls;
  row.name.textContent = name;
  row.status.textContent = activity ? `${label} · ${activity}` : label;
  row.statusText.textContent = presence?.statusText ?? '';
  row.note.textContent = presence?.note || presence?.oofNote || '';
  row.el.setAttribute('aria-label', `${name}: ${row.status.textContent}`);
  fillDetails(row.details, contact.uri, presence);
  setOptions(row.group, Object.values(model.groups).map((g) => [String(g.id), groupLabel(g)]), String(contact.groups[0] ?? 1));
  if (!row.level.disabled) row.level.value = accessLevelOf(model, contact.uri) ?? '';
}

function fillDetails(dl, uri, presence) {
  const card = presence?.card ?? {};
  const phones = Object.entries(card.phones ?? {}).map(([kind, number]) => [`${kind[0].toUpperCase()}${kind.slice(1)} phone`, number.replace(/^tel:/, '')]);
  const next = presence?.calendar?.next;
  const items = [
    ['Address', uri],
    ['E-mail', card.email],
    ['Title', card.title],
    ['Company', card.company],
    ['Department', card.department],
    ['Office', card.office],
    ...phones,
    ['Next appointment', next && `${new Date(next.start).toLocaleString()}${next.subject ? ` — ${next.subject}` : ''}`],
  ].filter(([, value]) => value);
  dl.replaceChildren(...items.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/** Replaces a select's options only when they changed, so an open or focused select is left alone. */
function setOptions(select, options, value) {
  const key = JSON.stringify(options);
  if (select.dataset.options !== key) {
    select.replaceChildren(...options.map(([v, label]) => h('option', { value: v }, label)));
    select.dataset.options = key;
  }
  select.value = value;
}

const groupLabel = (g) => (g.name === '~' ? 'Other contacts' : g.name);

function groupSection(group) {
  const id = `group-${group.id}`;
  let section = document.getElementById(id);
  if (!section) {
    const title = h('h3', { id: `${id}-title` });
    const tools = group.name === '~' ? null : groupTools(group.id);
    section = h('section', { id, class: 'group', 'aria-labelledby': `${id}-title` }, h('div', { class: 'group-head' }, title, tools), h('ul', { class: 'people' }));
  }
  section.querySelector('h3').textContent = groupLabel(group);
  return section;
}

function groupTools(id) {
  const input = h('input', { 'aria-label': 'New group name', maxLength: 256 });
  const rename = h('button', { type: 'button', onclick: () => renameGroup(id, input) }, 'Rename');
  const remove = h('button', { type: 'button', onclick: () => deleteGroup(id) }, 'Delete group');
  return h('details', { class: 'group-tools' }, h('summary', {}, 'Edit group'), input, rename, remove);
}

function renderContacts(model) {
  const container = $('groups');
  const groups = Object.values(model.groups).sort((a, b) => (a.name === '~') - (b.name === '~') || a.id - b.id);
  if (!model.contactListKnown) {
    container.replaceChildren(h('p', { class: 'muted' }, 'This server keeps no contact list for you.'));
    return;
  }
  const sections = new Map(groups.map((g) => [g.id, groupSection(g)]));
  const contacts = Object.values(model.contacts).sort((a, b) => (a.name || a.uri).localeCompare(b.name || b.uri));
  const placed = new Map([...sections.keys()].map((id) => [id, []]));
  for (const contact of contacts) {
    const row = contactRow(contact.uri);
    updateRow(row, contact, model.users[contact.uri], model);
    const target = placed.has(contact.groups[0]) ? contact.groups[0] : (groups.find((g) => g.name === '~')?.id ?? groups[0]?.id);
    placed.get(target)?.push(row.el);
  }
  for (const [uri, row] of rows) {
    if (model.contacts[uri]) continue;
    row.el.remove();
    rows.delete(uri);
  }
  for (const [id, els] of placed) syncChildren(sections.get(id).querySelector('ul'), els);
  syncChildren(container, [...sections.values()]);
  if (!contacts.length) container.append(h('p', { class: 'muted' }, 'No contacts yet — search the directory to add some.'));
}

/** Makes `parent`'s children exactly `wanted`, moving only what is out of place. */
function syncChildren(parent, wanted) {
  wanted.forEach((el, index) => {
    if (parent.children[index] !== el) parent.insertBefore(el, parent.children[index] ?? null);
  });
  while (parent.children.length > wanted.length) parent.lastElementChild.remove();
}

async function run(messageId, what, action) {
  try {
    await action();
    say(messageId, '');
    return true;
  } catch (error) {
    say(messageId, explain(error, what), 'error');
    render();
    return false;
  }
}

function moveContact(uri, select) {
  const contact = client.model.contacts[uri];
  if (!contact) return;
  run('contacts-message', 'Moving the contact', () => client.updateContact({ ...contact, groups: [Number(select.value)] }));
}

function removeContact(uri) {
  const name = client.model.contacts[uri]?.name || uri;
  run('contacts-message', `Removing ${name}`, () => client.deleteContact(uri));
}

async function setLevel(uri, select) {
  select.disabled = true;
  const level = select.value || null;
  await run(select.closest('#watchers') ? 'watchers-message' : 'contacts-message', 'Changing the access level', () => client.setAccessLevel(uri, level));
  select.disabled = false;
  render();
}

async function renameGroup(id, input) {
  const name = input.value.trim();
  if (name) await run('contacts-message', 'Renaming the group', () => client.renameGroup(id, name));
}

function deleteGroup(id) {
  run('contacts-message', 'Deleting the group', () => client.deleteGroup(id));
}

async function addGroup(event) {
  event.preventDefault();
  const input = $('group-name');
  const name = input.value.trim();
  if (name && (await run('group-message', 'Adding the group', () => client.addGroup(name)))) {
    input.value = '';
    say('group-message', `Group “${name}” added.`, 'ok');
  }
}

// ---------- directory search ----------

async function search(event) {
  event.preventDefault();
  const q = $('search-text').value.trim();
  const list = $('search-results');
  list.replaceChildren();
  if (/^sip:[^@\s]+@[^@\s]+$/i.test(q)) {
    list.append(resultItem({ uri: q.toLowerCase(), displayName: q.slice(4) }));
    return;
  }
  say('search-message', 'Searching…');
  try {
    const found = await client.search({ displayName: q, emailAlias: q });
    list.append(...found.users.map(resultItem));
    say('search-message', found.users.length ? `${found.users.length} found${found.moreAvailable ? ' (more available — refine the search)' : ''}.` : 'Nobody found.');
  } catch (error) {
    say('search-message', explain(error, 'Directory search'), 'error');
  }
}

function resultItem(user) {
  const known = Boolean(client.model.contacts[user.uri]);
  const label = [user.displayName || user.uri, user.title, user.company].filter(Boolean).join(' · ');
  const add = h('button', { type: 'button', disabled: known || user.uri === client.model.uri, onclick: () => addContact(user, add) }, known ? 'In your list' : `Add ${user.displayName || user.uri}`);
  return h('li', { 'data-uri': user.uri }, h('span', {}, label, h('small', {}, ` ${user.uri}`)), add);
}

async function addContact(user, button) {
  button.disabled = true;
  const defaultGroup = Object.values(client.model.groups).find((g) => g.name === '~')?.id ?? 1;
  const ok = await run('search-message', `Adding ${user.displayName || user.uri}`, () => client.addContact({ uri: user.uri, name: user.displayName || '', groups: [defaultGroup], subscribed: true }));
  if (ok) {
    button.textContent = 'Added';
    say('search-message', `${user.displayName || user.uri} added to your contacts.`, 'ok');
    if (!client.model.users[user.uri]) client.subscribe([user.uri]).catch(() => {});
  } else {
    button.disabled = false;
  }
}

// ---------- who watches me ----------

function renderWatchers(model) {
  const watchers = Object.values(model.subscribers).sort((a, b) => (a.displayName || a.uri).localeCompare(b.displayName || b.uri));
  const list = $('watcher-list');
  const items = watchers.map((w) => {
    const uri = w.uri.startsWith('sip:') ? w.uri : `sip:${w.uri}`;
    const select = levelSelect(uri);
    select.value = accessLevelOf(model, uri) ?? '';
    return h('li', { 'data-uri': uri }, h('span', { class: 'name' }, w.displayName || uri), h('small', {}, uri), h('label', {}, 'Access ', select));
  });
  const focused = list.contains(document.activeElement);
  if (!focused) list.replaceChildren(...items);
  if (!watchers.length && !focused) list.append(h('li', { class: 'muted' }, 'Nobody watches you right now.'));
}

// ---------- wiring ----------

function render() {
  const model = client.model;
  renderSelf(model);
  renderContacts(model);
  renderWatchers(model);
}

function wire() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('status-form').addEventListener('submit', publishSelf);
  let pendingStatus;
  // Arrow keys on a closed select fire a change per step: publish the one the person stops at.
  $('my-status').addEventListener('change', () => {
    clearTimeout(pendingStatus);
    pendingStatus = setTimeout(() => $('status-form').requestSubmit(), 400);
  });
  $('search-form').addEventListener('submit', search);
  $('group-form').addEventListener('submit', addGroup);
  client.on('connection', showConnection);
  client.on('change', () => $('app').hidden || render());
  client.on('session', (e) => e.resumed || (selfFormFilled = false));
  addEventListener('online', () => client.retryNow());
}

async function boot() {
  wire();
  try {
    await client.start(); // a reload resumes the saved session; otherwise the ticket cookie may still be valid
    showApp();
  } catch (error) {
    showSignIn(error.status === 401 || error.code === 18001 ? '' : explain(error, 'Connecting'));
  }
}

boot();

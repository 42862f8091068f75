// @ts-check
// The presence web app: sign in, my status, text, note and picture, my contacts by group with live
// presence, access levels, directory search and who watches me. Plain DOM, no build step; all
// protocol work is done by cwa-client.js. An event updates only the rows it concerns.

import { CwaClient, accessLevelOf, activityLabel, presenceClass, presenceLabel } from './cwa-client.js';

/** @typedef {import('./cwa-client.js').Presence} Presence */
/** @typedef {import('./cwa-client.js').Model} Model */
/** @typedef {import('./cwa-client.js').ContactEntry} ContactEntry */

/**
 * An element of the page by id (the page's own ids: the caller knows its kind).
 * @param {string} id
 * @returns {any}
 */
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
const DEFAULT_GROUP = '~';
/** @type {ReturnType<typeof setTimeout> | undefined} */
let restoredNotice;

/**
 * Creates an element: h('li', {class: 'x', onclick: f}, child, 'text'…).
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...any} children
 * @returns {any}
 */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key in el && key !== 'list') /** @type {any} */ (el)[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// Setters that leave the DOM alone when nothing changes: an update touches only what it changes.
/** @param {Element} el @param {string} text */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
/** @param {Element} el @param {string} name */
function setClass(el, name) {
  if (el.className !== name) el.className = name;
}
/** @param {Element} el @param {string} name @param {string} value */
function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}
/** @param {HTMLElement} el @param {boolean} hidden */
function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

/** @param {string} id @param {string} text @param {string} [kind] */
function say(id, text, kind = '') {
  const el = $(id);
  setText(el, text);
  setClass(el, `message ${kind}`);
}

/**
 * Turns a failed command into words; 18102 means the gateway does not offer it.
 * @param {any} error
 * @param {string} what
 */
function explain(error, what) {
  if (error?.notAvailable) return `${what} is not available on this server.`;
  return `${what} failed: ${error?.reason ?? error?.message ?? error}`;
}

/**
 * Asks before something that cannot be taken back; resolves with the answer.
 * @param {string} question
 * @param {string} yes the confirming button's label, e.g. "Remove"
 * @returns {Promise<boolean>}
 */
function confirmAction(question, yes) {
  const dialog = $('confirm');
  setText($('confirm-text'), question);
  setText($('confirm-ok'), yes);
  dialog.returnValue = '';
  dialog.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** The URL of a user's picture; the hash makes a new picture a new URL. @param {string} uri @param {string} hash */
const pictureUrl = (uri, hash) => `/api/v1/users/${encodeURIComponent(uri)}/image?v=${encodeURIComponent(hash)}`;

/** @param {string} name */
function initials(name) {
  const words = name.replace(/^sip:/, '').split(/[\s@._-]+/).filter(Boolean);
  return words.slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

/**
 * Shows a picture when there is one (and the viewer's level shows it), the initials otherwise.
 * @param {HTMLElement} el the `.avatar` element
 * @param {string} uri
 * @param {string} name
 * @param {string | undefined} hash
 */
function setAvatar(el, uri, name, hash) {
  const key = hash ? `img ${hash}` : `txt ${initials(name)}`;
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  if (!hash) {
    el.textContent = initials(name);
    return;
  }
  const img = h('img', { alt: '', src: pictureUrl(uri, hash) });
  img.addEventListener('error', () => (el.textContent = initials(name)), { once: true });
  el.replaceChildren(img);
}

// ---------- connection and sign-in ----------

/** @param {any} event */
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

/** @param {string} [message] */
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
  renderAll();
}

/**
 * "30 seconds", "2 minutes", "1 hour".
 * @param {number} seconds
 */
function duration(seconds) {
  const [amount, unit] = seconds < 90 ? [Math.max(1, seconds), 'second'] : seconds < 5400 ? [Math.ceil(seconds / 60), 'minute'] : [Math.ceil(seconds / 3600), 'hour'];
  return `${amount} ${unit}${amount === 1 ? '' : 's'}`;
}

/**
 * What a refused sign-in says; a throttled one says when to try again (from `Retry-After`).
 * @param {any} error
 */
function signInFailure(error) {
  if (error.status === 401) return 'Wrong user or password.';
  if (error.status === 429) {
    const seconds = error.retryAfterSeconds;
    if (seconds === undefined) return 'Too many sign-in attempts. Please wait a while before trying again.';
    const at = new Date(Date.now() + seconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return `Too many sign-in attempts. Try again in ${duration(seconds)} (at ${at}).`;
  }
  return explain(error, 'Signing in');
}

/** @param {SubmitEvent} event */
async function signIn(event) {
  event.preventDefault();
  const form = /** @type {HTMLFormElement} */ (event.target);
  const fields = /** @type {any} */ (form.elements);
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button'));
  button.disabled = true;
  let retryInMs = 0;
  $('sign-in-error').textContent = '';
  try {
    await client.signIn(fields.user.value.trim(), fields.password.value);
    fields.password.value = '';
    await client.start();
    showApp();
  } catch (caught) {
    const error = /** @type {any} */ (caught);
    $('sign-in-error').textContent = signInFailure(error);
    if (error?.status === 429 && error.retryAfterSeconds) retryInMs = error.retryAfterSeconds * 1000;
  } finally {
    if (retryInMs) setTimeout(() => (button.disabled = false), retryInMs);
    else button.disabled = false;
  }
}

async function signOut() {
  await client.signOut();
  dirty.clear();
  rows.clear();
  rowsByUri.clear();
  sections.clear();
  $('groups').replaceChildren();
  showSignIn('You are signed out.');
}

// ---------- me ----------

/** The fields of the status form the person changed since they last matched `selfPresence`. */
const dirty = new Set();
const SELF_FIELDS = { availability: 'my-status', text: 'my-status-text', note: 'my-note' };

/** @param {number} availability */
function statusValue(availability) {
  const family = presenceClass(availability);
  if (availability >= 18000) return '18500';
  return { available: '3500', inactive: '3500', busy: '6500', 'busy-idle': '6500', dnd: '9500', brb: '12500', away: '15500' }[family] ?? '3500';
}

/** What `selfPresence` says each field of the form should show. @param {Presence} me */
function selfValues(me) {
  return { availability: statusValue(me.availability), text: me.statusText, note: me.note };
}

/** @param {Model} model */
function renderSelf(model) {
  const me = model.self;
  const name = me?.card?.displayName || model.uri;
  setText($('my-name'), name);
  setClass($('my-dot'), `dot ${me ? presenceClass(me.availability) : 'unknown'}`);
  setText($('my-summary'), me ? [presenceLabel(me), activityLabel(me)].filter(Boolean).join(' · ') : '');
  setAvatar($('my-avatar'), model.uri, name || '?', me?.card?.photoHash);
  $('remove-picture').disabled = !me?.card?.photoHash;
  const appearOffline = String(model.configuration.enableAppearOffline ?? 'true').toLowerCase() !== 'false';
  $('my-status').querySelector('option[value="18500"]').disabled = !appearOffline;
  if (!me) return;
  // The form follows selfPresence (another tab, another device) except where the person is editing.
  const values = selfValues(me);
  for (const [field, id] of Object.entries(SELF_FIELDS)) {
    const input = $(id);
    if (dirty.has(field) && input.value.trim() !== values[field]) continue;
    dirty.delete(field);
    if (input.value !== values[field]) input.value = values[field];
  }
}

/** Publishes what the person touched, and only that: another tab's changes are not reverted. */
async function publishSelf(/** @type {Event} */ event) {
  event.preventDefault();
  const values = { availability: $('my-status').value, text: $('my-status-text').value.trim(), note: $('my-note').value.trim() };
  /** @type {{availability?: number, text?: string, note?: string}} */
  const update = {};
  if (dirty.has('availability') || dirty.has('text')) Object.assign(update, { availability: Number(values.availability), text: values.text });
  if (dirty.has('note')) update.note = values.note;
  if (!Object.keys(update).length) {
    say('status-message', 'Nothing changed.');
    return;
  }
  say('status-message', 'Saving…');
  try {
    await client.publishPresence(update);
    for (const field of Object.keys(SELF_FIELDS)) {
      if ((field === 'note' ? 'note' in update : 'availability' in update) && $(SELF_FIELDS[field]).value.trim() === values[field]) dirty.delete(field);
    }
    say('status-message', 'Saved.', 'ok');
  } catch (error) {
    say('status-message', explain(error, 'Changing your status'), 'error');
  }
}

/** Sends the chosen file as my picture through the JSON API (the user may set their own). */
async function uploadPicture(/** @type {Event} */ event) {
  const input = /** @type {HTMLInputElement} */ (event.target);
  const file = input.files?.[0];
  if (!file) return;
  say('picture-message', 'Uploading…');
  const reply = await pictureRequest('PUT', file);
  input.value = '';
  say('picture-message', reply.ok ? 'Picture saved.' : `The picture was not saved: ${reply.message}`, reply.ok ? 'ok' : 'error');
}

async function removePicture() {
  if (!(await confirmAction('Remove your picture? Your contacts will see your initials instead.', 'Remove picture'))) return;
  const reply = await pictureRequest('DELETE');
  say('picture-message', reply.ok ? 'Picture removed.' : `The picture was not removed: ${reply.message}`, reply.ok ? 'ok' : 'error');
}

/**
 * `PUT` or `DELETE /api/v1/users/{me}/image`, answered with `{ok, message}`.
 * @param {'PUT' | 'DELETE'} method
 * @param {File} [file]
 */
async function pictureRequest(method, file) {
  /** @type {Record<string, string>} */
  const headers = client.ticket ? { 'CWA-Ticket': client.ticket } : {};
  if (file) headers['Content-Type'] = file.type;
  try {
    const response = await fetch(`/api/v1/users/${encodeURIComponent(client.model.uri)}/image`, { method, headers, body: file, credentials: 'same-origin' });
    const ticket = response.headers.get('CWA-Ticket');
    if (ticket) client.ticket = ticket;
    if (response.ok) return { ok: true, message: '' };
    const body = await response.json().catch(() => ({}));
    return { ok: false, message: body.message ?? `HTTP ${response.status}` };
  } catch {
    return { ok: false, message: 'the server cannot be reached' };
  }
}

// ---------- contacts ----------

/**
 * One contact's row in one group, kept across renders so that focus and open details survive.
 * @typedef {{key: string, uri: string, groupId: number, el: any, avatar: any, dot: any, name: any,
 *   status: any, activity: any, statusText: any, note: any, next: any, details: any,
 *   detailsKey: string, groups: any, groupsFor: any, detailsFor: any, level: any, remove: any,
 *   filterText: string}} Row
 */

/** @type {Map<string, Row>} rows by `groupId uri` */
const rows = new Map();
/** @type {Map<string, Set<Row>>} the rows of each uri (a contact in two groups has two) */
const rowsByUri = new Map();
/** @type {Map<number, {section: any, title: any, list: any, tools: any}>} */
const sections = new Map();

/** @param {number} groupId @param {string} uri @returns {Row} */
function contactRow(groupId, uri) {
  const key = `${groupId} ${uri}`;
  const existing = rows.get(key);
  if (existing) return existing;
  const groupsFor = h('span', { class: 'sr' });
  const detailsFor = h('span', { class: 'sr' });
  const groups = h('details', { class: 'groups-editor', ontoggle: (/** @type {Event} */ e) => /** @type {any} */ (e.target).open && fillGroupsEditor(row) }, h('summary', {}, 'Groups', groupsFor), h('fieldset', {}));
  /** @type {Row} */
  const row = {
    key,
    uri,
    groupId,
    el: null,
    avatar: h('span', { class: 'avatar', 'aria-hidden': 'true' }),
    dot: h('span', { class: 'dot unknown', 'aria-hidden': 'true' }),
    name: h('span', { class: 'name' }),
    status: h('span', { class: 'status' }),
    activity: h('span', { class: 'activity' }),
    statusText: h('span', { class: 'status-text' }),
    note: h('span', { class: 'note' }),
    next: h('span', { class: 'next' }),
    details: h('dl', { class: 'details' }),
    detailsKey: '',
    groups,
    groupsFor,
    detailsFor,
    level: levelSelect(uri),
    remove: h('button', { type: 'button', onclick: () => removeContact(uri) }, 'Remove'),
    filterText: '',
  };
  const more = h('details', {}, h('summary', {}, 'Details', detailsFor), row.details);
  row.el = h(
    'li',
    { class: 'contact', 'data-uri': uri },
    row.avatar,
    row.dot,
    h('div', { class: 'who' }, row.name, row.status, row.activity, row.statusText, row.note, row.next, more),
    h('div', { class: 'actions' }, groups, h('label', {}, 'Access ', row.level), row.remove),
  );
  rows.set(key, row);
  if (!rowsByUri.has(uri)) rowsByUri.set(uri, new Set());
  rowsByUri.get(uri)?.add(row);
  return row;
}

/** @param {Row} row */
function dropRow(row) {
  row.el.remove();
  rows.delete(row.key);
  rowsByUri.get(row.uri)?.delete(row);
  if (!rowsByUri.get(row.uri)?.size) rowsByUri.delete(row.uri);
}

/** @param {string} uri */
function levelSelect(uri) {
  const select = h('select', { onchange: (/** @type {Event} */ e) => setLevel(uri, /** @type {any} */ (e.target)) });
  select.append(...LEVELS.map(([value, label]) => h('option', { value }, label)));
  return select;
}

/** The checkboxes of a contact's groups, built when the person opens them. @param {Row} row */
function fillGroupsEditor(row) {
  const contact = client.model.contacts[row.uri];
  if (!contact) return;
  const name = displayName(contact, client.model.users[row.uri]);
  const boxes = sortedGroups(client.model).map((g) =>
    h('label', {}, h('input', { type: 'checkbox', value: String(g.id), checked: contact.groups.includes(g.id), onchange: () => regroup(row) }), groupLabel(g)),
  );
  row.groups.querySelector('fieldset').replaceChildren(h('legend', { class: 'sr' }, `Groups of ${name}`), ...boxes);
}

/** @param {ContactEntry} contact @param {Presence | undefined} presence */
const displayName = (contact, presence) => contact.name || presence?.card?.displayName || contact.uri;

/**
 * "14:30" today, "Mon 14:30" within a week, a date otherwise.
 * @param {string} iso
 */
function when(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '';
  const time = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const days = (at.getTime() - Date.now()) / 86400000;
  if (at.toDateString() === new Date().toDateString()) return time;
  if (days < 6) return `${at.toLocaleDateString([], { weekday: 'short' })} ${time}`;
  return `${at.toLocaleDateString()} ${time}`;
}

/**
 * Brings one row in line with the model, writing only what changed.
 * @param {Row} row
 * @param {ContactEntry} contact
 * @param {Presence | undefined} presence
 * @param {Model} model
 */
function updateRow(row, contact, presence, model) {
  const cls = presence ? presenceClass(presence.availability) : 'unknown';
  const label = presence ? presenceLabel(presence) : 'Unknown (not signed in to the gateway, or not shared)';
  const name = displayName(contact, presence);
  const activity = activityLabel(presence);
  const next = presence?.calendar?.next;
  setClass(row.dot, `dot ${cls}`);
  setAttr(row.el, 'data-presence', cls);
  setText(row.name, name);
  setText(row.status, label);
  setText(row.activity, activity);
  setClass(row.activity, `activity ${presence?.activity ?? ''}`);
  setText(row.statusText, presence?.statusText ?? '');
  setText(row.note, presence?.note || (presence?.oofNote ? `Out of office: ${presence.oofNote}` : ''));
  setText(row.next, next?.start ? `Next: ${when(next.start)}${next.subject ? ` ${next.subject}` : ''}` : '');
  setAvatar(row.avatar, contact.uri, name, presence?.card?.photoHash);
  setText(row.groupsFor, ` of ${name}`);
  setText(row.detailsFor, ` of ${name}`);
  setAttr(row.level, 'aria-label', `Access level for ${name}`);
  setAttr(row.remove, 'aria-label', `Remove ${name}`);
  fillDetails(row, presence);
  if (!row.level.disabled) {
    const level = accessLevelOf(model, contact.uri) ?? '';
    if (row.level.value !== level) row.level.value = level;
  }
  row.filterText = [name, contact.uri, label, activity, presence?.statusText ?? '', presence?.note ?? ''].join(' ').toLowerCase();
  setHidden(row.el, !matchesFilter(row));
}

/** @param {Row} row @param {Presence | undefined} presence */
function fillDetails(row, presence) {
  const card = presence?.card ?? {};
  const phones = Object.entries(card.phones ?? {}).map(([kind, number]) => [`${kind[0].toUpperCase()}${kind.slice(1)} phone`, String(number).replace(/^tel:/, '')]);
  const next = presence?.calendar?.next;
  const current = presence?.calendar?.current;
  const items = [
    ['Address', row.uri],
    ['E-mail', card.email],
    ['Title', card.title],
    ['Company', card.company],
    ['Department', card.department],
    ['Office', card.office],
    ...phones,
    ['Now', current && `until ${when(current.end ?? '')}${current.subject ? ` — ${current.subject}` : ''}${current.location ? ` (${current.location})` : ''}`],
    ['Next appointment', next && `${when(next.start ?? '')}${next.subject ? ` — ${next.subject}` : ''}${next.location ? ` (${next.location})` : ''}`],
  ].filter(([, value]) => value);
  const key = JSON.stringify(items);
  if (row.detailsKey === key) return;
  row.detailsKey = key;
  row.details.replaceChildren(...items.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

/** @param {{name: string}} g */
const groupLabel = (g) => (g.name === DEFAULT_GROUP ? 'Other contacts' : g.name);

/** Groups in display order: by id, the default group ("Other contacts") last. @param {Model} model */
function sortedGroups(model) {
  return Object.values(model.groups).sort((a, b) => Number(a.name === DEFAULT_GROUP) - Number(b.name === DEFAULT_GROUP) || a.id - b.id);
}

/** @param {{id: number, name: string}} group */
function groupSection(group) {
  let entry = sections.get(group.id);
  if (!entry) {
    const id = `group-${group.id}`;
    const title = h('h3', { id: `${id}-title` });
    const tools = group.name === DEFAULT_GROUP ? null : groupTools(group.id);
    const list = h('ul', { class: 'people' });
    const section = h('section', { id, class: 'group', 'aria-labelledby': `${id}-title` }, h('div', { class: 'group-head' }, title, tools?.el), list);
    entry = { section, title, list, tools };
    sections.set(group.id, entry);
  }
  const label = groupLabel(group);
  setText(entry.title, label);
  if (entry.tools) {
    setText(entry.tools.summaryFor, ` ${label}`);
    setAttr(entry.tools.input, 'aria-label', `New name for ${label}`);
    setAttr(entry.tools.rename, 'aria-label', `Rename ${label}`);
    setAttr(entry.tools.remove, 'aria-label', `Delete group ${label}`);
  }
  return entry;
}

/** The tools of one group, each named with the group ("Rename Design team"). @param {number} id */
function groupTools(id) {
  const input = h('input', { maxLength: 256 });
  const rename = h('button', { type: 'button', onclick: () => renameGroup(id, input) }, 'Rename');
  const remove = h('button', { type: 'button', onclick: () => deleteGroup(id) }, 'Delete group');
  const summaryFor = h('span', { class: 'sr' });
  const el = h('details', { class: 'group-tools' }, h('summary', {}, 'Edit group', summaryFor), input, rename, remove);
  return { el, input, rename, remove, summaryFor };
}

/** The whole list: used when groups or contacts change (rare); presence updates use updateUsers. @param {Model} model */
function renderContacts(model) {
  const container = $('groups');
  const empty = $('no-contacts');
  if (!model.contactListKnown) {
    setText(empty, 'This server keeps no contact list for you.');
    setHidden(empty, false);
    return;
  }
  const groups = sortedGroups(model);
  const fallback = groups.find((g) => g.name === DEFAULT_GROUP)?.id ?? groups[0]?.id;
  /** @type {Map<number, any[]>} */
  const placed = new Map(groups.map((g) => [g.id, []]));
  const contacts = Object.values(model.contacts).sort((a, b) => (a.name || a.uri).localeCompare(b.name || b.uri));
  const live = new Set();
  for (const contact of contacts) {
    const ids = contact.groups.filter((id) => placed.has(id));
    for (const id of ids.length ? ids : [fallback]) {
      const row = contactRow(id, contact.uri);
      updateRow(row, contact, model.users[contact.uri], model);
      placed.get(id)?.push(row.el);
      live.add(row.key);
    }
  }
  for (const row of [...rows.values()]) if (!live.has(row.key)) dropRow(row);
  for (const [id, entry] of sections) {
    if (!placed.has(id)) {
      entry.section.remove();
      sections.delete(id);
    }
  }
  const wanted = groups.map((g) => {
    const entry = groupSection(g);
    syncChildren(entry.list, placed.get(g.id) ?? []);
    return entry.section;
  });
  syncChildren(container, wanted);
  applyFilter();
  setText(empty, 'No contacts yet — search the directory to add some.');
  setHidden(empty, contacts.length > 0);
}

/** A presence batch: only the rows of the users it names. @param {Model} model @param {any[]} events */
function updateUsers(model, events) {
  const uris = new Set(events.filter((e) => e.type === 'userPresence').flatMap((e) => e.users.map((/** @type {any} */ u) => u.uri)));
  for (const uri of uris) {
    const contact = model.contacts[uri];
    if (!contact) continue;
    for (const row of rowsByUri.get(uri) ?? []) updateRow(row, contact, model.users[uri], model);
  }
  if (filterQuery()) applyFilter(); // a filtered group may have gained or lost its last match
}

/**
 * Makes `parent`'s children exactly `wanted`, moving only what is out of place.
 * @param {Element} parent
 * @param {Element[]} wanted
 */
function syncChildren(parent, wanted) {
  wanted.forEach((el, index) => {
    if (parent.children[index] !== el) parent.insertBefore(el, parent.children[index] ?? null);
  });
  while (parent.children.length > wanted.length) parent.lastElementChild?.remove();
}

// ---------- the filter ----------

const filterQuery = () => String($('contact-filter').value).trim().toLowerCase();

/** @param {Row} row */
function matchesFilter(row) {
  const query = filterQuery();
  return !query || row.filterText.includes(query);
}

/** Hides rows that do not match, groups left without a visible row, and an empty default group. */
function applyFilter() {
  const query = filterQuery();
  let shown = 0;
  for (const [id, entry] of sections) {
    let visible = 0;
    for (const li of entry.list.children) {
      const row = rows.get(`${id} ${li.dataset.uri}`);
      if (row) setHidden(row.el, !matchesFilter(row));
      if (!li.hidden) visible += 1;
    }
    shown += visible;
    const isDefault = client.model.groups[id]?.name === DEFAULT_GROUP;
    setHidden(entry.section, visible === 0 && (isDefault || Boolean(query)));
  }
  if (query && !shown) say('contacts-message', `No contact matches “${query}”.`);
  else if ($('contacts-message').textContent.startsWith('No contact matches')) say('contacts-message', '');
}

// ---------- actions ----------

/**
 * Runs a command; a failure is shown in `messageId` and the lists are redrawn from the model.
 * @param {string} messageId
 * @param {string} what
 * @param {() => Promise<any>} action
 */
async function run(messageId, what, action) {
  try {
    await action();
    say(messageId, '');
    return true;
  } catch (error) {
    say(messageId, explain(error, what), 'error');
    renderAll();
    return false;
  }
}

/** Sets a contact's groups to the boxes ticked (at least one: none = "Other contacts"). @param {Row} row */
function regroup(row) {
  const contact = client.model.contacts[row.uri];
  if (!contact) return;
  const ticked = [...row.groups.querySelectorAll('input:checked')].map((box) => Number(box.value));
  const fallback = Object.values(client.model.groups).find((g) => g.name === DEFAULT_GROUP)?.id ?? 1;
  run('contacts-message', 'Changing the groups', () => client.updateContact({ ...contact, groups: ticked.length ? ticked : [fallback] }));
}

/** @param {string} uri */
async function removeContact(uri) {
  const contact = client.model.contacts[uri];
  const name = contact ? displayName(contact, client.model.users[uri]) : uri;
  if (!(await confirmAction(`Remove ${name} from your contacts?`, 'Remove'))) return;
  run('contacts-message', `Removing ${name}`, () => client.deleteContact(uri));
}

/**
 * Gives a contact or watcher a level; Blocked is confirmed first.
 * @param {string} uri
 * @param {HTMLSelectElement} select
 */
async function setLevel(uri, select) {
  const level = select.value || null;
  const where = select.closest('#watchers') ? 'watchers-message' : 'contacts-message';
  if (level === 'blocked') {
    const contact = client.model.contacts[uri];
    const name = contact ? displayName(contact, client.model.users[uri]) : (client.model.subscribers[uri.replace(/^sip:/, '')]?.displayName ?? uri);
    if (!(await confirmAction(`Block ${name}? They will see you as offline and nothing else.`, 'Block'))) {
      select.value = accessLevelOf(client.model, uri) ?? '';
      return;
    }
  }
  select.disabled = true;
  await run(where, 'Changing the access level', () => client.setAccessLevel(uri, level));
  select.disabled = false;
  renderAll();
}

/** @param {number} id @param {HTMLInputElement} input */
async function renameGroup(id, input) {
  const name = input.value.trim();
  if (name) await run('contacts-message', 'Renaming the group', () => client.renameGroup(id, name));
}

/** @param {number} id */
async function deleteGroup(id) {
  const name = client.model.groups[id]?.name ?? '';
  if (!(await confirmAction(`Delete the group “${name}”? Its contacts stay in your list.`, 'Delete group'))) return;
  run('contacts-message', 'Deleting the group', () => client.deleteGroup(id));
}

/** @param {SubmitEvent} event */
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

/** @param {SubmitEvent} event */
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

/** @param {Record<string, string>} user */
function resultItem(user) {
  const known = Boolean(client.model.contacts[user.uri]);
  const label = [user.displayName || user.uri, user.title, user.company].filter(Boolean).join(' · ');
  const add = h('button', { type: 'button', disabled: known || user.uri === client.model.uri, onclick: () => addContact(user, add) }, known ? 'In your list' : `Add ${user.displayName || user.uri}`);
  return h('li', { 'data-uri': user.uri }, h('span', {}, label, h('small', {}, ` ${user.uri}`)), add);
}

/** @param {Record<string, string>} user @param {HTMLButtonElement} button */
async function addContact(user, button) {
  button.disabled = true;
  const defaultGroup = Object.values(client.model.groups).find((g) => g.name === DEFAULT_GROUP)?.id ?? 1;
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

/** @param {Model} model */
function renderWatchers(model) {
  const watchers = Object.values(model.subscribers).sort((a, b) => (a.displayName || a.uri).localeCompare(b.displayName || b.uri));
  const list = $('watcher-list');
  if (list.contains(document.activeElement)) return; // do not pull the list from under the keyboard
  const items = watchers.map((w) => {
    const uri = w.uri.startsWith('sip:') ? w.uri : `sip:${w.uri}`;
    const name = w.displayName || uri;
    const select = levelSelect(uri);
    select.setAttribute('aria-label', `Access level for ${name}`);
    select.value = accessLevelOf(model, uri) ?? '';
    return h('li', { 'data-uri': uri }, h('span', { class: 'name' }, name), h('small', {}, uri), h('label', {}, 'Access ', select));
  });
  list.replaceChildren(...items);
  if (!watchers.length) list.append(h('li', { class: 'muted' }, 'Nobody watches you right now.'));
}

// ---------- wiring ----------

function renderAll() {
  const model = client.model;
  renderSelf(model);
  renderContacts(model);
  renderWatchers(model);
}

/** One batch of events: redraw only what it concerns. @param {any} change */
function applyChange(change) {
  const model = client.model;
  const types = new Set(change.types);
  if (types.has('restored')) return renderAll();
  if (types.has('selfPresence') || types.has('configuration')) renderSelf(model);
  if (types.has('contactGroup') || types.has('containers')) renderContacts(model);
  else if (types.has('userPresence')) updateUsers(model, change.events ?? []);
  if (types.has('subscribers') || types.has('containers')) renderWatchers(model);
}

function wire() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('status-form').addEventListener('submit', publishSelf);
  for (const [field, id] of Object.entries(SELF_FIELDS)) {
    for (const type of ['input', 'change']) $(id).addEventListener(type, () => dirty.add(field));
  }
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let pendingStatus;
  // Arrow keys on a closed select fire a change per step: publish the one the person stops at.
  $('my-status').addEventListener('change', () => {
    clearTimeout(pendingStatus);
    pendingStatus = setTimeout(() => $('status-form').requestSubmit(), 400);
  });
  $('my-picture-file').addEventListener('change', uploadPicture);
  $('remove-picture').addEventListener('click', removePicture);
  $('contact-filter').addEventListener('input', applyFilter);
  $('confirm-ok').addEventListener('click', () => $('confirm').close('ok'));
  $('confirm-cancel').addEventListener('click', () => $('confirm').close('cancel'));
  $('search-form').addEventListener('submit', search);
  $('group-form').addEventListener('submit', addGroup);
  client.on('connection', showConnection);
  client.on('change', (e) => $('app').hidden || applyChange(e));
  addEventListener('online', () => client.retryNow());
}

async function boot() {
  wire();
  try {
    await client.start(); // a reload resumes the saved session; otherwise the ticket cookie may still be valid
    showApp();
  } catch (caught) {
    const error = /** @type {any} */ (caught);
    showSignIn(error?.status === 401 || error?.code === 18001 ? '' : explain(error, 'Connecting'));
  }
}

boot();

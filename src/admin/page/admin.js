// Switchboard admin page: plain JavaScript, no build step, no framework, nothing from
// other sites. Served as /admin/admin.js under Content-Security-Policy: default-src
// 'self', so there is no inline script, no inline handler and no inline style here.
// API: docs/admin-api.md. Everything from the server (room names, senders, message
// texts, error messages) is hostile input: it only ever reaches the page as
// textContent or attribute values, never as HTML.
//
// Hooks for tests (tests/admin_page.rs); keep them stable:
//   #generation                  the config generation on show
//   #banner                      the outcome of the last action; data-kind=ok|error|info
//   #refresh, #logout            header buttons
//   [data-network=NAME]          a network; data-state=connected|reconnecting|failed|...
//     [data-network-room=ROOM]   one of its rooms; data-joined=true|false
//   [data-route=NAME]            a route
//     [data-room="NET/ROOM"]     a room of that route; data-direction, data-queued
//       button[data-action=remove-room], then button[data-action=confirm-remove-room]
//     button[data-action=remove-route], then button[data-action=confirm-remove-route]
//   [data-dead-room="NET/ROOM"]  the dead letters of one room
//     button[data-action=requeue-room]        requeue all of that room's
//     [data-dead-letter=ID]      one dead letter (ID = outbox_id)
//       button[data-action=requeue]
//   #add-room-form: #add-room-route #add-room-network #add-room-room
//     #add-room-direction #add-room-submit; errors in #add-room-errors
//   #create-route-form: #create-route-name, .room-row (select.room-network,
//     input.room-name, select.room-direction), #create-route-add-room,
//     #create-route-submit; errors in #create-route-errors
//   #preview (shown after a dry run): #preview-diff li[data-diff=KIND], #apply, #cancel
//   Errors: li.error with data-line / data-column when the server gave a position.
'use strict';

const API = '/admin/api';
const REFRESH_MS = 5000;

let csrf = '';
let state = null; // the last GET /admin/api/state
let stateText = ''; // its body, to skip re-rendering when nothing changed
let busy = 0; // writes in flight: no background refresh meanwhile
let pending = null; // the write whose dry run the preview shows

const $ = (id) => document.getElementById(id);

// ---- DOM helpers: the only way anything reaches the page ----

// el('li', {class: 'x', 'data-room': r}, 'text', child...): attributes via
// setAttribute, children as text nodes or elements.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function button(label, attrs) {
  return el('button', Object.assign({type: 'button'}, attrs), label);
}

function showBanner(kind, text) {
  const banner = $('banner');
  banner.dataset.kind = kind;
  banner.textContent = text;
  banner.hidden = false;
}

// ---- Formatting ----

function age(ms) {
  if (ms === null || ms === undefined) return '';
  let s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  let m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  m %= 60;
  if (h < 48) return `${h}h ${m}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function ago(epochMs) {
  return epochMs ? `${age(Date.now() - epochMs)} ago` : '';
}

function isoTime(epochMs) {
  return epochMs ? new Date(epochMs).toISOString() : '';
}

const DIRECTIONS = {
  both: {arrow: '⇄', title: 'both: relayed out and in'},
  source: {arrow: '→', title: 'source: relayed out, nothing relayed in'},
  sink: {arrow: '←', title: 'sink: receives only'},
};

function roomKey(network, room) {
  return `${network}/${room}`;
}

// ---- Talking to the daemon ----

// Outbox ids may pass 2^53, beyond what a JS number holds exactly: read them as strings.
// The pattern cannot match inside a JSON string, where every quote is escaped.
function parseJson(text) {
  return JSON.parse(text.replace(/"outbox_id"\s*:\s*(\d+)/g, '"outbox_id":"$1"'));
}

// One request; { status, json, text }. A 401 means the session is gone: back to login.
async function request(method, path, {body, generation} = {}) {
  const headers = {'X-CSRF-Token': csrf, 'Accept': 'application/json'};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (generation !== undefined) headers['If-Match'] = `"${generation}"`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    // The server checks Origin on writes; "no-referrer" would make it "null".
    referrerPolicy: 'same-origin',
  });
  if (response.status === 401) {
    location.assign('/admin/login');
    throw new Error('not logged in');
  }
  const text = await response.text();
  let json = null;
  try {
    json = parseJson(text);
  } catch (_) {
    // Not JSON (a plain-text error): `text` has it.
  }
  return {status: response.status, json, text};
}

async function loadState(force) {
  const answer = await request('GET', `${API}/state`);
  if (answer.status !== 200 || !answer.json) {
    showBanner('error', `Could not read the state: HTTP ${answer.status} ${answer.text}`);
    return;
  }
  if (!force && answer.text === stateText) return;
  stateText = answer.text;
  state = answer.json;
  render();
}

// Background refresh for health and queue depths; never while a write or a confirm step
// is open, so a button the user is about to press is not replaced under them.
async function refreshQuietly() {
  if (busy || document.querySelector('.confirm:not([hidden])')) return;
  try {
    await loadState(false);
  } catch (_) {
    // The next tick tries again.
  }
}

// ---- Rendering the state ----

function render() {
  $('generation').textContent = String(state.generation);
  $('applied-at').textContent = state.applied_at_ms ? `applied ${ago(state.applied_at_ms)}` : '';
  $('applied-at').title = isoTime(state.applied_at_ms);
  renderNetworks();
  renderRoutes();
  renderDeadLetters();
  fillSelects();
}

function renderNetworks() {
  const list = $('network-list');
  list.replaceChildren();
  if (!state.networks.length) list.append(el('p', {class: 'muted'}, 'No networks.'));
  for (const network of state.networks) {
    const rooms = network.rooms || [];
    const joined = rooms.filter((r) => r.joined).length;
    const card = el('article', {class: 'card network', 'data-network': network.name, 'data-state': network.state},
      el('h3', {}, network.name, ' ', el('span', {class: 'muted'}, network.protocol || '')),
      el('p', {},
        el('span', {class: `state state-${network.state}`}, network.state),
        ' ',
        el('span', {class: 'muted', title: isoTime(network.since_ms)},
          network.since_ms ? `for ${age(Date.now() - network.since_ms)}` : '')),
      // A connected network's last error is history: shown, but not as an alarm.
      network.last_error
        ? el('p', {class: network.state === 'connected' ? 'muted' : 'last-error'},
          network.state === 'connected' ? 'Previous error: ' : 'Last error: ', network.last_error)
        : null,
      el('p', {class: joined < rooms.length ? 'bad' : 'muted'},
        `${joined} of ${rooms.length} rooms joined` +
        (joined < rooms.length ? `, ${rooms.length - joined} not joined` : '')));
    const roomList = el('ul', {class: 'network-rooms'});
    for (const room of rooms) {
      roomList.append(el('li', {'data-network-room': room.room, 'data-joined': String(!!room.joined)},
        el('span', {class: room.joined ? 'ok' : 'bad'}, room.joined ? '✓ ' : '✗ '),
        room.room,
        room.error ? el('span', {class: 'last-error'}, `: ${room.error}`) : null));
    }
    card.append(roomList);
    list.append(card);
  }
}

function joinedRooms() {
  const joined = new Map();
  for (const network of state.networks) {
    for (const room of network.rooms || []) joined.set(roomKey(network.name, room.room), room);
  }
  return joined;
}

function renderRoutes() {
  const list = $('route-list');
  list.replaceChildren();
  if (!state.routes.length) list.append(el('p', {class: 'muted'}, 'No routes.'));
  const joined = joinedRooms();
  for (const route of state.routes) {
    const facts = [];
    if (route.nick_template) facts.push(`nick ${JSON.stringify(route.nick_template)}`);
    if (route.max_age) facts.push(`max age ${route.max_age}`);
    if (route.relay_membership) facts.push('relays membership');
    const rooms = el('ul', {class: 'route-rooms'});
    for (const room of route.rooms) rooms.append(renderRouteRoom(route, room, joined));
    const card = el('article', {class: 'card route', 'data-route': route.name},
      el('h3', {}, route.name),
      facts.length ? el('p', {class: 'muted'}, facts.join(' · ')) : null,
      rooms,
      confirmable('Remove route', 'remove-route', 'Confirm remove route',
        () => removeRoute(route.name)));
    list.append(card);
  }
}

function renderRouteRoom(route, room, joined) {
  const direction = DIRECTIONS[room.direction] || {arrow: '?', title: room.direction};
  const key = roomKey(room.network, room.room);
  const status = joined.get(key);
  const queue = room.queued
    ? `${room.queued} queued, oldest ${age(room.oldest_queued_ms ? Date.now() - room.oldest_queued_ms : null)}`
    : 'queue empty';
  return el('li', {class: 'room', 'data-room': key, 'data-direction': room.direction, 'data-queued': room.queued},
    el('div', {class: 'info'},
      el('span', {class: 'direction', title: direction.title}, `${direction.arrow} ${room.direction}`),
      ' ',
      el('strong', {}, room.network), ' ', el('span', {class: 'room-name'}, room.room),
      room.nick_template ? el('span', {class: 'muted'}, ` nick ${JSON.stringify(room.nick_template)}`) : null,
      el('br'),
      el('span', {class: room.queued ? 'queued' : 'muted'}, queue),
      status && !status.joined
        ? el('span', {class: 'bad'}, ` · not joined${status.error ? `: ${status.error}` : ''}`)
        : null),
    confirmable('Remove', 'remove-room', 'Confirm remove',
      () => removeRoom(route.name, room.network, room.room)));
}

// A button that first shows an inline "confirm" step (window.confirm is hard to drive
// from WebDriver and easy to click through by habit).
function confirmable(label, action, confirmLabel, onConfirm) {
  const start = button(label, {class: 'danger-light', 'data-action': action});
  const confirm = el('span', {class: 'confirm', hidden: true},
    button(confirmLabel, {class: 'danger', 'data-action': `confirm-${action}`}),
    ' ',
    button('Keep', {'data-action': `keep-${action}`}));
  start.addEventListener('click', () => {
    start.hidden = true;
    confirm.hidden = false;
  });
  confirm.children[1].addEventListener('click', () => {
    confirm.hidden = true;
    start.hidden = false;
  });
  confirm.children[0].addEventListener('click', () => {
    confirm.hidden = true;
    start.hidden = false;
    onConfirm();
  });
  return el('span', {class: 'confirmable'}, start, confirm);
}

function renderDeadLetters() {
  const list = $('dead-letter-list');
  list.replaceChildren();
  const letters = state.dead_letters || [];
  if (!letters.length) {
    list.append(el('p', {class: 'muted', id: 'no-dead-letters'}, 'None.'));
    return;
  }
  // Grouped by room, in the order the server gave (newest first).
  const groups = new Map();
  for (const letter of letters) {
    const key = roomKey(letter.network, letter.room);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(letter);
  }
  for (const [key, group] of groups) {
    const {network, room} = group[0];
    const items = el('ul', {class: 'letters'});
    for (const letter of group) {
      const id = String(letter.outbox_id);
      const requeue = button('Requeue', {'data-action': 'requeue'});
      requeue.addEventListener('click', () =>
        requeueOne(id, requeue));
      items.append(el('li', {class: 'letter', 'data-dead-letter': id},
        el('div', {class: 'info'},
          el('span', {class: 'reason'}, letter.reason),
          ' ',
          el('span', {class: 'muted', title: isoTime(letter.dead_ms)},
            `route ${letter.route} · ${letter.attempts} attempts · ${ago(letter.dead_ms)}`),
          el('br'),
          el('strong', {}, letter.sender || ''),
          letter.sender ? ': ' : '',
          el('span', {class: 'text'}, letter.text || '')),
        requeue));
    }
    const all = button(`Requeue all ${group.length} for this room`, {'data-action': 'requeue-room'});
    all.addEventListener('click', () => requeueRoom(network, room, all));
    list.append(el('div', {class: 'card dead-room', 'data-dead-room': key},
      el('h3', {}, el('strong', {}, network), ' ', room), items, all));
  }
}

// Keeps what the user picked when the state is refreshed.
function fillSelect(select, values) {
  const picked = select.value;
  select.replaceChildren(...values.map((value) => el('option', {value}, value)));
  if (values.includes(picked)) select.value = picked;
}

function fillSelects() {
  const networks = state.networks.map((n) => n.name);
  fillSelect($('add-room-route'), state.routes.map((r) => r.name));
  fillSelect($('add-room-network'), networks);
  for (const select of document.querySelectorAll('#create-route-rooms select.room-network')) {
    fillSelect(select, networks);
  }
}

// ---- Writes: dry run, preview, apply ----

function errorsBox(form) {
  return $(`${form.id.replace(/-form$/, '')}-errors`);
}

function clearErrors(form) {
  const box = errorsBox(form);
  box.replaceChildren();
  box.hidden = true;
}

// Shows a failed answer next to `form` (or in the banner when there is no form).
function showFailure(form, answer) {
  const items = [];
  const json = answer.json || {};
  if (answer.status === 422 && Array.isArray(json.errors)) {
    for (const error of json.errors) {
      const where = error.line ? `line ${error.line}:${error.column || 0}: ` : '';
      items.push(el('li', {class: 'error', 'data-line': error.line, 'data-column': error.column},
        where, error.message,
        error.hint ? el('div', {class: 'hint'}, `hint: ${error.hint}`) : null));
    }
  } else if (answer.status === 409) {
    items.push(el('li', {class: 'error'},
      'Someone else changed the config meanwhile; the page now shows the current state. Check it and try again.'));
  } else if (answer.status === 500 && json.outcome === 'rolled_back') {
    items.push(el('li', {class: 'error'}, 'Rolled back: ', json.cause || 'applying failed'));
  } else if (answer.status === 403) {
    items.push(el('li', {class: 'error'}, 'Refused (403): log in again.'));
  } else {
    const message = json.error || json.message || json.cause || answer.text || '';
    // Status 0: a check made in the page before any request.
    const status = answer.status ? `HTTP ${answer.status}` : '';
    items.push(el('li', {class: 'error'}, [status, message].filter(Boolean).join(': ')));
  }
  if (!form) {
    showBanner('error', items.map((item) => item.textContent).join(' '));
    return;
  }
  const box = errorsBox(form);
  box.replaceChildren(el('ul', {}, ...items));
  box.hidden = false;
}

// Runs `fn` as one write: no background refresh meanwhile, buttons disabled.
async function writing(buttons, fn) {
  busy += 1;
  for (const b of buttons) b.disabled = true;
  try {
    return await fn();
  } catch (error) {
    showBanner('error', `Request failed: ${error.message}`);
    return null;
  } finally {
    busy -= 1;
    for (const b of buttons) b.disabled = false;
  }
}

function describeItem(item) {
  if (typeof item === 'string') return item;
  if (item && item.network !== undefined && item.room !== undefined) {
    return `${roomKey(item.network, item.room)}${item.route ? ` (route ${item.route})` : ''}`;
  }
  if (item && item.name !== undefined) return item.name;
  return JSON.stringify(item);
}

const DIFF_KINDS = [
  ['routes_added', '+', 'route added'],
  ['routes_removed', '−', 'route removed'],
  ['routes_changed', '~', 'route changed'],
  ['rooms_added', '+', 'room added'],
  ['rooms_removed', '−', 'room removed'],
  ['networks_added', '+', 'network added'],
  ['networks_removed', '−', 'network removed'],
  ['networks_changed', '~', 'network changed'],
];

function diffItems(diff) {
  const items = [];
  for (const [kind, sign, label] of DIFF_KINDS) {
    for (const item of (diff && diff[kind]) || []) {
      items.push(el('li', {'data-diff': kind, class: `diff-${kind.split('_')[1]}`},
        `${sign} ${label}: `, describeItem(item)));
    }
  }
  return items;
}

function hidePreview() {
  pending = null;
  $('preview').hidden = true;
  $('preview-diff').replaceChildren();
}

// Sends `write` ({method, path, body}) as a dry run and shows its diff.
async function preview(form, write) {
  clearErrors(form);
  hidePreview();
  const generation = state.generation;
  const submit = form.querySelector('button[type=submit]');
  const answer = await writing([submit], () =>
    request(write.method, `${write.path}?dry_run=true`, {body: write.body, generation}));
  if (!answer) return;
  if (answer.status !== 200) {
    showFailure(form, answer);
    if (answer.status === 409) await loadState(true);
    return;
  }
  const items = diffItems(answer.json && answer.json.diff);
  pending = {form, write, generation};
  $('preview-summary').textContent = items.length
    ? 'Applying it makes these changes:'
    : 'This changes nothing.';
  $('preview-diff').replaceChildren(...items);
  $('apply').disabled = !items.length;
  form.after($('preview'));
  $('preview').hidden = false;
  $('apply').focus();
}

async function apply() {
  if (!pending) return;
  const {form, write, generation} = pending;
  const answer = await writing([$('apply'), $('cancel')], () =>
    request(write.method, write.path, {body: write.body, generation}));
  if (!answer) return;
  hidePreview();
  if (answer.status === 200) {
    const outcome = (answer.json && answer.json.outcome) || 'applied';
    showBanner('ok', `${outcome === 'unchanged' ? 'Nothing to change' : 'Applied'}: generation ${answer.json ? answer.json.generation : '?'}.`);
    form.reset();
    if (form.id === 'create-route-form') resetRouteRooms();
  } else {
    showFailure(form, answer);
  }
  await loadState(true);
}

// Writes with no form and no preview (removals, after their confirm step).
async function writeNow(what, write) {
  const answer = await writing([], () =>
    request(write.method, write.path, {body: write.body, generation: state.generation}));
  if (!answer) return;
  if (answer.status === 200) {
    showBanner('ok', `${what}: generation ${answer.json ? answer.json.generation : '?'}.`);
  } else {
    showFailure(null, answer);
  }
  await loadState(true);
}

function removeRoom(route, network, room) {
  const path = `${API}/routes/${encodeURIComponent(route)}/rooms/` +
    `${encodeURIComponent(network)}/${encodeURIComponent(room)}`;
  return writeNow(`Removed ${roomKey(network, room)} from ${route}`, {method: 'DELETE', path});
}

function removeRoute(route) {
  return writeNow(`Removed route ${route}`,
    {method: 'DELETE', path: `${API}/routes/${encodeURIComponent(route)}`});
}

async function requeueOne(id, pressed) {
  const answer = await writing([pressed], () =>
    request('POST', `${API}/dead-letters/${encodeURIComponent(id)}/requeue`));
  if (!answer) return;
  if (answer.status === 200) showBanner('ok', `Requeued ${answer.json ? answer.json.requeued : 1}.`);
  else showFailure(null, answer);
  await loadState(true);
}

async function requeueRoom(network, room, pressed) {
  const answer = await writing([pressed], () =>
    request('POST', `${API}/dead-letters/requeue`, {body: {network, room}}));
  if (!answer) return;
  if (answer.status === 200) {
    showBanner('ok', `Requeued ${answer.json ? answer.json.requeued : '?'} for ${roomKey(network, room)}.`);
  } else {
    showFailure(null, answer);
  }
  await loadState(true);
}

// ---- The forms ----

function addRoomSubmitted(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const route = $('add-room-route').value;
  const body = {
    network: $('add-room-network').value,
    room: $('add-room-room').value.trim(),
    direction: $('add-room-direction').value,
  };
  if (!route || !body.network || !body.room) {
    showFailure(form, {status: 0, json: {message: 'Pick a route and a network, and name the room.'}, text: ''});
    return;
  }
  preview(form, {method: 'POST', path: `${API}/routes/${encodeURIComponent(route)}/rooms`, body});
}

function routeRoomRow() {
  const networks = state ? state.networks.map((n) => n.name) : [];
  const network = el('select', {class: 'room-network', 'aria-label': 'network'});
  fillSelect(network, networks);
  const direction = el('select', {class: 'room-direction', 'aria-label': 'direction'},
    ...Object.entries(DIRECTIONS).map(([value, d]) => el('option', {value}, `${d.arrow} ${value}`)));
  const remove = button('✕', {class: 'remove-row', 'aria-label': 'remove this room', title: 'remove this room'});
  const row = el('div', {class: 'room-row'},
    network,
    el('input', {class: 'room-name', type: 'text', placeholder: '#channel', 'aria-label': 'room',
      autocomplete: 'off', autocapitalize: 'off', spellcheck: 'false'}),
    direction, remove);
  remove.addEventListener('click', () => {
    if (document.querySelectorAll('#create-route-rooms .room-row').length > 2) row.remove();
  });
  return row;
}

function resetRouteRooms() {
  $('create-route-rooms').replaceChildren(routeRoomRow(), routeRoomRow());
}

function createRouteSubmitted(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const rooms = [...document.querySelectorAll('#create-route-rooms .room-row')]
    .map((row) => ({
      network: row.querySelector('.room-network').value,
      room: row.querySelector('.room-name').value.trim(),
      direction: row.querySelector('.room-direction').value,
    }))
    .filter((room) => room.room);
  const name = $('create-route-name').value.trim();
  // The server checks everything; this only saves a round trip for an empty form.
  if (!name) {
    showFailure(form, {status: 0, json: {message: 'Name the route.'}, text: ''});
    return;
  }
  preview(form, {method: 'POST', path: `${API}/routes`, body: {name, rooms}});
}

async function logout() {
  try {
    await fetch('/admin/logout', {
      method: 'POST',
      headers: {'X-CSRF-Token': csrf},
      credentials: 'same-origin',
      referrerPolicy: 'same-origin',
    });
  } finally {
    location.assign('/admin/login');
  }
}

async function start() {
  $('add-room-form').addEventListener('submit', addRoomSubmitted);
  $('create-route-form').addEventListener('submit', createRouteSubmitted);
  $('create-route-add-room').addEventListener('click', () => $('create-route-rooms').append(routeRoomRow()));
  $('apply').addEventListener('click', apply);
  $('cancel').addEventListener('click', hidePreview);
  $('refresh').addEventListener('click', () => loadState(true));
  $('logout').addEventListener('click', logout);
  resetRouteRooms();
  const session = await request('GET', `${API}/session`);
  if (session.status !== 200 || !session.json) {
    showBanner('error', `Could not start a session: HTTP ${session.status}`);
    return;
  }
  csrf = session.json.csrf;
  await loadState(true);
  setInterval(refreshQuietly, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  start().catch((error) => showBanner('error', `The page failed to start: ${error.message}`));
});

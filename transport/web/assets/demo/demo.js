// The demo page: one engine in multi-room mode, a card per room (state,
// members, streams, extra info, chat), the camera published into rooms and
// other users' streams played. It uses only the SDK's public surface, as an
// app would.
//
// URL parameters make a page ready at once, for sharing a link or testing:
// ?user=alice&rooms=r1,r2&publish=r1 joins r1 and r2 as alice and publishes
// the camera in r1; &autoplay=0 leaves new streams unplayed.
import { RoomlogEngine } from '/sdk/roomlog.js';

const $ = (sel, root = document) => root.querySelector(sel);
const params = new URLSearchParams(location.search);
const engine = new RoomlogEngine('dev');
engine.enableMultiRoom(true);

const cards = new Map(); // room -> {el, members, streams, extra}
const players = new Map(); // stream -> <figure>
let me = null; // {userID, userName}
let token = '';
let camera = null; // the local MediaStream
let devTokens = false;

// What tests and curious developers can look at from the console.
window.demo = { engine, cards, players, ready: false };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function setState(node, state) {
  node.textContent = state;
  node.className = `state ${state}`;
}

function say(room, text, cls = 'system') {
  const card = cards.get(room);
  if (!card) return;
  const chat = $('.chat', card.el);
  chat.append(el('li', { class: cls }, text));
  chat.scrollTop = chat.scrollHeight;
}

function fail(where, err) {
  console.warn(where, err);
  setState($('#conn'), 'failed');
  $('#conn').textContent = `${where}: ${err.name || ''} ${err.code || ''} ${err.message || err}`;
}

const streamID = (room) => `${me.userID}-${room}`;

// Cards.

function card(room) {
  if (cards.has(room)) return cards.get(room);
  const node = $('#room-card').content.firstElementChild.cloneNode(true);
  node.dataset.room = room;
  $('h2', node).textContent = room;
  const c = { el: node, members: new Map(), streams: new Map(), extra: new Map() };
  cards.set(room, c);
  $('.publish', node).addEventListener('click', () => togglePublish(room));
  $('.leave', node).addEventListener('click', () => leave(room));
  $('.switch', node).addEventListener('submit', (ev) => {
    ev.preventDefault();
    const to = $('input', ev.target).value.trim();
    if (to) switchRoom(room, to);
  });
  $('.send', node).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('input', ev.target);
    const text = input.value;
    input.value = '';
    try {
      await engine.sendBroadcastMessage(room, text);
      say(room, '', 'mine');
      $('.chat li:last-child', node).append(el('span', { class: 'from' }, 'you'), text);
    } catch (e) {
      say(room, `not sent: ${e.name} (${e.code})`, 'error');
    }
  });
  $('.set-extra', node).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const [k, v] = ev.target.querySelectorAll('input');
    try {
      await engine.setRoomExtraInfo(room, k.value, v.value);
      c.extra.set(k.value, { value: v.value, by: 'you' });
      k.value = v.value = '';
      render(room);
    } catch (e) {
      say(room, `extra info refused: ${e.name} (${e.code})`, 'error');
    }
  });
  $('#rooms').append(node);
  return c;
}

function render(room) {
  const c = cards.get(room);
  if (!c) return;
  const members = $('.members', c.el);
  members.replaceChildren(
    ...(me ? [el('li', {}, `${me.userName || me.userID} (you)`)] : []),
    ...[...c.members.values()].map((u) => el('li', {}, u.userName || u.userID, u.role === 'audience' ? ' (audience)' : '')),
  );
  const streams = $('.streams', c.el);
  streams.replaceChildren(
    ...[...c.streams.values()].map((s) => {
      const li = el('li', { 'data-stream': s.streamID }, `${s.streamID} by ${s.user.userName || s.user.userID}`);
      if (s.mine) li.append(' (yours)');
      else li.append(el('button', { class: 'secondary', onclick: () => togglePlay(room, s.streamID) }, players.has(s.streamID) ? 'Stop' : 'Play'));
      if (s.extraInfo) li.append(el('small', {}, ` ${s.extraInfo}`));
      return li;
    }),
  );
  $('.extra', c.el).replaceChildren(
    ...[...c.extra.entries()].flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, `${v.value} `, el('small', {}, `(${v.by})`))]),
  );
  $('.publish', c.el).textContent = c.streams.has(me && streamID(room)) ? 'Stop publishing' : 'Publish camera';
}

// Room operations.

async function ensureToken() {
  if (token) return token;
  if (!devTokens) {
    token = $('#token').value.trim();
    if (!token) throw new Error('paste a token (roomctl token -app dev -user ...)');
    return token;
  }
  const res = await fetch('/dev/token', { method: 'POST', body: JSON.stringify({ user: me.userID, name: me.userName }) });
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.message), { code: body.code, name: body.error });
  token = body.token;
  return token;
}

async function join(room) {
  if (cards.has(room) && engine.rooms.includes(room)) return;
  card(room);
  try {
    await ensureToken();
    await engine.loginRoom(room, token, me);
  } catch (e) {
    say(room, `login failed: ${e.name} (${e.code}): ${e.message}`, 'error');
    throw e;
  }
}

async function leave(room) {
  if (engine.rooms.includes(room)) {
    try {
      await engine.logoutRoom(room);
    } catch (e) {
      say(room, `logout failed: ${e.name} (${e.code})`, 'error');
      return;
    }
  }
  drop(room);
}

function drop(room) {
  const c = cards.get(room);
  if (!c) return;
  for (const id of c.streams.keys()) stopVideo(id);
  c.el.remove();
  cards.delete(room);
}

async function switchRoom(from, to) {
  card(to);
  try {
    await engine.switchRoom(from, to, { token });
  } catch (e) {
    say(to, `switch failed: ${e.name} (${e.code})`, 'error');
  }
}

async function startCamera() {
  if (camera) return camera;
  camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
  const fig = $('#local');
  $('video', fig).srcObject = camera;
  fig.hidden = false;
  $('#camera').textContent = 'Camera on';
  return camera;
}

async function togglePublish(room) {
  const id = streamID(room);
  const c = cards.get(room);
  try {
    if (c.streams.has(id)) {
      await engine.stopPublishingStream(id);
    } else {
      await engine.startPublishingStream(id, await startCamera(), { roomID: room });
    }
  } catch (e) {
    say(room, `publish failed: ${e.name} (${e.code}): ${e.message}`, 'error');
  }
}

async function togglePlay(room, id) {
  if (players.has(id)) {
    stopVideo(id);
    await engine.stopPlayingStream(id).catch((e) => say(room, `stop failed: ${e.name}`, 'error'));
    render(room);
    return;
  }
  const s = cards.get(room).streams.get(id);
  const fig = el('figure', { 'data-stream': id }, el('video', { autoplay: '', playsinline: '' }), el('figcaption', {}, `${s.user.userName || s.user.userID} in ${room}`));
  players.set(id, fig);
  $('#videos').append(fig);
  try {
    $('video', fig).srcObject = await engine.startPlayingStream(id, { roomID: room });
  } catch (e) {
    stopVideo(id);
    say(room, `play failed: ${e.name} (${e.code}): ${e.message}`, 'error');
  }
  render(room);
}

function stopVideo(id) {
  const fig = players.get(id);
  if (!fig) return;
  $('video', fig).srcObject = null;
  fig.remove();
  players.delete(id);
}

// Events.

engine.on('roomStateChanged', (room, reason, code, ext) => {
  const c = cards.get(room) || (reason === 'LOGINING' || reason === 'LOGINED' ? card(room) : null);
  if (!c) return;
  setState($('.state', c.el), reason);
  const conn = $('#conn');
  if (reason === 'RECONNECTING') setState(conn, 'RECONNECTING');
  else if (reason === 'LOGINED' || reason === 'RECONNECTED') {
    setState(conn, 'connected');
    conn.textContent = `connected as ${me.userID} · session ${engine.session.slice(-6)}`;
  }
  if (code) say(room, `${reason} ${code} ${ext.reason || ''}`);
  if (reason === 'LOGINED') render(room);
  if (reason === 'LOGOUT' && (ext.reason === 'logout' || ext.reason === 'switch' || ext.reason === 'leave')) drop(room);
  else if (['KICKOUT', 'LOGOUT', 'RECONNECT_FAILED', 'LOGIN_FAILED'].includes(reason)) {
    for (const id of c.streams.keys()) stopVideo(id);
    c.streams.clear();
    c.members.clear();
    render(room);
  }
});

engine.on('roomUserUpdate', (room, type, users) => {
  const c = cards.get(room);
  if (!c) return;
  for (const u of users) {
    if (type === 'ADD') c.members.set(u.userID, u);
    else c.members.delete(u.userID);
  }
  render(room);
});

engine.on('roomStreamUpdate', (room, type, streams) => {
  const c = cards.get(room);
  if (!c) return;
  for (const s of streams) {
    if (type === 'ADD') {
      c.streams.set(s.streamID, s);
      if ($('#autoplay').checked && !players.has(s.streamID)) togglePlay(room, s.streamID);
    } else {
      c.streams.delete(s.streamID);
      stopVideo(s.streamID);
    }
  }
  render(room);
});

engine.on('roomStreamExtraInfoUpdate', (room, streams) => {
  const c = cards.get(room);
  if (!c) return;
  for (const s of streams) if (c.streams.has(s.streamID)) c.streams.get(s.streamID).extraInfo = s.extraInfo;
  render(room);
});

engine.on('publisherStateUpdate', ({ streamID: id, state }) => {
  for (const [room, c] of cards) {
    if (id !== streamID(room)) continue;
    if (state === 'PUBLISHING') c.streams.set(id, { streamID: id, user: me, extraInfo: '', mine: true });
    else if (state === 'NO_PUBLISH') c.streams.delete(id);
    render(room);
  }
});

engine.on('playerStateUpdate', ({ streamID: id, state, errorCode }) => {
  if (state === 'NO_PLAY') stopVideo(id);
  if (errorCode) console.warn('player', id, state, errorCode);
});

engine.on('roomExtraInfoUpdate', (room, items) => {
  const c = cards.get(room);
  if (!c) return;
  for (const i of items) c.extra.set(i.key, { value: i.value, by: i.updateUser.userName || i.updateUser.userID });
  render(room);
});

engine.on('IMRecvBroadcastMessage', (room, msgs) => {
  for (const m of msgs) {
    say(room, '', 'message');
    $('.chat li:last-child', cards.get(room).el).append(el('span', { class: 'from' }, m.fromUser.userName || m.fromUser.userID), m.message);
  }
});

engine.on('roomOnlineUserCountUpdate', (room, count) => {
  const c = cards.get(room);
  if (c) $('.online', c.el).textContent = `${count} online`;
});

engine.on('tokenWillExpire', async () => {
  if (!devTokens) return;
  token = '';
  await ensureToken();
  await engine.renewToken(token);
});

// Start.

async function start() {
  try {
    devTokens = (await (await fetch('/dev/config')).json()).dev_tokens;
  } catch (e) {
    devTokens = false;
  }
  $('#token-label').hidden = devTokens;
  $('#user').value = params.get('user') || `user-${Math.random().toString(36).slice(2, 7)}`;
  $('#autoplay').checked = params.get('autoplay') !== '0';
  $('#who').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('#user').value.trim();
    if (me && me.userID !== id) {
      fail('user', new Error('reload the page to change user'));
      return;
    }
    me = me || { userID: id, userName: id };
    $('#user').disabled = true;
    join($('#room').value.trim()).catch((e) => fail('join', e));
  });
  $('#camera').addEventListener('click', () => startCamera().catch((e) => fail('camera', e)));
  const rooms = (params.get('rooms') || '').split(',').filter(Boolean);
  if (params.get('user') && rooms.length) {
    me = { userID: params.get('user'), userName: params.get('user') };
    $('#user').disabled = true;
    try {
      for (const r of rooms) await join(r);
      const pub = params.get('publish');
      if (pub) await togglePublish(pub);
    } catch (e) {
      fail('join', e);
    }
  }
  window.demo.ready = true;
}

start();

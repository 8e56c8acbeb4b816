// roomlog.js: roomlog's browser SDK, one ES module with no dependencies.
//
// It speaks roomlog's WebSocket protocol (docs/protocol.md) with the calls and
// callbacks of ZEGO's Web SDK (loginRoom, roomStateChanged, ...) and ZIM's
// room operations (createRoom, roomMemberJoined, ...), so that an app written
// for them ports with few changes (docs/sdk-js.md lists them). docs/sdk-js.md
// documents it; the
// types are in roomlog.d.ts beside this file.
//
// What it does for the app, like the Go SDK (transport/client):
//   - it heartbeats at the interval the server's hello names, and declares
//     the connection lost when the server goes silent;
//   - it checks every room event's `prev` against the last `seq` it got for
//     the room, and reports a gap (roomEventGap) if one ever shows;
//   - when the connection is lost it reports RECONNECTING (1002051) for each
//     room, redials with jittered exponential backoff, resumes the session
//     (the server replays exactly what was missed: no gap, no duplicate) or,
//     if the session timed out meanwhile, logs into its rooms again (not
//     those the app asked to leave: a leave whose reply was lost is sent
//     again on a resumed session, and resolves on a new one); past the
//     retry window (20 minutes) it reports RECONNECT_FAILED (1002053).
//
// Every failure is a RoomlogError carrying the numeric code and the stable
// name of docs/protocol.md.

const SUBPROTOCOL = 'roomlog.v1';
const PROTOCOL_VERSION = 1;
const HEARTBEAT_ID = 'hb';

/**
 * ZEGO's room state change reasons (ZegoRoomStateChangedReason), keyed by the
 * protocol's names.
 */
export const RoomStateChangedReason = Object.freeze({
  Logining: 'LOGINING',
  Logined: 'LOGINED',
  LoginFailed: 'LOGIN_FAILED',
  Reconnecting: 'RECONNECTING',
  Reconnected: 'RECONNECTED',
  ReconnectFailed: 'RECONNECT_FAILED',
  KickOut: 'KICKOUT',
  Logout: 'LOGOUT',
  LogoutFailed: 'LOGOUT_FAILED',
});

/** An error of the SDK or a refusal of the server, with its code and name. */
export class RoomlogError extends Error {
  /**
   * @param {number} code the numeric code (docs/protocol.md)
   * @param {string} name the code's stable name (token_invalid, ...)
   * @param {string} message what went wrong
   * @param {string} [op] the operation that failed
   */
  constructor(code, name, message, op = '') {
    super(message);
    this.code = code;
    this.name = name;
    this.op = op;
    /** true when the SDK made the error up rather than the server. */
    this.local = false;
    /** What the server's error reply carried (error_keys of 1902010, ...), if anything. */
    this.data = undefined;
  }

  /** ZEGO's name for the code. */
  get errorCode() {
    return this.code;
  }
}

// The codes the SDK itself reports: its own (1906090-1906097, listed in
// docs/protocol.md) and the server's it reuses. Keep the table's format: a
// test checks each line against docs/protocol.md.
export const ErrorCodes = Object.freeze({
  /* sdk-codes */
  CLIENT_CLOSED: [1906090, 'client_closed', 'the engine was destroyed; create a new one'],
  CONNECT_FAILED: [1906091, 'connect_failed', 'cannot connect to the server'],
  PROTOCOL_MISMATCH: [1906092, 'protocol_mismatch', 'the server does not speak this SDK\'s protocol'],
  MEDIA_FAILED: [1906093, 'media_failed', 'the browser cannot set up the media connection'],
  /* end sdk-codes */
  RECONNECTING: [1002051, 'reconnecting', 'the connection was lost; the client is reconnecting'],
  TIMEOUT: [1002053, 'timeout', 'the operation could not complete in time'],
  INVALID_ARGUMENT: [1906001, 'invalid_argument', 'an argument is missing or malformed'],
  SESSION_REPLACED: [1906009, 'session_replaced', 'the session was resumed on another connection'],
});

function localError(kind, detail = '', op = '') {
  const [code, name, message] = ErrorCodes[kind];
  const e = new RoomlogError(code, name, detail ? `${message}: ${detail}` : message, op);
  e.local = true;
  return e;
}

// endedError is what a start call fails with when its stream was ended
// (logout, kick, the room's end) while it was being set up; the state
// callback said why.
function endedError(entry) {
  return localError('MEDIA_FAILED', 'the stream ended while it was being set up', entry.kind);
}

// Server errors worth retrying on another connection rather than giving the
// session up (unavailable, internal_error, timeout, too_many_requests,
// shutting_down, slow_consumer).
// media_peer_not_found and media_node_unreachable: the media connection a
// media_check asked after (after a resume), or an ICE restart was for, is
// gone (_mediaGone).
const GONE = new Set([1907003, 1907002]);
// not_in_room: the server's code for a session that is not in the room, the
// LOGIN_FAILED of a room a resume leaves out (_resumed).
const NOT_IN_ROOM = 1002002;
// TOKEN_INVALID: a re-login tries the room's own token after the latest.
const TOKEN_INVALID = 1002033;
const TRANSIENT = new Set([1906098, 1906099, 1002053, 1906005, 1906008, 1906006]);

const isLocal = (e) => !(e instanceof RoomlogError) || e.local;
// isLostReply: the request was sent, and the connection was lost before its
// reply (Link.kill): it may or may not have taken effect.
const isLostReply = (e) => e instanceof RoomlogError && e.local && e.code === ErrorCodes.RECONNECTING[0];

// Conversions between the protocol's shapes and ZEGO's.
const toUser = (u) => ({ userID: u.id, userName: u.name || '', ...(u.role ? { role: u.role } : {}) });
const toStream = (s) => ({ streamID: s.stream, user: toUser(s.user), extraInfo: s.extra_info || '' });
const toExtraInfo = (i) => ({ key: i.key, value: i.value, updateUser: toUser(i.update_user), updateTime: i.update_time });
const toMessage = (m) => ({ messageID: m.message_id, fromUser: toUser(m.from), message: m.message, sendTime: m.send_time });
const toSnapshot = (s) => ({
  roomID: s.room.id,
  roomName: s.room.name || '',
  seq: s.seq,
  userList: (s.users || []).map(toUser),
  streamList: (s.streams || []).map(toStream),
  extraInfoList: (s.extra_info || []).map(toExtraInfo),
  roomAttributes: s.attributes || {},
  onlineCount: s.online,
});
const wireUser = (u) => (u ? { id: u.userID, name: u.userName || undefined } : undefined);
const wireConfig = (c) =>
  c ? { attributes: c.roomAttributes || undefined, destroy_delay_s: c.roomDestroyDelayTime || undefined } : undefined;

// One WebSocket connection. Its requests wait for replies in `pending`; a
// lost link is never reused.
class Link {
  constructor(ws, hello, engine) {
    this.ws = ws;
    this.hello = hello;
    this.engine = engine;
    this.pending = new Map();
    this.dead = false;
    this.replaced = false;
    this.last = Date.now();
    this.timer = 0;
  }

  // start begins handling frames and heartbeating.
  start() {
    this.ws.onmessage = (ev) => this.frame(ev.data);
    this.ws.onclose = (ev) => this.engine._lost(this, `closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
    const every = this.hello.heartbeat_ms;
    if (every > 0) {
      // Nothing at all for 2.5 intervals means the connection is dead (the
      // server answers every heartbeat). The half interval of slack lets a
      // hidden tab, whose timers the browser delays, keep its connection.
      const silence = every * 2.5;
      this.timer = setInterval(() => {
        if (Date.now() - this.last >= silence) {
          this.engine._lost(this, `no frame for ${Date.now() - this.last} ms`);
          return;
        }
        this.send({ id: HEARTBEAT_ID, op: 'heartbeat' });
      }, every);
    }
  }

  send(frame) {
    if (this.dead || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // request sends op and resolves with the reply's data. hook, if given, runs
  // when the reply arrives, before any later frame is handled, even if the
  // caller stopped waiting. key, if given, is the request's idempotency key.
  request(op, data, timeoutMs, hook, key) {
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(NOT_SENT);
        return;
      }
      const id = String(++this.engine._ids);
      const call = { op, resolve, reject, hook, timer: 0 };
      call.timer = setTimeout(() => {
        if (!hook) this.pending.delete(id);
        else call.resolve = call.reject = () => {};
        reject(localError('TIMEOUT', `no reply within ${timeoutMs} ms`, op));
      }, timeoutMs);
      const frame = data === undefined ? { id, op } : { id, op, data };
      if (key) frame.idempotency_key = key;
      if (!this.send(frame)) {
        // The socket is closing and the browser has not said so yet: the
        // request never left, so it goes again on the next connection
        // rather than failing as one that may have taken effect.
        clearTimeout(call.timer);
        reject(NOT_SENT);
        this.engine._lost(this, 'send failed');
        return;
      }
      this.pending.set(id, call);
    });
  }

  frame(text) {
    if (this.dead) return;
    this.last = Date.now();
    let f;
    try {
      f = JSON.parse(text);
    } catch (e) {
      this.engine._log('warn', 'unreadable frame', String(text).slice(0, 200));
      return;
    }
    if (f.type === 'reply') this.reply(f);
    else if (f.type === 'event') this.engine._event(this, f);
  }

  reply(f) {
    if (f.id === HEARTBEAT_ID) {
      if (f.code === 0 && f.data && f.data.resume_token && this.engine._link === this) {
        this.engine._resumeToken = f.data.resume_token;
      }
      return;
    }
    const call = this.pending.get(f.id);
    if (!call) {
      if (f.code) this.engine._log('debug', 'error reply to no pending request', f);
      return;
    }
    this.pending.delete(f.id);
    clearTimeout(call.timer);
    if (f.code) {
      const err = new RoomlogError(f.code, f.error, f.message || f.error, call.op);
      if (f.data) err.data = f.data;
      call.reject(err);
      return;
    }
    try {
      if (call.hook) call.hook(f.data || {});
    } catch (e) {
      call.reject(e);
      return;
    }
    call.resolve(f.data || {});
  }

  // kill ends the link and fails its pending requests; false if it was dead.
  kill(closed) {
    if (this.dead) return false;
    this.dead = true;
    clearInterval(this.timer);
    this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    try {
      this.ws.close(1000, closed ? 'client closed' : 'connection lost');
    } catch (e) {
      // already closing
    }
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(
        closed
          ? localError('CLIENT_CLOSED', '', call.op)
          : localError('RECONNECTING', 'the connection was lost before the reply; the operation may or may not have taken effect', call.op),
      );
    }
    this.pending.clear();
    return true;
  }
}

// NOT_SENT: the link died before the request left; it is sent again on the
// next connection.
const NOT_SENT = new Error('not sent');

// dial opens a WebSocket and waits for the hello frame.
function dial(url, timeoutMs, engine) {
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WebSocket(url, SUBPROTOCOL);
    } catch (e) {
      reject(localError('CONNECT_FAILED', String(e.message || e)));
      return;
    }
    const fail = (err) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch (e) {
        // not open yet
      }
      reject(err);
    };
    const timer = setTimeout(() => fail(localError('CONNECT_FAILED', `no hello from ${url} within ${timeoutMs} ms`)), timeoutMs);
    ws.onerror = () => {}; // onclose follows, with the code
    ws.onclose = (ev) => fail(localError('CONNECT_FAILED', `${url} closed the connection (${ev.code})`));
    ws.onopen = () => {
      if (ws.protocol !== SUBPROTOCOL) fail(localError('PROTOCOL_MISMATCH', `${url} did not accept ${SUBPROTOCOL}`));
    };
    ws.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        f = null;
      }
      if (!f || f.type !== 'event' || f.event !== 'hello' || !f.data || !f.data.session) {
        fail(localError('PROTOCOL_MISMATCH', 'the first frame is not hello'));
        return;
      }
      if (f.data.protocol !== PROTOCOL_VERSION) {
        fail(localError('PROTOCOL_MISMATCH', `the server speaks protocol ${f.data.protocol}, this SDK ${PROTOCOL_VERSION}`));
        return;
      }
      clearTimeout(timer);
      ws.onopen = ws.onerror = null;
      const link = new Link(ws, f.data, engine);
      link.start();
      resolve(link);
    };
  });
}

// mediaKey names a stream's publisher ('publish') or player ('play').
const mediaKey = (kind, streamID) => `${kind} ${streamID}`;

// iceDown reports whether pc's ICE lost its path (a restart may bring it
// back).
const iceDown = (pc) => pc.iceConnectionState === 'failed' || pc.iceConnectionState === 'disconnected';

// gathered resolves when pc has gathered its ICE candidates, or after ms.
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// The default server: the /ws endpoint of the server this module came from.
function defaultServer() {
  const u = new URL('/ws', import.meta.url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * RoomlogEngine is one session with a roomlog server: ZEGO's
 * ZegoExpressEngine, with ZIM's room operations.
 */
export class RoomlogEngine {
  /**
   * @param {number|string} [appID] kept for ZEGO compatibility: the token names the app
   * @param {string} [server] the WebSocket URL (ws://host/ws); default: the server this module came from
   * @param {object} [options] see roomlog.d.ts
   */
  constructor(appID = '', server = '', options = {}) {
    this.appID = appID;
    this.server = server || defaultServer();
    this._opts = {
      dialTimeout: 10_000,
      requestTimeout: 15_000,
      reconnectWindow: 20 * 60_000,
      backoffMin: 250,
      backoffMax: 10_000,
      logLevel: 'warn',
      ...options,
    };
    this._handlers = new Map();
    this._ids = 0;
    this._link = null; // where requests go; null while (re)connecting
    this._connecting = null; // the first connection's promise
    this._reconnecting = false;
    this._waiters = new Set(); // requests waiting for a connection
    this._wake = null; // ends the backoff sleep early (network back online)
    this._closed = false;
    this._stopErr = null; // set once requests can never succeed
    this._giveUps = 0; // reconnections that gave up
    this._session = '';
    this._resumeToken = '';
    this._mode = ''; // 'single' or 'multi' as the app chose, '' if it did not
    this._modeApplied = false;
    this._user = null; // {userID, userName}, from loginRoom or ZIM login
    this._token = '';
    // The token of the latest renewToken still in flight ('' if none): newer
    // than _token, it is the one a reconnection resumes and enters rooms
    // again with (see renewToken).
    this._renewing = '';
    // room -> {seq, entry, order, leaving, relogin, exit, exiting, unsure}:
    // see _entered and _leave.
    this._rooms = new Map();
    this._order = 0;
    this._adopts = 0; // new sessions adopted by reconnections
    this._keys = 0; // idempotency keys of the leaves
    this._loginFailed = new Set();
    this._entering = new Map(); // room -> requests entering it, in flight
    this._leaves = new Set(); // leaves in flight (see _leave and _entered)
    this._onOnline = () => {
      if (this._wake) this._wake();
      this._restartAllIce();
    };
    if (typeof window !== 'undefined') window.addEventListener('online', this._onOnline);
    // What the session publishes and plays: stream -> {kind, streamID,
    // roomID, mediaStream, state, pc} (see startPublishingStream).
    this._publishers = new Map();
    this._players = new Map();
    // The media connections the SDK found gone and told the app of itself
    // (_mediaGone), as mediaKey(kind, streamID), until the media node's own
    // ending of the connection arrives or the stream's next offer is
    // answered (_mediaEvent, _offer).
    this._goneTold = new Set();
  }

  /** The ID of the session the engine speaks for ('' before connecting). */
  get session() {
    return this._session;
  }

  /** The rooms the engine is in, in the order they were entered. */
  get rooms() {
    return this._activeRooms();
  }

  // Events.

  /** Registers a callback; see roomlog.d.ts for the events. */
  on(event, callback) {
    if (typeof callback !== 'function') return false;
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(callback);
    return true;
  }

  /** Removes a callback, or every callback of the event. */
  off(event, callback) {
    const set = this._handlers.get(event);
    if (!set) return false;
    if (callback) return set.delete(callback);
    this._handlers.delete(event);
    return true;
  }

  _emit(event, ...args) {
    if (this._closed) return; // destroyEngine: no callback after it
    const set = this._handlers.get(event);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(...args);
      } catch (e) {
        console.error(`roomlog: a ${event} callback threw`, e);
      }
    }
  }

  _log(level, ...args) {
    const order = ['debug', 'info', 'warn', 'error', 'none'];
    if (order.indexOf(level) >= order.indexOf(this._opts.logLevel)) console[level === 'debug' ? 'log' : level]('roomlog:', ...args);
  }

  _state(room, state, code, extended) {
    this._emit('roomStateChanged', room, RoomStateChangedReason[state] || state, code, extended);
  }

  // Room modes.

  /** ZEGO enableMultiRoom: before the first login only; false afterwards. */
  enableMultiRoom(enable) {
    return this.setRoomMode(enable ? 'multi' : 'single');
  }

  /** The room mode, 'single' (default) or 'multi', before the first login. */
  setRoomMode(mode) {
    if ((mode !== 'single' && mode !== 'multi') || this._rooms.size > 0 || this._modeApplied) return false;
    this._mode = mode;
    return true;
  }

  // ZEGO rooms.

  /**
   * ZEGO loginRoom: logs into a room, creating it if needed. Resolves true;
   * rejects with the server's code (1002033 for a bad token, ...).
   */
  async loginRoom(roomID, token, user, config = {}) {
    if (!roomID || !user || !user.userID) throw localError('INVALID_ARGUMENT', 'loginRoom needs a room ID and a user', 'login');
    const c = config || {};
    const { quiet, maxMemberCount } = roomConfig(c, 'login');
    const entry = { op: 'login', user: { userID: user.userID, userName: user.userName || '' }, token, role: c.role, quiet, maxMemberCount };
    await this._enter('login', roomID, entryRequest(entry, roomID), entry);
    return true;
  }

  /**
   * ZEGO logoutRoom: leaves one room, or every room when roomID is left out.
   * Resolves with the rooms left.
   */
  async logoutRoom(roomID) {
    const rooms = await this._leave('logout', roomID ? { room: roomID } : undefined, 'logout');
    return rooms;
  }

  /**
   * ZEGO switchRoom(fromRoomID, toRoomID, {token}) and ZIM
   * switchRoom(fromRoomID, toRoomInfo, isCreateWhenRoomNotExisted, config).
   */
  async switchRoom(fromRoomID, to, configOrCreate, zimConfig) {
    const zim = typeof to === 'object' && to !== null;
    const toID = zim ? to.roomID : to;
    const req = { from: fromRoomID, to: toID };
    let entry;
    if (zim) {
      const create = configOrCreate !== false;
      Object.assign(req, { to_name: to.roomName || undefined, config: wireConfig(zimConfig), create_if_missing: create, token: this._token || undefined });
      entry = { op: create ? 'enter_room' : 'join_room', name: to.roomName, config: wireConfig(zimConfig), token: this._token };
    } else {
      const c = configOrCreate || {};
      const { quiet, maxMemberCount } = roomConfig(c, 'switch_room');
      // The capacity goes as the room config; the entry keeps it, so that
      // the room is entered again (as a ZIM enter, or below as a login)
      // with it.
      const config = maxMemberCount ? { max_member_count: maxMemberCount } : undefined;
      Object.assign(req, { token: c.token, role: c.role, config });
      if (quiet !== undefined) req.user_status_notify = !quiet;
      entry = { op: 'enter_room', token: c.token, role: c.role, quiet, maxMemberCount, config };
    }
    // The target is entered again, after a reconnection, the way the session
    // entered rooms before (ZEGO login, ZIM enter or join).
    const from = this._rooms.get(fromRoomID);
    if (from && from.entry.op === 'login' && this._user) entry = { ...entry, op: 'login', user: this._user, name: '', config: undefined };
    // A member is as quiet in the target as it was in fromRoomID unless the
    // config says (the server keeps the flag too; said explicitly, it also
    // holds for a switch decided again after its first step).
    if (entry.quiet === undefined) {
      entry.quiet = !!(from && from.entry.quiet);
      if (entry.quiet) req.user_status_notify = false;
    }
    let snap;
    try {
      snap = await this._enter('switch_room', toID, req, entry, () => this._leaving([fromRoomID], 'switch'));
    } catch (e) {
      // The reply was lost with the connection: the session may have left
      // fromRoomID. A new session does not enter it again (_adopt); a
      // resumed one says whether it is still in it (_resumed).
      if (isLostReply(e) && from && this._rooms.get(fromRoomID) === from) Object.assign(from, { exit: 'switch', unsure: true });
      throw e;
    }
    return zim ? { roomInfo: { baseInfo: { roomID: snap.roomID, roomName: snap.roomName } } } : true;
  }

  // ZIM rooms.

  /** ZIM login: the user and token of the ZIM room operations that follow. */
  async login(userInfo, token) {
    this._user = { userID: userInfo.userID, userName: userInfo.userName || '' };
    this._token = token;
    await this._connected(Date.now() + this._opts.requestTimeout);
  }

  /** ZIM createRoom: creates a room and joins it; 1902003 if it exists. */
  async createRoom(roomInfo, config) {
    return this._zimEnter('create_room', roomInfo, config);
  }

  /** ZIM enterRoom: joins a room, creating it if it does not exist. */
  async enterRoom(roomInfo, config) {
    return this._zimEnter('enter_room', roomInfo, config);
  }

  /** ZIM joinRoom: joins a room that exists; 1902002 otherwise. */
  async joinRoom(roomID) {
    const entry = { op: 'join_room', user: this._user, token: this._token };
    const snap = await this._enter('join_room', roomID, { room: roomID, user: wireUser(this._user), token: this._token || undefined }, entry);
    return { roomInfo: { baseInfo: { roomID: snap.roomID, roomName: snap.roomName } } };
  }

  async _zimEnter(op, roomInfo, config) {
    if (!roomInfo || !roomInfo.roomID) throw localError('INVALID_ARGUMENT', `${op} needs a roomID`, op);
    const cfg = wireConfig(config);
    const room = { id: roomInfo.roomID, name: roomInfo.roomName || undefined };
    // A created room is entered again with enter: creating it again would
    // fail while it exists.
    const entry = { op: 'enter_room', user: this._user, name: roomInfo.roomName, token: this._token, config: cfg };
    const snap = await this._enter(op, roomInfo.roomID, { room, user: wireUser(this._user), token: this._token || undefined, config: cfg }, entry);
    return { roomInfo: { baseInfo: { roomID: snap.roomID, roomName: snap.roomName } } };
  }

  /** ZIM leaveRoom. */
  async leaveRoom(roomID) {
    await this._leave('leave_room', { room: roomID }, 'leave');
    return { roomID };
  }

  /** ZIM leaveAllRoom: leaves every room of this session; resolves with their IDs. */
  async leaveAllRoom() {
    return { roomIDs: await this._leave('leave_all_rooms', undefined, 'leave') };
  }

  /** ZIM setRoomAttributes. */
  async setRoomAttributes(roomAttributes, roomID) {
    const d = await this._do('set_room_attributes', { room: roomID, attributes: roomAttributes });
    return { roomID, errorKeys: d.error_keys || [] };
  }

  /** ZIM deleteRoomAttributes. */
  async deleteRoomAttributes(keys, roomID) {
    const d = await this._do('delete_room_attributes', { room: roomID, keys });
    return { roomID, errorKeys: d.error_keys || [] };
  }

  /** The current state of a room the session is in. */
  async queryRoom(roomID) {
    return toSnapshot(await this._do('query_room', { room: roomID }));
  }

  // Messages and room information.

  /** ZEGO sendBroadcastMessage: reliable, ordered, kept in the room's history. */
  async sendBroadcastMessage(roomID, message) {
    const d = await this._do('broadcast', { room: roomID, message });
    return { errorCode: 0, messageID: d.message_id, seq: d.seq };
  }

  /** ZEGO sendBarrageMessage: best effort. */
  async sendBarrageMessage(roomID, message) {
    const d = await this._do('barrage', { room: roomID, message });
    return { errorCode: 0, messageID: d.message_id };
  }

  /** ZEGO sendCustomCommand: to the listed users, or every other member. */
  async sendCustomCommand(roomID, command, toUserList = []) {
    const to = toUserList.map((u) => (typeof u === 'string' ? u : u.userID));
    const d = await this._do('custom_command', { room: roomID, command: typeof command === 'string' ? command : JSON.stringify(command), to: to.length ? to : undefined });
    return { errorCode: 0, messageID: d.message_id, seq: d.seq };
  }

  /** ZEGO setRoomExtraInfo. */
  async setRoomExtraInfo(roomID, key, value) {
    await this._do('set_room_extra_info', { room: roomID, key, value });
    return { errorCode: 0 };
  }

  /** ZEGO setStreamExtraInfo. */
  async setStreamExtraInfo(streamID, extraInfo) {
    await this._do('set_stream_extra_info', { stream: streamID, extra_info: extraInfo });
    return { errorCode: 0 };
  }

  /**
   * ZEGO renewToken: replaces the session's token (from tokenWillExpire).
   * The token is the session's, so roomID (ZEGO's) changes nothing. Called
   * while reconnecting, the request waits for the connection, but that
   * reconnection already uses the token: the resume carries it, and rooms
   * entered again on a new session are entered with it, not with the token
   * that may have expired meanwhile (_restore, _relogin). A token the server
   * refuses is not kept.
   */
  async renewToken(token, roomID) {
    this._renewing = token;
    try {
      await this._do('renew_token', { token }, () => {
        this._token = token;
        for (const r of this._rooms.values()) r.entry.token = token;
      });
    } finally {
      if (this._renewing === token) this._renewing = '';
    }
    return true;
  }

  // Streams. publish and play put the stream and the play in the room's
  // log; the media itself flows on one RTCPeerConnection per published or
  // played stream, to the server's media plane, negotiated over the
  // WebSocket (media_offer and its answer; docs/protocol.md, "Media").

  /**
   * ZEGO startPublishingStream: publishes localStream as streamID (in
   * option.roomID; required in multi-room mode). Resolves once the media
   * connection is negotiated; publisherStateUpdate says when it flows.
   */
  async startPublishingStream(streamID, localStream, option = {}) {
    if (!streamID || typeof MediaStream === 'undefined' || !(localStream instanceof MediaStream)) {
      throw localError('INVALID_ARGUMENT', 'startPublishingStream needs a stream ID and a MediaStream', 'publish');
    }
    // pending: the publish request has no reply yet (a session started
    // over meanwhile does not end it: it is sent on the new one). starting:
    // the call has not returned. old: a stream ID published already (a new
    // camera, say) keeps its media until the new connection's offer
    // replaces it on the server (_supersede).
    const pub = { kind: 'publish', streamID, roomID: option.roomID || '', mediaStream: localStream, state: 'NO_PUBLISH', pc: null, pending: true, starting: true };
    pub.old = this._supersede(this._publishers, streamID);
    this._publishers.set(streamID, pub);
    this._mediaState(pub, 'PUBLISH_REQUESTING', 0, '');
    try {
      const d = await this._do('publish', { stream: streamID, room: option.roomID || undefined, extra_info: option.extraInfo || undefined });
      pub.pending = false;
      pub.roomID = d.room || pub.roomID;
      if (this._publishers.get(streamID) !== pub) throw endedError(pub);
      await this._connectPeer(pub);
      if (this._publishers.get(streamID) !== pub) throw endedError(pub);
    } catch (e) {
      const old = this._started(pub);
      // Failed, or ended meanwhile (then nothing else can reach the peer
      // connection it may have opened since).
      const tracked = this._publishers.get(streamID) === pub;
      this._closePeer(pub);
      // Refused before its offer went out: the media published before goes on.
      if (tracked && this._reinstate(this._publishers, pub, old)) throw e;
      this._closeSuperseded(old);
      if (tracked) {
        this._publishers.delete(streamID);
        if (pub.roomID && e.code !== 1903001) this._do('stop_publish', { stream: streamID }).catch(() => {});
        this._mediaState(pub, 'NO_PUBLISH', e.code || 0, 'failed');
      }
      throw e;
    }
    this._closeSuperseded(this._started(pub));
    return true;
  }

  /** ZEGO stopPublishingStream. */
  async stopPublishingStream(streamID) {
    const pub = this._publishers.get(streamID);
    await this._do('stop_publish', { stream: streamID });
    if (pub && this._publishers.get(streamID) === pub) {
      this._publishers.delete(streamID);
      this._closePeer(pub, true);
      this._mediaState(pub, 'NO_PUBLISH', 0, 'closed');
    }
    return true;
  }

  /**
   * ZEGO startPlayingStream: plays streamID and resolves with its
   * MediaStream (an audio and a video track, live once playerStateUpdate
   * says PLAYING). Without option.roomID the stream is played in the room it
   * is published in.
   */
  async startPlayingStream(streamID, option = {}) {
    if (!streamID) throw localError('INVALID_ARGUMENT', 'startPlayingStream needs a stream ID', 'play');
    if (typeof RTCPeerConnection === 'undefined') throw localError('MEDIA_FAILED', 'this browser has no WebRTC', 'play');
    // As for a publisher: a stream played already keeps playing until the
    // new connection's offer replaces it on the server.
    const player = { kind: 'play', streamID, roomID: option.roomID || '', mediaStream: new MediaStream(), state: 'NO_PLAY', pc: null, pending: true, starting: true };
    player.old = this._supersede(this._players, streamID);
    this._players.set(streamID, player);
    this._mediaState(player, 'PLAY_REQUESTING', 0, '');
    try {
      const d = await this._do('play', { stream: streamID, room: option.roomID || undefined });
      player.pending = false;
      player.roomID = d.room || player.roomID;
      if (this._players.get(streamID) !== player) throw endedError(player);
      await this._connectPeer(player);
      if (this._players.get(streamID) !== player) throw endedError(player);
    } catch (e) {
      const old = this._started(player);
      // Failed, or ended meanwhile (then nothing else can reach the peer
      // connection it may have opened since).
      const tracked = this._players.get(streamID) === player;
      this._closePeer(player);
      for (const t of player.mediaStream.getTracks()) t.stop();
      // Refused before its offer went out: the stream played before goes on.
      if (tracked && this._reinstate(this._players, player, old)) throw e;
      this._closeSuperseded(old);
      if (tracked) {
        this._players.delete(streamID);
        // Its play is in the room's log: stop it, or it would count against
        // the member's plays (1903007) with nothing behind it.
        if (!player.pending) this._do('stop_play', { stream: streamID, room: player.roomID || undefined }).catch(() => {});
        this._mediaState(player, 'NO_PLAY', e.code || 0, 'failed');
      }
      throw e;
    }
    this._closeSuperseded(this._started(player));
    return player.mediaStream;
  }

  // _supersede takes the entry of a stream ID started again out of use: its
  // peer connection stays up (the server replaces it when the new
  // connection's offer arrives, and says nothing of the old one), but nothing
  // of it reaches the server any more. It returns the live entry the new
  // start takes over, to be closed, or put back, once that start is over:
  // the current entry if its start is over, else (a start still in
  // progress, which now ends) the one that start had taken over.
  _supersede(entries, streamID) {
    const cur = entries.get(streamID);
    if (!cur) return null;
    cur.superseded = true;
    this._cancelIce(cur);
    if (!cur.starting) return cur.pc ? cur : null;
    const old = cur.old;
    cur.old = null;
    this._closePeer(cur);
    return old;
  }

  // _started marks entry's start over and returns the entry it took over,
  // if it still has it (a newer start of the stream ID takes it along).
  _started(entry) {
    entry.pending = false;
    entry.starting = false;
    const old = entry.old;
    entry.old = null;
    return old;
  }

  // _reinstate puts back the entry a new start superseded when the new one
  // failed before its offer went out (the server still has the old
  // connection), unless the engine stopped, and tells the app its state
  // again. It reports whether it did.
  _reinstate(entries, entry, old) {
    if (!old || !old.pc || entry.offered || this._stopErr) return false;
    old.superseded = false;
    entries.set(entry.streamID, old);
    const state = old.state;
    old.state = '';
    this._mediaState(old, state, 0, '');
    return true;
  }

  // _closeSuperseded ends what is left of a superseded entry: its connection,
  // and a player's tracks.
  _closeSuperseded(old) {
    if (!old) return;
    this._closePeer(old);
    if (old.kind === 'play') for (const t of old.mediaStream.getTracks()) t.stop();
  }

  /** ZEGO stopPlayingStream. */
  async stopPlayingStream(streamID) {
    const player = this._players.get(streamID);
    await this._do('stop_play', { stream: streamID, room: player && player.roomID ? player.roomID : undefined });
    this._endPlayer(streamID, player, 0, 'closed', true);
    return true;
  }

  // _connectPeer opens the peer connection of a publisher or a player and
  // negotiates it. A player's tracks are those of its MediaStream, replaced
  // when it connects again (its stream moved to another media node), so the
  // app's <video> keeps its srcObject.
  async _connectPeer(entry) {
    if (typeof RTCPeerConnection === 'undefined') throw localError('MEDIA_FAILED', 'this browser has no WebRTC', entry.kind);
    const pc = new RTCPeerConnection({ iceServers: this._opts.iceServers || [] });
    const old = entry.pc;
    entry.pc = pc;
    entry.offered = false;
    if (old) old.close();
    if (entry.kind === 'publish') {
      for (const track of entry.mediaStream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [entry.mediaStream] });
    } else {
      const tracks = ['audio', 'video'].map((k) => pc.addTransceiver(k, { direction: 'recvonly' }).receiver.track);
      for (const t of entry.mediaStream.getTracks()) {
        entry.mediaStream.removeTrack(t);
        t.stop();
      }
      for (const t of tracks) entry.mediaStream.addTrack(t);
    }
    pc.onicecandidate = (ev) => {
      // Candidates found after the offer left are trickled.
      if (ev.candidate && entry.offered && entry.pc === pc && !entry.superseded) {
        const c = ev.candidate;
        this._do('media_candidate', { stream: entry.streamID, kind: entry.kind, candidate: c.candidate, sdp_mid: c.sdpMid ?? undefined, sdp_mline_index: c.sdpMLineIndex ?? undefined }).catch(() => {});
      }
    };
    pc.oniceconnectionstatechange = () => this._iceChanged(entry, pc);
    await this._offer(entry, pc, 'media_offer');
  }

  // _offer makes pc's offer, waits a moment for its candidates (on a host
  // without STUN they are there at once), sends it and applies the answer.
  async _offer(entry, pc, op) {
    // A connection closed while its offer is being made (a newer start took
    // the stream over) may never settle createOffer: _closePeer cancels it.
    const cancelled = new Promise((_, reject) => {
      offerCancels.set(pc, () => reject(localError('MEDIA_FAILED', 'the connection was closed while its offer was made', op)));
    });
    cancelled.catch(() => {});
    let offer;
    try {
      offer = await Promise.race([pc.createOffer(op === 'media_ice_restart' ? { iceRestart: true } : undefined), cancelled]);
      await Promise.race([pc.setLocalDescription(offer), cancelled]);
    } catch (e) {
      if (e instanceof RoomlogError) throw e;
      throw localError('MEDIA_FAILED', `cannot make an offer: ${e.message}`, op);
    } finally {
      offerCancels.delete(pc);
    }
    await gathered(pc, 1000);
    if (this._replacedPeer(entry, pc)) return;
    entry.offered = true;
    // A new connection's answer, as it arrives (before the frames after it):
    // the endings from here on are the new connection's, those before (of
    // one found gone, on their way) were told already.
    const answered = op === 'media_offer' ? () => this._goneTold.delete(mediaKey(entry.kind, entry.streamID)) : undefined;
    const d = await this._do(op, { stream: entry.streamID, kind: entry.kind, sdp: pc.localDescription.sdp }, answered);
    if (this._replacedPeer(entry, pc)) return;
    if (d.node) entry.node = d.node; // where a check after a resume goes
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: d.sdp });
    } catch (e) {
      throw localError('MEDIA_FAILED', `cannot apply the answer: ${e.message}`, op);
    }
  }

  // _replacedPeer reports whether pc is no longer entry's connection (a
  // newer start or a move took the entry over: its caller decides). A
  // connection closed by destroyEngine fails its start instead, with
  // client_closed: the entry is still tracked, and the start would
  // otherwise resolve on a destroyed engine.
  _replacedPeer(entry, pc) {
    if (entry.pc === pc) return false;
    if (this._closed) throw this._stopped();
    return true;
  }

  // _iceChanged restarts ICE when the path broke (a network change): at once
  // if it failed, after a grace period if it is only disconnected. A
  // restart that did not bring the connection back (it failed again) is
  // followed by the next one only after a backoff (backoffMin doubling to
  // backoffMax, as reconnections), until the connection is up again
  // (entry.iceTries counts the restarts since then), as the Go SDK does
  // (transport/client/ice.go).
  _iceChanged(entry, pc) {
    if (entry.pc !== pc) return;
    const st = pc.iceConnectionState;
    if (st === 'connected' || st === 'completed') {
      this._cancelIce(entry);
      entry.iceTries = 0;
    } else if (st === 'failed') {
      this._cancelIce(entry);
      if (!entry.iceTries) this._restartIce(entry);
      else this._scheduleIce(entry, pc, this._backoff(entry.iceTries));
    } else if (st === 'disconnected') {
      this._cancelIce(entry);
      this._scheduleIce(entry, pc, 3000);
    } else if (st === 'closed') this._cancelIce(entry);
  }

  // _scheduleIce has the ICE of entry's connection pc restarted in ms,
  // unless cancelled (_cancelIce) meanwhile, or pc is no longer entry's
  // connection or came back by then.
  _scheduleIce(entry, pc, ms) {
    const timer = setTimeout(() => {
      if (entry.iceTimer !== timer) return;
      entry.iceTimer = null;
      if (entry.pc === pc && iceDown(pc)) this._restartIce(entry);
    }, ms);
    entry.iceTimer = timer;
  }

  // _cancelIce cancels entry's restart scheduled, if any.
  _cancelIce(entry) {
    clearTimeout(entry.iceTimer);
    entry.iceTimer = null;
  }

  // _restartIce restarts the ICE of entry's connection. One the server
  // refuses because the media node no longer has the connection (GONE) is
  // handled as a media_check after a resume that finds it gone (_mediaGone).
  // One that fails otherwise (a transient server error, a timeout, the reply
  // lost with the WebSocket, an answer that does not apply) rolls its offer
  // back, so that the connection can offer again, and is tried again after
  // a backoff while the connection is still down: its ICE state says nothing
  // more while it stays so.
  _restartIce(entry) {
    const pc = entry.pc;
    if (!pc || entry.superseded || this._closed) return;
    if (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed') return;
    // Not while an offer is out (a start's first, a move's, or a restart):
    // its answer sets the path up, and a second offer crossing it would
    // leave the two sides with different ICE credentials. If that answer
    // does not bring the path back, try again later.
    if (entry.restarting || pc.signalingState !== 'stable') {
      if (!entry.iceTimer && iceDown(pc)) this._scheduleIce(entry, pc, this._backoff(Math.max(entry.iceTries || 0, 1)));
      return;
    }
    entry.restarting = true;
    entry.iceTries = (entry.iceTries || 0) + 1;
    this._log('info', 'restarting ICE', entry.kind, entry.streamID, pc.iceConnectionState);
    this._offer(entry, pc, 'media_ice_restart')
      .catch(async (e) => {
        if (GONE.has(e.code)) {
          this._log('info', 'the media connection is gone', entry.kind, entry.streamID, e.message);
          this._mediaGone(entry, pc, e.code);
          return;
        }
        this._log('warn', 'ICE restart failed', entry.streamID, e.message);
        if (entry.pc !== pc) return; // closed, ended or replaced meanwhile
        if (pc.signalingState === 'have-local-offer') {
          try {
            await pc.setLocalDescription({ type: 'rollback' });
          } catch (err) {
            this._log('warn', 'cannot roll the ICE restart back', entry.streamID, err.message);
          }
        }
        if (entry.pc !== pc || entry.superseded || this._closed || !iceDown(pc)) return;
        this._cancelIce(entry);
        this._scheduleIce(entry, pc, this._backoff(entry.iceTries));
      })
      .finally(() => {
        entry.restarting = false;
      });
  }

  // _restartAllIce restarts every media connection that is not up: after a
  // reconnection or when the browser says the network is back.
  _restartAllIce() {
    for (const e of [...this._publishers.values(), ...this._players.values()]) this._restartIce(e);
  }

  _closePeer(entry, tell = false) {
    if (!entry || !entry.pc) return;
    const pc = entry.pc;
    entry.pc = null;
    this._cancelIce(entry);
    if (tell) this._do('media_close', { stream: entry.streamID, kind: entry.kind }).catch(() => {});
    const cancel = offerCancels.get(pc);
    if (cancel) cancel();
    pc.close();
  }

  // _mediaState emits a publisher's or player's state change, once.
  _mediaState(entry, state, code, reason) {
    if (entry.state === state && !code) return;
    entry.state = state;
    const result = { streamID: entry.streamID, state, errorCode: code, extendedData: reason || '' };
    this._emit(entry.kind === 'publish' ? 'publisherStateUpdate' : 'playerStateUpdate', result);
  }

  _endPlayer(streamID, player, code, reason, tell = false) {
    if (!player || this._players.get(streamID) !== player) return;
    this._players.delete(streamID);
    this._closePeer(player, tell);
    for (const t of player.mediaStream.getTracks()) t.stop();
    this._mediaState(player, 'NO_PLAY', code, reason);
  }

  _endPublisher(streamID, pub, code, reason) {
    if (!pub || this._publishers.get(streamID) !== pub) return;
    this._publishers.delete(streamID);
    this._closePeer(pub);
    this._mediaState(pub, 'NO_PUBLISH', code, reason);
  }

  // _mediaGone handles entry's connection pc, which the media node no longer
  // has (code: 1907003 media_peer_not_found, 1907002 media_node_unreachable),
  // as a media_check after a resume or a refused ICE restart found, unless
  // pc is no longer entry's connection or entry no longer the stream's: a
  // player connects again (PLAY_REQUESTING, reason 'gone'); a publisher's
  // media has ended (NO_PUBLISH, reason 'gone'). The media node's own ending
  // of pc may still be on its way: it is not told again (_mediaEvent).
  _mediaGone(entry, pc, code) {
    const id = entry.streamID;
    const entries = entry.kind === 'publish' ? this._publishers : this._players;
    if (!pc || entry.pc !== pc || entries.get(id) !== entry) return;
    this._goneTold.add(mediaKey(entry.kind, id));
    if (entry.kind === 'publish') {
      this._endPublisher(id, entry, code, 'gone');
      return;
    }
    this._cancelIce(entry);
    this._mediaState(entry, 'PLAY_REQUESTING', code, 'gone');
    this._connectPeer(entry).catch((e) => this._endPlayer(id, entry, e.code || 0, 'failed'));
  }

  // The media of a room the session left ends with it.
  _roomEnded(room, code) {
    for (const [id, p] of [...this._players]) if (p.roomID === room) this._endPlayer(id, p, code, 'ended');
    for (const [id, p] of [...this._publishers]) if (p.roomID === room) this._endPublisher(id, p, code, 'ended');
  }

  // _mediaEvent handles the server's publisher_state_update and
  // player_state_update.
  _mediaEvent(kind, d) {
    const entries = kind === 'publish' ? this._publishers : this._players;
    const entry = entries.get(d.stream);
    const ended = d.state === 'NO_PUBLISH' || d.state === 'NO_PLAY';
    // The ending of a connection the SDK found gone, and told the app of
    // (_mediaGone), arriving before the stream's next offer was answered:
    // the app heard of it once, and a publisher it published again right
    // after, or a player connecting again, goes on.
    if (ended && this._goneTold.delete(mediaKey(kind, d.stream))) {
      this._log('debug', 'the ending of a media connection found gone', kind, d.stream, d.reason);
      return;
    }
    if (!entry) return;
    // A start whose offer has not gone out has no connection the media node
    // could end: the ending is an earlier connection's of the stream, and
    // must not end this one. Either one the app stopped just before starting
    // again, or the live one this start took over (a camera switch): that
    // one is gone then, and is not put back should the start fail.
    if (ended && !entry.offered) {
      if (entry.old) {
        this._closeSuperseded(entry.old);
        entry.old = null;
      }
      return;
    }
    if (ended && d.reason === 'moved' && kind === 'play') {
      // The stream is on another media node now: connect again there.
      this._mediaState(entry, 'PLAY_REQUESTING', d.code, d.reason);
      this._connectPeer(entry).catch((e) => this._endPlayer(d.stream, entry, e.code || 0, 'failed'));
      return;
    }
    if (ended) {
      if (kind === 'publish') this._endPublisher(d.stream, entry, d.code, d.reason);
      else this._endPlayer(d.stream, entry, d.code, d.reason);
      return;
    }
    this._mediaState(entry, d.state, d.code, d.reason);
  }

  /**
   * ZEGO destroyEngine: closes the connection and stops reconnecting. Not a
   * logout: the server keeps the session in its rooms until its heartbeat
   * times out; call logoutRoom() first to leave at once.
   */
  destroyEngine() {
    if (this._closed) return;
    this._closed = true;
    this._stop(localError('CLIENT_CLOSED'));
    for (const e of [...this._publishers.values(), ...this._players.values()]) this._closePeer(e);
    const l = this._link;
    this._link = null;
    if (l) l.kill(true);
    if (this._wake) this._wake();
    if (typeof window !== 'undefined') window.removeEventListener('online', this._onOnline);
  }

  // Requests.

  _stop(err) {
    if (!this._stopErr || err.code === ErrorCodes.CLIENT_CLOSED[0]) this._stopErr = err;
    this._signal();
  }

  // _stopped is a new copy of the error every call fails with once the
  // engine stopped, so that each caller's op stays its own.
  _stopped() {
    const s = this._stopErr;
    const e = new RoomlogError(s.code, s.name, s.message, s.op);
    e.local = s.local;
    e.data = s.data;
    return e;
  }

  _signal() {
    for (const w of [...this._waiters]) w();
  }

  // _waitChange waits until the link or the stop state changes, or until the
  // deadline; false at the deadline.
  _waitChange(deadline) {
    return new Promise((resolve) => {
      const done = (ok) => {
        clearTimeout(timer);
        this._waiters.delete(wake);
        resolve(ok);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
      this._waiters.add(wake);
    });
  }

  // _connected resolves once there is a link, dialling the first one; it
  // rejects past the deadline or when the engine stopped.
  async _connected(deadline) {
    const giveUps = this._giveUps;
    for (;;) {
      if (this._stopErr) throw this._stopped();
      // The reconnection this call waited for gave up: it fails as the
      // rooms did (RECONNECT_FAILED, 1002053), not on a new session.
      if (this._giveUps !== giveUps) throw localError('TIMEOUT', 'the reconnect window ran out');
      if (this._link) return this._link;
      if (!this._reconnecting) {
        if (!this._connecting) {
          this._connecting = dial(this.server, Math.min(this._opts.dialTimeout, Math.max(deadline - Date.now(), 1)), this)
            .then((l) => {
              if (this._closed) {
                l.kill(true);
                throw this._stopped();
              }
              this._session = l.hello.session;
              this._resumeToken = l.hello.resume_token;
              this._modeApplied = false;
              this._link = l;
              this._signal();
              return l;
            })
            .finally(() => {
              this._connecting = null;
            });
        }
        return this._connecting;
      }
      if (!(await this._waitChange(deadline))) throw localError('TIMEOUT', `no connection within ${this._opts.requestTimeout} ms`);
    }
  }

  // _do sends one request on the current connection (or the next one, while
  // reconnecting) and resolves with the reply's data.
  async _do(op, data, hook) {
    const deadline = Date.now() + this._opts.requestTimeout;
    for (;;) {
      const link = await this._connected(deadline).catch((e) => {
        e.op = e.op || op;
        throw e;
      });
      try {
        return await link.request(op, data, Math.max(deadline - Date.now(), 1), hook);
      } catch (e) {
        if (e !== NOT_SENT) throw e;
        if (Date.now() >= deadline) throw localError('TIMEOUT', `no connection within ${this._opts.requestTimeout} ms`, op);
      }
    }
  }

  // _enter runs an operation that enters room: it sets the room mode first if
  // the app chose one, and the reply's snapshot starts the room's sequence
  // check (recorded before the room's next event is read).
  async _enter(op, room, req, entry, also) {
    if (this._mode && !this._modeApplied) {
      await this._do('set_room_mode', { mode: this._mode }, () => {
        this._modeApplied = true;
      });
    }
    let snap;
    this._entering.set(room, (this._entering.get(room) || 0) + 1);
    try {
      await this._do(op, req, (data) => {
        snap = toSnapshot(data);
        if (also) also();
        this._entered(room, data.seq, entry);
      });
    } finally {
      const n = this._entering.get(room) - 1;
      if (n > 0) this._entering.set(room, n);
      else this._entering.delete(room);
    }
    return snap;
  }

  _entered(room, seq, entry) {
    if (entry.token) this._token = entry.token;
    else entry.token = this._token;
    if (entry.op === 'login' && entry.user) this._user = entry.user;
    let r = this._rooms.get(room);
    if (!r) {
      r = { order: ++this._order };
      this._rooms.set(room, r);
    }
    Object.assign(r, { seq, entry, leaving: false, relogin: false, exit: '', unsure: false });
    // A leave of this room, or of every room, sent while this entry was in
    // flight left it (the server runs a connection's requests in turn):
    // until its outcome is known, the room is being left, and a new session
    // does not enter it again (_adopt).
    for (const leave of this._leaves) {
      if (!leave.entering.has(room)) continue;
      r.exit = leave.reason;
      if (!leave.tracks.includes(r)) {
        r.exiting = (r.exiting || 0) + 1;
        leave.tracks.push(r);
      }
      if (!leave.names.includes(room)) leave.names.push(room);
    }
  }

  // _leaving marks rooms the session left (the reply of a leave or switch
  // came): their departure event is on its way; they are never entered again.
  _leaving(rooms, reason) {
    for (const room of rooms) {
      const r = this._rooms.get(room);
      if (r) Object.assign(r, { leaving: true, exit: reason });
    }
  }

  // _leave runs logout, leave_room or leave_all_rooms and resolves with the
  // rooms left. Until its outcome is known, the rooms it leaves carry `exit`
  // (why they are left) and `exiting` (the leaves in flight): a new session
  // does not enter them again (_adopt). If the connection is lost after the
  // request left, before its reply, the call waits for the session (within
  // the request timeout): a resumed session still in the rooms gets the
  // request again, with the same idempotency key (the server answers one it
  // ran with the original reply); one that left them (resume says so, their
  // departures follow) or a new session (the old one timed out: _adopt told
  // the app Logout) is in none of them, and the call resolves. A lost leave
  // that gives up keeps `exit` until resume says where the session is.
  async _leave(op, req, reason) {
    const deadline = Date.now() + this._opts.requestTimeout;
    const names = req && req.room ? [req.room] : this._activeRooms();
    const tracks = names.map((name) => this._rooms.get(name)).filter(Boolean);
    for (const r of tracks) Object.assign(r, { exit: reason, exiting: (r.exiting || 0) + 1 });
    // It also leaves the rooms it names that are being entered (see
    // _entered): every such room for a leave of every room.
    const entering = new Set([...this._entering.keys()].filter((name) => !(req && req.room) || name === req.room));
    const leave = { entering, reason, tracks, names };
    this._leaves.add(leave);
    const key = `leave-${++this._keys}`;
    const adopts = this._adopts;
    let left = [];
    let lost = null;
    let done = false;
    try {
      for (;;) {
        const link = await this._connected(deadline).catch((e) => {
          e.op = e.op || op;
          // Still reconnecting at the deadline, the outcome is unknown; past
          // the reconnect window or destroyEngine, the call fails as others.
          throw lost && this._reconnecting && !this._stopErr ? lost : e;
        });
        // Left already: by the session that timed out (a new one was
        // adopted), or not entered again by the re-logins (_relogin).
        if (lost || this._adopts !== adopts || (tracks.length && tracks.every((r) => r.left))) {
          const still = names.some((name) => {
            const r = this._rooms.get(name);
            return r && !r.leaving;
          });
          if (!still) {
            done = true;
            return names;
          }
        }
        try {
          await link.request(op, req, Math.max(deadline - Date.now(), 1), (data) => {
            left = data.rooms || [];
            this._leaving(left, reason);
          }, key);
          done = true;
          return left;
        } catch (e) {
          if (e === NOT_SENT) {
            if (Date.now() >= deadline) throw localError('TIMEOUT', `no connection within ${this._opts.requestTimeout} ms`, op);
            continue;
          }
          if (!isLostReply(e)) throw e;
          lost = e;
          // The outcome is unknown until the server says where the session
          // is (_resumed) or the session is new (_adopt): a later leave that
          // fails must not clear the mark.
          for (const r of tracks) r.unsure = true;
        }
      }
    } finally {
      this._leaves.delete(leave);
      for (const r of tracks) {
        r.exiting--;
        // Refused, or never sent: the session is still in the room.
        if (!done && !lost && !r.exiting && !r.unsure) r.exit = '';
      }
    }
  }

  _activeRooms() {
    return [...this._rooms.entries()]
      .filter(([, r]) => !r.leaving)
      .sort((a, b) => a[1].order - b[1].order)
      .map(([name]) => name);
  }

  // Events from the server.

  _event(link, f) {
    this._sequence(f);
    const d = f.data || {};
    const room = f.room || '';
    switch (f.event) {
      case 'room_state_changed': {
        const r = this._rooms.get(room);
        if ((d.state === 'Logout' || d.state === 'KickOut') && r && f.seq && f.seq >= r.seq) {
          // A departure (a room event) is the last event of the room for
          // this session: the room is never entered again, its media ends.
          this._rooms.delete(room);
          this._roomEnded(room, d.code);
        }
        if (d.state === 'LoginFailed') this._loginFailed.add(room);
        this._state(room, d.state, d.code, { reason: d.reason || '', zimState: d.zim_state || '', zimEvent: d.zim_event || '', bySession: d.by_session || '' });
        break;
      }
      case 'room_user_update': {
        const users = (d.users || []).map(toUser);
        const r = this._rooms.get(room);
        if (r) for (const u of users) track(r, 'users', u.userID, d.update_type === 'ADD' && u);
        this._emit('roomUserUpdate', room, d.update_type, users);
        this._emit(d.update_type === 'ADD' ? 'roomMemberJoined' : 'roomMemberLeft', this, { roomID: room, memberList: users });
        break;
      }
      case 'room_stream_update': {
        const streams = (d.streams || []).map(toStream);
        const r = this._rooms.get(room);
        if (r) for (const st of streams) track(r, 'streams', st.streamID, d.update_type === 'ADD' && st);
        this._emit('roomStreamUpdate', room, d.update_type, streams, '');
        if (d.update_type === 'DELETE') {
          // A stopped stream stops its player: the media connection closes,
          // the tracks end, NO_PLAY, and the play is stopped in the log.
          for (const s of streams) {
            const player = this._players.get(s.streamID);
            if (player && (!player.roomID || player.roomID === room)) {
              this._endPlayer(s.streamID, player, 0, 'ended');
              this._do('stop_play', { stream: s.streamID, room }).catch(() => {});
            }
          }
        }
        break;
      }
      case 'stream_extra_info_update':
        this._emit('roomStreamExtraInfoUpdate', room, (d.streams || []).map(toStream));
        break;
      case 'broadcast_message':
        this._emit('IMRecvBroadcastMessage', room, [toMessage(d)]);
        break;
      case 'barrage_message':
        this._emit('IMRecvBarrageMessage', room, [toMessage(d)]);
        break;
      case 'custom_command':
        this._emit('IMRecvCustomCommand', room, toUser(d.from), d.command);
        break;
      case 'room_extra_info_update':
        this._emit('roomExtraInfoUpdate', room, (d.items || []).map(toExtraInfo));
        break;
      case 'room_attributes_update':
        this._emit('roomAttributesUpdated', this, { roomID: room, infos: attributeInfos(d) });
        break;
      case 'room_attributes_batch_update':
        // A ZIM batch (beginRoomAttributesBatchOperation) as one update.
        this._emit('roomAttributesBatchUpdated', this, { roomID: room, infos: attributeInfos(d) });
        break;
      case 'room_member_attributes_update':
        this._emit('roomMemberAttributesUpdated', this, {
          roomID: room,
          infos: (d.members || []).map((m) => ({ attributesInfo: { userID: m.user, attributes: m.set || {}, deletedKeys: m.deleted || [] } })),
          operatedInfo: { userID: (d.by && d.by.id) || '', userName: (d.by && d.by.name) || '' },
        });
        break;
      case 'room_online_user_count':
        this._emit('roomOnlineUserCountUpdate', room, d.count);
        break;
      case 'token_will_expire': {
        // The session's token is every room's: each room the session is in
        // or entering is told (the warning can precede the login's reply).
        const rooms = [...new Set([...this._activeRooms(), ...this._entering.keys()])];
        for (const r of rooms.length ? rooms : ['']) this._emit('tokenWillExpire', r, d.remain_seconds);
        break;
      }
      case 'publisher_state_update':
        this._mediaEvent('publish', d);
        break;
      case 'player_state_update':
        this._mediaEvent('play', d);
        break;
      case 'session_closing':
        this._log('info', 'the server closes the connection', d);
        if (d.code === ErrorCodes.SESSION_REPLACED[0]) link.replaced = true;
        this._emit('sessionClosing', d.code, d.error, d.message);
        break;
      default:
        // hello (read by dial), or a newer server's event: ignored, as the
        // protocol's versioning by addition intends.
        break;
    }
  }

  // _sequence checks a room event's place in its room's sequence. Frames
  // without a seq are not room events and are not checked.
  _sequence(f) {
    if (!f.seq || !f.room) return;
    const r = this._rooms.get(f.room);
    if (!r) return;
    if ((f.prev || 0) !== r.seq) {
      this._log('warn', 'gap in a room\'s events', f.room, 'expected prev', r.seq, 'got', f.prev, 'seq', f.seq);
      this._emit('roomEventGap', f.room, r.seq, f.prev || 0);
    }
    r.seq = Math.max(r.seq, f.seq);
  }

  // Reconnection.

  // _lost handles the end of a link: for the current link it starts the
  // reconnection; a link being set up by a reconnection just ends.
  _lost(link, why) {
    if (!link.kill(false)) return;
    if (this._link !== link || this._stopErr) return;
    this._link = null;
    this._signal();
    if (link.replaced) {
      this._log('warn', 'the session was resumed on another connection; not reconnecting');
      this._stop(localError('SESSION_REPLACED'));
      return;
    }
    const rooms = this._activeRooms();
    this._log('warn', 'connection lost; reconnecting', why);
    for (const room of rooms) {
      this._state(room, 'Reconnecting', ErrorCodes.RECONNECTING[0], { reason: 'connection_lost', zimState: 'Connecting', zimEvent: 'NetworkInterrupted', bySession: '' });
    }
    this._reconnect();
  }

  _backoff(n) {
    let d = this._opts.backoffMin;
    for (let i = 1; i < n && d < this._opts.backoffMax; i++) d *= 2;
    d = Math.min(d, this._opts.backoffMax);
    return d / 2 + Math.random() * (d / 2);
  }

  // _sleep waits ms, less if the network comes back or the engine stops.
  _sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(ms, 0));
      const self = this;
      function done() {
        clearTimeout(t);
        if (self._wake === done) self._wake = null;
        resolve();
      }
      this._wake = done;
    });
  }

  async _reconnect() {
    this._reconnecting = true;
    const deadline = Date.now() + this._opts.reconnectWindow;
    try {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) await this._sleep(Math.min(this._backoff(attempt), deadline - Date.now()));
        if (this._stopErr) return;
        if (Date.now() >= deadline) {
          this._giveUp();
          return;
        }
        let link = null;
        try {
          link = await dial(this.server, Math.max(1, Math.min(this._opts.dialTimeout, deadline - Date.now())), this);
          if (this._stopErr) {
            link.kill(true);
            return;
          }
          await this._restore(link);
          if (this._stopErr) {
            link.kill(true);
            return;
          }
          if (link.dead) throw new Error('the connection failed while restoring the session');
          this._link = link;
          this._signal();
          this._log('info', 'connection restored after', attempt + 1, 'attempts');
          // The media connections do not depend on the WebSocket; those the
          // network change broke too get fresh ICE.
          this._restartAllIce();
          return;
        } catch (e) {
          if (link) link.kill(false);
          this._log('info', 'reconnection attempt failed', attempt + 1, e.message || e);
        }
      }
    } finally {
      this._reconnecting = false;
      this._signal();
    }
  }

  // _giveUp ends the reconnection: RECONNECT_FAILED for every room. The
  // engine forgets the session; the app may log in again.
  _giveUp() {
    this._giveUps++;
    const rooms = this._activeRooms();
    this._rooms.clear();
    this._session = this._resumeToken = '';
    this._modeApplied = false;
    this._log('warn', 'the reconnect window ran out');
    for (const room of rooms) {
      this._roomEnded(room, ErrorCodes.TIMEOUT[0]);
      this._state(room, 'ReconnectFailed', ErrorCodes.TIMEOUT[0], { reason: 'reconnect_window_elapsed', zimState: 'Disconnected', zimEvent: 'NetworkInterrupted', bySession: '' });
    }
    // The session is over, and every media connection of it: those of a
    // room being left too (its departure was lost with the connection), as
    // the Go SDK ends all media on ReconnectFailed.
    for (const [id, p] of [...this._players]) this._endPlayer(id, p, ErrorCodes.TIMEOUT[0], 'ended');
    for (const [id, p] of [...this._publishers]) this._endPublisher(id, p, ErrorCodes.TIMEOUT[0], 'ended');
  }

  _request(link, op, data, hook) {
    // Restoring the session stops with the engine (destroyEngine).
    if (this._stopErr) return Promise.reject(this._stopped());
    return link.request(op, data, this._opts.requestTimeout, hook).catch((e) => {
      throw e === NOT_SENT ? localError('RECONNECTING', 'the connection was lost', op) : e;
    });
  }

  // _restore brings the session back on link: resume first, else a new
  // session and re-logins. A rejection means link is unusable.
  async _restore(link) {
    const seqs = {};
    for (const [name, r] of this._rooms) if (!r.relogin) seqs[name] = r.seq;
    let resumed = false;
    let strays = [];
    let kicked = {};
    if (this._resumeToken) {
      try {
        // The session's token goes with it: the resumed session keeps it.
        // Quiet rooms are named: a room the session was removed from while
        // away is replayed without user updates (the server no longer knows
        // the flag of a member that is gone).
        const quiet = Object.keys(seqs).filter((name) => this._rooms.get(name).entry.quiet);
        const req = { resume_token: this._resumeToken, rooms: seqs, quiet: quiet.length ? quiet : undefined, token: this._renewing || this._token || undefined };
        await this._request(link, 'resume', req, (data) => {
          strays = this._resumed(data, seqs);
        });
        resumed = true;
      } catch (e) {
        if (isLocal(e) || TRANSIENT.has(e.code)) throw e;
        // resume_failed: the session timed out server-side. Start over on
        // the new connection's session, except in the rooms the refusal
        // says the old session was kicked out of.
        this._log('info', 'the session cannot be resumed; logging in again', e.message);
        kicked = (e.data && e.data.kicked) || {};
      }
    }
    if (!resumed) this._adopt(link.hello, kicked);
    // Rooms the session entered by a request whose reply was lost with the
    // connection: the app was told it failed, so leave them.
    for (const room of strays) {
      if (this._rooms.has(room)) continue;
      await this._request(link, 'logout', { room }).catch((e) => {
        if (isLocal(e)) throw e;
      });
    }
    if (this._mode && !this._modeApplied) {
      await this._request(link, 'set_room_mode', { mode: this._mode }).catch((e) => {
        if (isLocal(e)) throw e;
        this._log('warn', 'cannot restore the room mode on the new session', e.message);
      });
      this._modeApplied = true;
    }
    await this._relogin(link);
    // Once the link is installed (its requests wait for it): a media node
    // that does not answer must not hold up the reconnection.
    if (resumed) setTimeout(() => this._checkMedia(), 0);
  }

  // _checkMedia asks, after a resume, whether the media nodes still have each
  // media connection: the state events they sent while the connection was
  // down are lost. A player whose connection is gone (its stream moved to
  // another media node meanwhile, or its node died) connects again; a
  // publisher whose connection is gone ends with the code (1907003 or
  // 1907002), as after a refused ICE restart (_mediaGone). Each check goes
  // to the node that answered the offer.
  _checkMedia() {
    const check = async (entry) => {
      try {
        await this._do('media_check', { stream: entry.streamID, kind: entry.kind, node: entry.node || undefined });
        return 0;
      } catch (e) {
        if (GONE.has(e.code)) return e.code;
        this._log('warn', 'cannot check a media connection after a resume', entry.streamID, e.message);
        return 0;
      }
    };
    for (const p of [...this._players.values(), ...this._publishers.values()]) {
      if (!p.pc) continue;
      const pc = p.pc;
      check(p).then((code) => {
        if (code) this._mediaGone(p, pc, code);
      });
    }
  }

  // _resumed applies a successful resume reply, before the missed events that
  // follow it are read, and returns the stray rooms.
  _resumed(data, sent) {
    if (data.session) this._session = data.session;
    if (data.resume_token) this._resumeToken = data.resume_token;
    const rooms = data.rooms || {};
    const strays = Object.keys(rooms)
      .filter((name) => rooms[name].status === 'unknown' && !this._rooms.has(name))
      .sort();
    const back = [];
    const forgotten = []; // [room, why the app was leaving it ('' if it was not)]
    for (const name of Object.keys(sent)) {
      const r = this._rooms.get(name);
      if (!r) continue;
      const st = rooms[name] ? rooms[name].status : '';
      if (st === 'resumed') {
        // The session is still in the room: a leave whose reply was lost did
        // not take effect (one still waiting sends it again: see _leave).
        if (!r.exiting) Object.assign(r, { exit: '', unsure: false });
        if (!r.leaving) back.push(name);
      } else if (st === 'left') {
        r.leaving = true; // the departure is among the missed events
      } else {
        // The server does not know the session in this room (it was not in
        // it at the seq named, nor is now): nothing more comes for it, not
        // even a departure. The app, told RECONNECTING, gets its final
        // state below.
        this._log('warn', 'resume says nothing of a room; forgetting it', name, st);
        this._rooms.delete(name);
        forgotten.push([name, r.leaving || r.exit ? r.exit || 'logout' : '']);
      }
    }
    for (const room of back.sort()) {
      this._state(room, 'Reconnected', 0, { reason: 'resumed', zimState: 'Connected', zimEvent: 'Success', bySession: '' });
    }
    forgotten.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [room, exit] of forgotten) {
      if (exit) {
        // The app asked to leave it, and the session is out of it: the
        // LOGOUT its departure would have brought.
        this._roomEnded(room, 0);
        this._state(room, 'Logout', 0, { reason: exit, zimState: 'Disconnected', zimEvent: 'Success', bySession: '' });
      } else {
        // The session could not be brought back into the room: as for a
        // re-login the server refuses, the app must enter it again.
        this._roomEnded(room, NOT_IN_ROOM);
        this._state(room, 'LoginFailed', NOT_IN_ROOM, { reason: 'not_resumed', zimState: 'Disconnected', zimEvent: 'LoginFailed', bySession: '' });
      }
    }
    return strays;
  }

  _adopt(hello, kicked) {
    // The old session timed out: its streams and plays ended with it.
    // A publish or play still waiting to be sent goes on the new session.
    // No ending of the old session's connections comes to the new one.
    this._goneTold.clear();
    for (const [id, p] of [...this._publishers]) if (!p.pending) this._endPublisher(id, p, ErrorCodes.TIMEOUT[0], 'ended');
    for (const [id, p] of [...this._players]) if (!p.pending) this._endPlayer(id, p, ErrorCodes.TIMEOUT[0], 'ended');
    this._session = hello.session;
    this._resumeToken = hello.resume_token;
    this._modeApplied = false;
    this._adopts++;
    // Rooms the app left, or asked to leave (the reply may have been lost),
    // are not entered again. Their departure was lost with the old session
    // (which timed out, and left them): the app is told here.
    // Nor are the rooms the old session was kicked out of while the engine
    // was away (kicked, from the resume's refusal): a kick is final, and
    // entering again would kick the session that took the room. The app
    // is told the KickOut it missed.
    const ended = [];
    for (const [name, r] of [...this._rooms]) {
      const k = kicked && Object.prototype.hasOwnProperty.call(kicked, name) ? kicked[name] : null;
      if (r.leaving || r.exit) {
        this._rooms.delete(name);
        ended.push([name, 0, 'Logout', { reason: r.exit || 'logout', zimState: 'Disconnected', zimEvent: 'Success', bySession: '' }]);
      } else if (k && k.state === 'KickOut') {
        this._rooms.delete(name);
        ended.push([name, k.code, 'KickOut', { reason: k.reason || '', zimState: k.zim_state || '', zimEvent: k.zim_event || '', bySession: k.by_session || '' }]);
      } else Object.assign(r, { relogin: true, seq: 0 });
    }
    for (const [room, code, state, extended] of ended) {
      this._roomEnded(room, code);
      this._state(room, state, code, extended);
    }
  }

  // _vanished tells the app, as a room is entered again on a new session,
  // of the users and streams it was told of that left while the session was
  // lost: their departures went with the old session. The server then ADDs
  // everyone and every stream there now.
  _vanished(room, r, snap) {
    const users = new Set(snap.userList.map((u) => u.userID));
    const streams = new Set(snap.streamList.map((st) => st.streamID));
    const self = this._user ? this._user.userID : '';
    const goneUsers = [...(r.users || new Map()).values()].filter((u) => !users.has(u.userID) && u.userID !== self);
    const goneStreams = [...(r.streams || new Map()).values()].filter((st) => !streams.has(st.streamID));
    r.users = new Map();
    r.streams = new Map();
    if (goneStreams.length) this._emit('roomStreamUpdate', room, 'DELETE', goneStreams, '');
    if (goneUsers.length) {
      this._emit('roomUserUpdate', room, 'DELETE', goneUsers);
      this._emit('roomMemberLeft', this, { roomID: room, memberList: goneUsers });
    }
  }

  // _relogin enters again every room whose session was lost. A room the
  // server refuses gets LOGIN_FAILED and is forgotten.
  async _relogin(link) {
    for (;;) {
      let name = '';
      let next = null;
      for (const [n, r] of this._rooms) if (r.relogin && (!next || r.order < next.order)) [name, next] = [n, r];
      if (!next) return;
      if (next.exit) {
        // The app asked to leave it meanwhile (logoutRoom, leaveRoom, ...,
        // while an earlier room was entered again): it is not entered
        // again, and the leave is done (_leave sees it left).
        this._dropLeft(name, next);
        continue;
      }
      this._loginFailed.delete(name);
      // The engine's latest token first (a renewToken made while
      // reconnecting, else the last one given to any call: the session's),
      // then, if refused, the one the room was entered with (a token
      // naming rooms may not name this one).
      const tokens = [...new Set([this._renewing, this._token, next.entry.token].filter(Boolean))];
      for (let i = 0; ; i++) {
        const e = tokens.length ? { ...next.entry, token: tokens[i] } : next.entry;
        try {
          await this._request(link, e.op, entryRequest(e, name), (data) => {
            this._vanished(name, next, toSnapshot(data));
            this._entered(name, data.seq, e);
          });
        } catch (err) {
          if (isLocal(err)) throw err;
          if (next.exit && this._rooms.get(name) === next && !TRANSIENT.has(err.code)) {
            // Left while this attempt was refused for good: not tried
            // again. (One whose outcome is unknown (a timeout) may have
            // entered the room: it fails as below, and the leave is sent.)
            this._dropLeft(name, next);
            break;
          }
          if (err.code === TOKEN_INVALID && i + 1 < tokens.length && this._rooms.get(name) === next) continue;
          if (this._rooms.get(name) === next) this._rooms.delete(name);
          this._log('warn', 'cannot enter a room again after reconnecting', name, err.message);
          if (!this._loginFailed.has(name)) {
            this._state(name, 'LoginFailed', err.code, { reason: 'relogin_failed', zimState: 'Disconnected', zimEvent: 'LoginFailed', bySession: '' });
          }
        }
        break;
      }
    }
  }

  // _dropLeft forgets room name (entry r), which the app asked to leave
  // while its session was lost and the rooms were being entered again: the
  // app is told Logout, and the leave is done (_leave sees r.left).
  _dropLeft(name, r) {
    this._rooms.delete(name);
    r.left = true;
    this._roomEnded(name, 0);
    this._state(name, 'Logout', 0, { reason: r.exit, zimState: 'Disconnected', zimEvent: 'Success', bySession: '' });
  }
}

// track records in room entry r's map `what` (users or streams) that id
// was added (v, the user or stream) or deleted (v false), so that a re-login
// can tell the app what it missed (_vanished).
function track(r, what, id, v) {
  if (!r[what]) r[what] = new Map();
  if (v) r[what].set(id, v);
  else r[what].delete(id);
}

// offerCancels holds, per peer connection whose offer is being made, what
// fails that offer when the connection is closed (_offer, _closePeer).
const offerCancels = new WeakMap();

// attributeInfos turns a room attribute change into ZIM's infos.
function attributeInfos(d) {
  const infos = [];
  if (d.set && Object.keys(d.set).length) infos.push({ action: 'Set', roomAttributes: d.set });
  if (d.deleted && d.deleted.length) infos.push({ action: 'Delete', roomAttributes: Object.fromEntries(d.deleted.map((k) => [k, ''])) });
  return infos;
}

// roomConfig reads ZEGO's room config (loginRoom, switchRoom): quiet is
// true when the app turned user updates off (isUserStatusNotify, or the Web
// SDK's userUpdate, false), false when it turned them on, undefined when it
// said nothing (roomlog's default: on); maxMemberCount is the capacity of a
// room the call creates (0: none).
function roomConfig(c, op) {
  const flags = [c.isUserStatusNotify, c.userUpdate].filter((v) => v !== undefined && v !== null);
  for (const v of flags) if (typeof v !== 'boolean') throw localError('INVALID_ARGUMENT', 'isUserStatusNotify and userUpdate are booleans', op);
  const quiet = flags.length ? flags.includes(false) : undefined;
  const max = c.maxMemberCount === undefined || c.maxMemberCount === null ? 0 : c.maxMemberCount;
  if (!Number.isSafeInteger(max) || max < 0) throw localError('INVALID_ARGUMENT', 'maxMemberCount is a whole number of members, 0 for none', op);
  return { quiet, maxMemberCount: max };
}

// entryRequest is the request that enters room again as e entered it (and,
// for loginRoom, the first time).
function entryRequest(e, room) {
  const token = e.token || undefined;
  switch (e.op) {
    case 'login':
      return {
        room,
        user: wireUser(e.user),
        token,
        role: e.role,
        max_member_count: e.maxMemberCount || undefined,
        user_status_notify: e.quiet ? false : undefined,
      };
    case 'join_room':
      return { room, user: wireUser(e.user), token, role: e.role, user_status_notify: e.quiet ? false : undefined };
    default:
      return {
        room: { id: room, name: e.name || undefined },
        user: wireUser(e.user),
        token,
        role: e.role,
        config: e.config,
        user_status_notify: e.quiet ? false : undefined,
      };
  }
}

/** ZEGO's name for the engine, so that ported apps keep their code. */
export { RoomlogEngine as ZegoExpressEngine };
export default RoomlogEngine;

// The tests' harness, evaluated in a page of the server under test: it loads
// the SDK the server serves, makes engines, and records every callback of
// every engine so that the Go side can wait for what an app would see.
window.T = (() => {
  const events = [];
  const engines = {};
  let sdk = null;
  const names = [
    'roomStateChanged', 'roomUserUpdate', 'roomStreamUpdate', 'roomStreamExtraInfoUpdate',
    'IMRecvBroadcastMessage', 'IMRecvBarrageMessage', 'IMRecvCustomCommand', 'roomExtraInfoUpdate',
    'roomOnlineUserCountUpdate', 'tokenWillExpire', 'publisherStateUpdate', 'playerStateUpdate',
    'roomMemberJoined', 'roomMemberLeft', 'roomAttributesUpdated', 'roomEventGap', 'sessionClosing',
  ];
  // Engines passed to ZIM callbacks are recorded by name.
  const plain = (v) => {
    for (const [n, e] of Object.entries(engines)) if (v === e) return `engine:${n}`;
    return v;
  };
  return {
    events,
    engines,
    async load() {
      sdk = await import('/sdk/roomlog.js');
      return Object.keys(sdk).sort();
    },
    sdk: () => sdk,
    // engine makes an engine called name that records its callbacks.
    engine(name, server, options) {
      const e = new sdk.RoomlogEngine('dev', server, { backoffMin: 50, backoffMax: 200, logLevel: 'warn', ...options });
      engines[name] = e;
      for (const ev of names) e.on(ev, (...args) => events.push({ who: name, event: ev, args: args.map(plain), at: Date.now() }));
      return true;
    },
    // run awaits an engine call and reports its outcome as data.
    async run(name, method, ...args) {
      try {
        const v = await engines[name][method](...args);
        return { ok: true, value: v instanceof MediaStream ? { tracks: v.getTracks().length } : plain(v) };
      } catch (e) {
        return { ok: false, code: e.code, name: e.name, message: e.message, isRoomlogError: e instanceof sdk.RoomlogError };
      }
    },
    // waitFor resolves with the first event (from index `from`) that pred
    // accepts, or rejects after ms.
    waitFor(pred, ms = 10000, from = 0) {
      return new Promise((resolve, reject) => {
        const deadline = Date.now() + ms;
        const check = () => {
          for (let i = from; i < events.length; i++) if (pred(events[i])) return resolve({ index: i, ...events[i] });
          if (Date.now() > deadline) return reject(new Error(`no such event within ${ms} ms; got ${JSON.stringify(events.slice(from)).slice(-3000)}`));
          setTimeout(check, 15);
        };
        check();
      });
    },
    // of returns the recorded events of one engine (and kind).
    of(who, event) {
      return events.filter((e) => (!who || e.who === who) && (!event || e.event === event));
    },
  };
})();

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
    'roomMemberJoined', 'roomMemberLeft', 'roomAttributesUpdated', 'roomAttributesBatchUpdated',
    'roomMemberAttributesUpdated', 'roomEventGap', 'sessionClosing',
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
        return { ok: false, code: e.code, name: e.name, message: e.message, data: e.data, op: e.op, isRoomlogError: e instanceof sdk.RoomlogError };
      }
    },
    // publishCamera publishes the (fake) camera and microphone.
    async publishCamera(name, streamID, roomID) {
      const cam = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
      return this.run(name, 'startPublishingStream', streamID, cam, roomID ? { roomID } : {});
    },
    // play plays a stream into a <video> of the page.
    async play(name, streamID, option) {
      const r = await this.run(name, 'startPlayingStream', streamID, option || {});
      if (r.ok) {
        const v = document.createElement('video');
        v.autoplay = v.muted = v.playsInline = true;
        v.id = `video-${name}-${streamID}`;
        v.srcObject = engines[name]._players.get(streamID).mediaStream;
        document.body.append(v);
      }
      return r;
    },
    // inbound sums the inbound-rtp stats of a played stream's connection.
    async inbound(name, streamID) {
      const p = engines[name]._players.get(streamID);
      const out = { video: { bytesReceived: 0, framesDecoded: 0 }, audio: { packetsReceived: 0 }, tracks: [] };
      const v = document.getElementById(`video-${name}-${streamID}`);
      if (v && v.srcObject) out.tracks = v.srcObject.getTracks().map((t) => t.readyState);
      if (!p || !p.pc) return out;
      (await p.pc.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        if (r.kind === 'video') {
          out.video.bytesReceived += r.bytesReceived || 0;
          out.video.framesDecoded += r.framesDecoded || 0;
        } else if (r.kind === 'audio') {
          out.audio.packetsReceived += r.packetsReceived || 0;
        }
      });
      return out;
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
    // of returns the recorded events of one engine (and kind), each with
    // its index in the record.
    of(who, event) {
      return events.map((e, i) => ({ index: i, ...e })).filter((e) => (!who || e.who === who) && (!event || e.event === event));
    },
  };
})();

// SPDX-License-Identifier: MIT
// The chat page. Two parts: a small client of the Centrifugo JSON protocol that ringcast speaks
// at /connection/websocket (connect, one recoverable subscription with join/leave, publish,
// presence, history, pings answered, reconnection with backoff and recovery), and the page
// around it. Written here rather than taken from the SDK's browser build so that no third-party
// code is compiled into the broker; the protocol is a few JSON objects (the README says more).
// Nothing inline runs (the page's Content-Security-Policy allows only the broker's own files),
// and everything that comes from the room reaches the page as text, never as HTML.
'use strict';

(function () {
  // ---- the protocol client ------------------------------------------------------------------

  // Reconnection backoff with full jitter, as the SDK does: min + random(0 .. min * 2^attempt),
  // at most MAX; the attempt count resets when a connect is answered.
  const MIN_DELAY_MS = 500;
  const MAX_DELAY_MS = 20000;
  // A command without an answer in this time counts as a lost connection (the SDK's 5 s).
  const CALL_TIMEOUT_MS = 5000;
  // The server pings every `ping` seconds (connect reply); silence for that long plus this
  // means the connection is gone even if the socket has not noticed.
  const PING_GRACE_MS = 10000;

  // A close code after which reconnecting cannot help (protocol §7): 3500-3999 and 4500-4999
  // are terminal by Centrifugo's rules, 1009 means our message was too big.
  function terminal(code) {
    return (code >= 3500 && code < 4000) || (code >= 4500 && code < 5000) || code === 1009;
  }

  class ChatClient {
    // <url>: ws(s)://.../connection/websocket; <channel>: the room; <on>: callbacks
    // state(name, detail), subscribed(info), pub(pub), join(info), leave(info), fatal(text).
    constructor(url, channel, on) {
      this.url = url;
      this.channel = channel;
      this.on = on;
      this.ws = null;
      this.gen = 0; // which socket the callbacks belong to: older ones are ignored
      this.nextId = 1; // command ids keep increasing across reconnects (protocol §2)
      this.pending = new Map(); // id -> { resolve, reject, timer }
      this.outbox = [];
      this.attempt = 0;
      this.timer = null;
      this.watchdog = null;
      this.pingMs = 0;
      this.stopped = true;
      this.subscribed = false;
      // The stream position (protocol §8): kept across reconnects to recover what was missed.
      this.recoverable = false;
      this.epoch = '';
      this.offset = 0;
    }

    start() {
      this.stopped = false;
      this.open();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      this.drop();
    }

    // Sends <method> with <params>; resolves with the reply's result, rejects with its error
    // ({ code, message, temporary? }) or { code: 0 } when the connection is lost first.
    call(method, params) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        return Promise.reject({ code: 0, message: 'not connected' });
      }
      const id = this.nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject({ code: 1, message: 'timeout' });
          // What the SDK does: a command that gets no answer means the connection is bad.
          this.reconnect();
        }, CALL_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer });
        this.write(JSON.stringify({ [method]: params, id }));
      });
    }

    // ---- internals ----

    // Commands issued in one turn of the event loop leave in one frame, one JSON object a
    // line (protocol §2): connect and subscribe travel together.
    write(line) {
      this.outbox.push(line);
      if (this.outbox.length > 1) return;
      queueMicrotask(() => {
        const text = this.outbox.join('\n');
        this.outbox = [];
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
      });
    }

    open() {
      this.timer = null;
      const gen = ++this.gen;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.on.state('connecting', { attempt: this.attempt });
      ws.onopen = () => {
        if (gen === this.gen) this.handshake();
      };
      ws.onmessage = (ev) => {
        if (gen === this.gen) this.receive(ev.data);
      };
      ws.onclose = (ev) => {
        if (gen === this.gen) this.closed(ev.code, ev.reason);
      };
    }

    handshake() {
      const params = { channel: this.channel, recoverable: true, positioned: true,
        join_leave: true };
      if (this.recoverable && this.epoch) {
        params.recover = true;
        params.epoch = this.epoch;
        if (this.offset > 0) params.offset = this.offset;
      }
      const gen = this.gen;
      this.call('connect', { name: 'ringcast-chat' }).then((r) => {
        if (gen !== this.gen) return;
        this.attempt = 0;
        this.pingMs = (r.ping || 0) * 1000;
        this.arm();
        this.on.state('connected', { client: r.client });
      }, (e) => this.failed('connect', e, gen));
      this.call('subscribe', params).then((r) => {
        if (gen === this.gen) this.onSubscribed(r);
      }, (e) => this.failed('subscribe', e, gen));
    }

    // An error reply to connect or subscribe. Temporary ones (a flag, a code under 100, or 109
    // for a token) are worth another connection; the rest are final (protocol §8).
    failed(what, e, gen) {
      if (gen !== this.gen || e.code === 0 || e.code === 1) return; // lost or timed out: handled
      if (e.temporary || e.code < 100 || e.code === 109) {
        this.reconnect();
        return;
      }
      const text = e.code === 103 ? 'this room needs permission you do not have'
        : what + ' refused: ' + e.message + ' (' + e.code + ')';
      this.stop();
      this.on.fatal(text);
    }

    onSubscribed(r) {
      const wasRecovering = !!r.was_recovering;
      const recovered = !!r.recovered;
      const before = { epoch: this.epoch, offset: this.offset };
      this.recoverable = !!r.recoverable;
      this.epoch = r.epoch || '';
      // Recovered: the reply's offset is the one asked for, and the publications move it on.
      // Not recovered: it is the stream's top, and what lay between is lost to this page.
      this.offset = r.offset || 0;
      const pubs = recovered ? r.publications || [] : [];
      for (const p of pubs) if (p.offset > this.offset) this.offset = p.offset;
      const first = !this.subscribed && !wasRecovering;
      this.subscribed = true;
      this.on.subscribed({ first, wasRecovering, recovered, pubs, before, epoch: this.epoch });
    }

    receive(data) {
      this.arm();
      for (const line of String(data).split('\n')) {
        if (!line) continue;
        let m;
        try {
          m = JSON.parse(line);
        } catch (e) {
          this.reconnect();
          return;
        }
        if (m.id > 0) this.reply(m);
        else if (m.push) this.push(m.push);
        else this.write('{}'); // a server ping; the pong is the same empty object
      }
    }

    reply(m) {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) {
        p.reject(m.error);
        return;
      }
      // The result sits under the method's name: {"id":3,"publish":{}}.
      const key = Object.keys(m).find((k) => k !== 'id');
      p.resolve(key ? m[key] : {});
    }

    push(p) {
      if (p.channel !== this.channel) return;
      if (p.pub) {
        if (p.pub.offset > this.offset) this.offset = p.pub.offset;
        this.on.pub(p.pub);
      } else if (p.join) {
        this.on.join(p.join.info || {});
      } else if (p.leave) {
        this.on.leave(p.leave.info || {});
      } else if (p.unsubscribe) {
        // Codes from 2500 ask for a resubscribe with recovery; below, the server removed us.
        if (p.unsubscribe.code >= 2500) {
          this.reconnect();
        } else {
          this.stop();
          this.on.fatal('removed from the room: ' + (p.unsubscribe.reason || 'by the server'));
        }
      }
    }

    // The socket is gone (or we gave up on it): every command waiting fails, then backoff.
    closed(code, reason) {
      this.drop();
      if (this.stopped) return;
      if (terminal(code)) {
        this.stopped = true;
        this.on.fatal('the broker closed the connection: ' + (reason || 'code ' + code));
        return;
      }
      const cap = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
      const delay = Math.min(MAX_DELAY_MS, MIN_DELAY_MS + Math.random() * cap);
      this.attempt++;
      this.on.state('reconnecting', { delay, attempt: this.attempt });
      this.timer = setTimeout(() => this.open(), delay);
    }

    // Gives up on the current socket (drop closes it) and goes through the backoff.
    reconnect() {
      if (this.ws) this.closed(0, '');
    }

    drop() {
      this.gen++;
      clearTimeout(this.watchdog);
      this.watchdog = null;
      const ws = this.ws;
      this.ws = null;
      this.outbox = [];
      if (ws && ws.readyState <= WebSocket.OPEN) {
        ws.onclose = null;
        ws.close();
      }
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject({ code: 0, message: 'connection lost' });
      }
      this.pending.clear();
    }

    // Any frame shows the connection lives; silence past the ping interval and a grace does not.
    arm() {
      if (!this.pingMs) return;
      clearTimeout(this.watchdog);
      this.watchdog = setTimeout(() => this.reconnect(), this.pingMs + PING_GRACE_MS);
    }
  }

  // ---- the page -----------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const HISTORY_LIMIT = 50;
  const NAME_KEY = 'ringcast.chat.name';
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

  let client = null;
  let me = null; // { name, room, clients: Set of this page's client ids, past and present }
  let names = new Map(); // client id -> the name its messages carry
  let people = new Map(); // client id -> ClientInfo
  let items = []; // the message list in order: { seg, offset, li }
  let seen = new Set(); // 'seg:offset' of what is shown
  let seg = 0; // bumped at every gap: offsets after a lost stretch are a new run

  function setStatus(text, state) {
    const el = $('status');
    el.textContent = text;
    el.dataset.state = state;
    el.classList.toggle('bad', state === 'failed' || state === 'reconnecting');
  }

  // Room names as the broker takes them: 1 to 255 bytes of UTF-8, no '/', no control
  // characters (ARCHITECTURE.md, room names).
  function roomProblem(room) {
    if (!room) return 'Pick a room.';
    if (new TextEncoder().encode(room).length > 255) return 'That room name is too long.';
    if (room.includes('/')) return 'A room name cannot contain “/”.';
    if (/[\u0000-\u001f\u007f]/.test(room)) return 'A room name cannot contain control characters.';
    return null;
  }

  // Who a ClientInfo is, for people: a name a token gave (conn_info.name), the name its
  // messages carry, the token's user, and otherwise "guest" and the start of its client id.
  function displayName(info) {
    if (!info) return 'someone';
    if (me && me.clients.has(info.client)) return me.name;
    const ci = info.conn_info;
    if (ci && typeof ci === 'object' && typeof ci.name === 'string' && ci.name) return ci.name;
    if (names.has(info.client)) return names.get(info.client);
    if (info.user) return info.user;
    return 'guest ' + String(info.client || '').slice(0, 4);
  }

  function learn(clientId, name) {
    if (!clientId || names.get(clientId) === name) return;
    names.set(clientId, name);
    if (people.has(clientId)) renderPeople();
  }

  function renderPeople() {
    const list = Array.from(people.values()).map((info) => ({
      info, name: displayName(info), mine: me && me.clients.has(info.client),
    }));
    list.sort((a, b) => (b.mine - a.mine) || a.name.localeCompare(b.name));
    const lis = list.map((p) => {
      const li = document.createElement('li');
      li.dataset.client = p.info.client || '';
      li.textContent = p.name;
      if (p.mine) {
        li.classList.add('mine');
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = ' (you)';
        li.appendChild(you);
      }
      return li;
    });
    $('people').replaceChildren(...lis);
    $('people-count').textContent = String(list.length);
  }

  // What a publication says. The page publishes {name, text, time}; a raw member of the same
  // room (WS /room/<name>) sends anything, which arrives as a string or as its JSON.
  function parsePub(pub) {
    const d = pub.data;
    if (d && typeof d === 'object' && !Array.isArray(d) && typeof d.text === 'string') {
      const name = typeof d.name === 'string' ? d.name.trim().slice(0, 40) : '';
      return { name, text: d.text, time: typeof d.time === 'number' ? d.time : null };
    }
    return { name: '', text: typeof d === 'string' ? d : JSON.stringify(d), time: null };
  }

  function nearBottom() {
    const ol = $('messages');
    return ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  }

  // Puts <li> at its place by (seg, offset): history can arrive after live messages.
  function place(li, offset) {
    const stick = nearBottom();
    const ol = $('messages');
    let i = items.length;
    while (i > 0 && (items[i - 1].seg > seg || (items[i - 1].seg === seg &&
           items[i - 1].offset > offset))) i--;
    const item = { seg, offset, li };
    if (i === items.length) ol.appendChild(li);
    else ol.insertBefore(li, items[i].li);
    items.splice(i, 0, item);
    if (stick) ol.scrollTop = ol.scrollHeight;
  }

  function showPub(pub) {
    const offset = pub.offset || 0;
    if (offset) {
      const key = seg + ':' + offset;
      if (seen.has(key)) return;
      seen.add(key);
    }
    const m = parsePub(pub);
    const info = pub.info || null;
    if (info && m.name) learn(info.client, m.name);
    const li = document.createElement('li');
    li.className = 'msg';
    if (offset) li.dataset.offset = String(offset);
    if (info && me.clients.has(info.client)) li.classList.add('mine');
    const head = document.createElement('div');
    head.className = 'head';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.name || (info ? displayName(info) : 'raw room member');
    head.appendChild(who);
    if (m.time) {
      const t = document.createElement('time');
      const when = new Date(m.time);
      if (!isNaN(when)) {
        t.dateTime = when.toISOString();
        t.textContent = timeFmt.format(when);
        head.appendChild(t);
      }
    }
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = m.text;
    li.append(head, text);
    place(li, offset || (items.length ? items[items.length - 1].offset : 0));
  }

  function showNote(text, cls) {
    const li = document.createElement('li');
    li.className = 'note ' + cls;
    li.setAttribute('role', 'note');
    li.textContent = text;
    place(li, 0);
  }

  function loadHistory(skipUpTo) {
    const room = me.room;
    client.call('history', { channel: room, limit: HISTORY_LIMIT, reverse: true }).then((r) => {
      if (!me || me.room !== room) return;
      const pubs = (r.publications || []).slice().reverse();
      for (const p of pubs) if (!(p.offset <= skipUpTo)) showPub(p);
    }, (e) => {
      if (e.code) setStatus('Could not load the room’s history: ' + e.message, 'subscribed');
    });
  }

  function loadPresence() {
    const room = me.room;
    client.call('presence', { channel: room }).then((r) => {
      if (!me || me.room !== room) return;
      people = new Map(Object.entries(r.presence || {}));
      renderPeople();
    }, () => {});
  }

  const handlers = {
    state(name, d) {
      if (name === 'connecting') {
        setStatus(d.attempt ? 'Reconnecting…' : 'Connecting…', 'connecting');
      } else if (name === 'connected') {
        me.clients.add(d.client);
        setStatus('Connected; entering ' + me.room + '…', 'connected');
      } else if (name === 'reconnecting') {
        $('send').disabled = true;
        setStatus('Connection lost; trying again in ' + (d.delay / 1000).toFixed(1) + ' s.',
                  'reconnecting');
      }
    },
    subscribed(d) {
      let note = '';
      if (d.first) {
        loadHistory(0);
      } else if (d.recovered) {
        for (const p of d.pubs) showPub(p);
        note = d.pubs.length ? ' Caught up on ' + d.pubs.length +
          (d.pubs.length === 1 ? ' message.' : ' messages.') : '';
      } else {
        // The room moved on further than it keeps (or its history was lost): say so where the
        // hole is, then show the room's recent messages after the mark.
        seg++;
        showNote('Some messages could not be recovered.', 'gap');
        loadHistory(d.epoch === d.before.epoch ? d.before.offset : 0);
      }
      loadPresence();
      $('send').disabled = false;
      setStatus('In ' + me.room + ' as ' + me.name + '.' + note, 'subscribed');
    },
    pub(p) {
      showPub(p);
    },
    join(info) {
      if (!info.client) return;
      people.set(info.client, info);
      renderPeople();
    },
    leave(info) {
      if (people.delete(info.client)) renderPeople();
    },
    fatal(text) {
      $('send').disabled = true;
      setStatus('Disconnected: ' + text + '. Leave and enter again to retry.', 'failed');
    },
  };

  function enter(name, room) {
    me = { name, room, clients: new Set() };
    names = new Map();
    people = new Map();
    items = [];
    seen = new Set();
    seg = 0;
    $('messages').replaceChildren();
    renderPeople();
    $('room-name').textContent = room;
    document.title = room + ' · ringcast chat';
    $('enter').hidden = true;
    $('chat').hidden = false;
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    history.replaceState(null, '', url);
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    client = new ChatClient(scheme + location.host + '/connection/websocket', room, handlers);
    client.start();
    $('text').focus();
  }

  function leave() {
    if (client) client.stop();
    client = null;
    me = null;
    $('send').disabled = true;
    $('chat').hidden = true;
    $('enter').hidden = false;
    document.title = 'ringcast · chat';
    setStatus('Pick a name and a room.', 'idle');
    $('name').focus();
  }

  $('enter').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('name').value.trim();
    const room = $('room').value.trim();
    const problem = name ? roomProblem(room) : 'Pick a name.';
    if (problem) {
      setStatus(problem, 'failed');
      return;
    }
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (e) {
      // Storage may be off (private windows): the name is simply asked again next time.
    }
    enter(name, room);
  });

  $('leave').addEventListener('click', leave);

  $('compose').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('text');
    const text = input.value;
    if (!text.trim() || !client) return;
    input.value = '';
    client.call('publish', { channel: me.room, data: { name: me.name, text, time: Date.now() } })
      .catch((e) => {
        if (!input.value) input.value = text;
        setStatus('Not sent (' + e.message + '); it is back in the box.', 'subscribed');
      });
  });

  // ---- the stats panel ----------------------------------------------------------------------

  const STATS_MS = 2000;
  const RATE_WINDOW_MS = 4000;
  const LATENCY_WINDOW_MS = 10000;
  const samples = []; // { t, s }
  let statsTimer = null;
  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  function older(ms) {
    const last = samples[samples.length - 1];
    for (let i = samples.length - 2; i >= 0; i--) if (last.t - samples[i].t >= ms) return samples[i];
    return samples.length > 1 ? samples[0] : null;
  }

  function show(id, text, raw) {
    $(id).textContent = text;
    $(id).dataset.value = raw == null ? '' : String(raw);
  }

  function onStats(s) {
    const now = { t: performance.now(), s };
    samples.push(now);
    while (samples.length > 2 && now.t - samples[1].t > LATENCY_WINDOW_MS) samples.shift();
    const a = older(RATE_WINDOW_MS);
    let rate = null;
    if (a && now.t > a.t && s.messages_received >= a.s.messages_received) {
      rate = (s.messages_received - a.s.messages_received) / ((now.t - a.t) / 1000);
    }
    const lat = ringcastStats.latency(a ? older(LATENCY_WINDOW_MS).s : null, s);
    show('s-conns', nf0.format(s.connections), s.connections);
    show('s-rate', rate == null ? '—' : (rate < 10 ? nf1 : nf0).format(rate), rate);
    const p99 = lat.p99;
    show('s-p99', p99 == null ? '—' : p99 < 0.001 ? nf0.format(p99 * 1e6) + ' µs'
      : nf1.format(p99 * 1e3) + ' ms', p99);
  }

  async function pollStats() {
    statsTimer = null;
    try {
      const res = await fetch('/stats', { cache: 'no-store' });
      if (res.ok) onStats(await res.json());
    } catch (e) {
      // The broker is away: the chat status says so; the panel keeps its last figures.
    }
    scheduleStats();
  }

  // Only while the page is visible: a forgotten tab costs the broker nothing.
  function scheduleStats() {
    if (!statsTimer && !document.hidden) statsTimer = setTimeout(pollStats, STATS_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(statsTimer);
      statsTimer = null;
    } else {
      scheduleStats();
    }
  });

  // ---- start --------------------------------------------------------------------------------

  const params = new URLSearchParams(location.search);
  if (params.get('room')) $('room').value = params.get('room');
  try {
    $('name').value = localStorage.getItem(NAME_KEY) || '';
  } catch (e) {
    // No storage: an empty name field.
  }
  (($('name').value ? $('room') : $('name'))).focus();
  pollStats();
})();

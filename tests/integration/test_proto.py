# SPDX-License-Identifier: MIT
"""Protocol mode, WS /connection/websocket: the Centrifugo client protocol in JSON
(PROTOCOL-CENTRIFUGO.md), driven by a raw-socket client sending JSON frames. Covers connect
(anonymous, HS256 tokens good, bad and expired), first-command-must-be-connect, bad input
closes, subscribe/publish/pub push with offsets and the publisher's info, channel rules (`$`
and `#`), batched commands, the app-level ping, presence and join/leave across shards, history,
positioning and recovery (with a gap too old to recover, and under a running publisher),
refresh and sub_refresh, expiry (3005) and stale connections (3502), server-side subscriptions
from the token, rpc (108), and raw rooms and protocol channels as one namespace."""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from util import OP_TEXT, PROBE, RawWS, WSClosed  # noqa: E402

SECRET = "test-secret-42"
UUID_HEX = set("0123456789abcdef")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(claims, secret=SECRET, alg="HS256"):
    h = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    c = b64u(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (h + "." + c).encode(), hashlib.sha256).digest()
    return h + "." + c + "." + b64u(sig)


class Client:
    """A protocol client over RawWS: sends commands, reads replies and pushes one by one."""

    def __init__(self, b):
        self.ws = RawWS(b.port, "/connection/websocket")
        self.pending = []
        self.frames = []  # every text frame received, as text

    def send(self, *cmds):
        self.ws.send_text("\n".join(json.dumps(c) for c in cmds))

    def next(self, timeout=5.0):
        """Next JSON message (a reply, a push or a ping `{}`)."""
        while not self.pending:
            op, data = self.ws.recv_message(timeout)
            assert op == OP_TEXT, "binary frame from the broker"
            text = data.decode()
            self.frames.append(text)
            self.pending.extend(json.loads(line) for line in text.split("\n"))
        return self.pending.pop(0)

    def reply(self, id_, timeout=5.0):
        """Next message, which must be the reply to <id_> (pings skipped)."""
        while True:
            m = self.next(timeout)
            if m == {}:
                continue
            assert m.get("id") == id_, "expected reply %d, got %r" % (id_, m)
            return m

    def push(self, timeout=5.0, skip_replies=False):
        while True:
            m = self.next(timeout)
            if m == {} or (skip_replies and "id" in m):
                continue
            assert "push" in m, "expected a push, got %r" % m
            return m["push"]

    def reply_and_push(self, id_, timeout=5.0):
        """The reply to publish <id_> and the pub push it made, which may come in either order
        (§5). Returns (reply, push)."""
        reply = push = None
        while reply is None or push is None:
            m = self.next(timeout)
            if m.get("id") == id_:
                reply = m
            elif "push" in m:
                push = m["push"]
            elif m != {}:
                raise AssertionError("unexpected %r" % (m,))
        return reply, push

    def connect(self, tok=None, id_=1):
        body = {"name": "test"}
        if tok:
            body["token"] = tok
        self.send({"connect": body, "id": id_})
        r = self.reply(id_)
        if "connect" in r:
            self.client = r["connect"]["client"]
        return r

    def expect_close(self, timeout=5.0):
        try:
            while True:
                self.next(timeout)
        except WSClosed as e:
            return e.code, e.reason
        raise AssertionError("not closed")

    def silence(self, seconds):
        try:
            m = self.next(seconds)
        except Exception:  # noqa: BLE001 - the timeout we hope for
            return
        raise AssertionError("expected nothing, got %r" % (m,))

    def close(self):
        try:
            self.ws.close()
        except OSError:
            pass
        self.ws.sock.close()


def bare(push):
    """A pub push without the fields that vary (the publisher's info, the offset)."""
    pub = dict(push["pub"])
    pub.pop("info", None)
    pub.pop("offset", None)
    return {"channel": push["channel"], "pub": pub}


def subscribed(b, chan, n=1):
    """n clients connected and subscribed to <chan>."""
    out = []
    for _ in range(n):
        c = Client(b)
        c.connect()
        c.send({"subscribe": {"channel": chan}, "id": 2})
        r = c.reply(2)
        assert r == {"id": 2, "subscribe": {}}, r
        out.append(c)
    return out


def settle_proto(b, chan, clients):
    """A subscription reaches the room's home through a cross-shard queue: publish probes by
    name until every client has got one, then drain what is left."""
    p = Client(b)
    p.connect()
    got = set()
    deadline = time.monotonic() + 10
    n = 100
    while len(got) < len(clients) and time.monotonic() < deadline:
        p.send({"publish": {"channel": chan, "data": PROBE}, "id": n})
        n += 1
        for i, c in enumerate(clients):
            if i in got:
                continue
            try:
                m = c.push(0.05)
                if m.get("pub", {}).get("data") == PROBE:
                    got.add(i)
            except Exception:  # noqa: BLE001 - not there yet
                pass
    assert len(got) == len(clients), "settle: %d of %d" % (len(got), len(clients))
    p.close()
    time.sleep(0.2)
    for c in clients:  # drop later probes
        while True:
            try:
                m = c.next(0.1)
            except Exception:  # noqa: BLE001
                break
            assert m == {} or m.get("push", {}).get("pub", {}).get("data") == PROBE, m


def case_connect_anonymous(b):
    c = Client(b)
    r = c.connect(id_=7)
    res = r["connect"]
    cid = res["client"]
    assert len(cid) == 36 and cid[14] == "4" and cid[19] in "89ab", cid
    assert set(cid.replace("-", "")) <= UUID_HEX, cid
    assert res["ping"] == 25 and res["pong"] is True, res
    assert "expires" not in res, res
    c.close()


def case_first_command_must_be_connect(b):
    c = Client(b)
    c.send({"subscribe": {"channel": "x"}, "id": 1})
    code, reason = c.expect_close()
    assert code == 3501 and reason == b"bad request", (code, reason)
    c.close()


def case_bad_input_closes(b):
    for what, frame in [("not JSON", "{nope"), ("unknown method", '{"frobnicate":{},"id":2}'),
                        ("empty channel", '{"subscribe":{"channel":""},"id":2}')]:
        c = Client(b)
        c.connect()
        c.ws.send_text(frame)
        code, _ = c.expect_close()
        assert code == 3501, (what, code)
        c.close()
    c = Client(b)
    c.connect()
    c.ws.send_binary(b'{"publish":{"channel":"a","data":1},"id":2}')
    code, _ = c.expect_close()
    assert code == 3501, ("binary", code)
    c.close()


def case_second_connect_closes(b):
    c = Client(b)
    c.connect()
    c.send({"connect": {}, "id": 2})
    assert c.expect_close()[0] == 3501
    c.close()


def case_batch_one_frame(b):
    """connect and subscribe in one frame, as the SDK sends them: both replies, in order, in
    one frame."""
    c = Client(b)
    c.send({"connect": {"name": "js"}, "id": 1}, {"subscribe": {"channel": "batch"}, "id": 2},
           {"presence": {"channel": "batch"}, "id": 3})
    r1, r2, r3 = c.reply(1), c.reply(2), c.reply(3)
    assert "connect" in r1 and r2 == {"id": 2, "subscribe": {}}, (r1, r2)
    assert r3["presence"]["presence"][r1["connect"]["client"]] == {
        "user": "", "client": r1["connect"]["client"]}, r3
    c.close()


def case_rpc_and_send(b):
    c = Client(b)
    c.connect()
    c.send({"rpc": {"method": "m", "data": {}}, "id": 7})
    assert c.reply(7) == {"id": 7, "error": {"code": 108, "message": "not available"}}
    # send is fire-and-forget: no reply, and the connection lives on.
    c.send({"send": {"data": {"x": 1}}})
    c.send({"unsubscribe": {"channel": "never"}, "id": 8})
    assert c.reply(8) == {"id": 8, "unsubscribe": {}}
    c.close()


def case_publish_subscribe(b):
    a, bb = subscribed(b, "chat", 2)
    settle_proto(b, "chat", [a, bb])
    a.send({"publish": {"channel": "chat", "data": {"text": "hello", "n": 1}}, "id": 3})
    # The publisher gets its own publication too (Centrifugo semantics).
    reply, push = a.reply_and_push(3)
    assert reply == {"id": 3, "publish": {}}, reply
    assert bare(push) == {"channel": "chat", "pub": {"data": {"text": "hello", "n": 1}}}, push
    # The publisher's ClientInfo and the channel's offset ride along (§5, §6).
    assert push["pub"]["info"] == {"user": "", "client": a.client}, push
    got = bb.push()
    assert got == push, (got, push)
    # Order per publisher.
    for i in range(20):
        bb.send({"publish": {"channel": "chat", "data": i}, "id": 10 + i})
    seen = []
    while len(seen) < 20:
        p = a.push()
        seen.append(p["pub"]["data"])
    assert seen == list(range(20)), seen
    # Unsubscribed: nothing more.
    a.send({"unsubscribe": {"channel": "chat"}, "id": 50})
    assert a.reply(50) == {"id": 50, "unsubscribe": {}}
    bb.send({"publish": {"channel": "chat", "data": "after"}, "id": 51})
    while True:
        p = bb.push(skip_replies=True)
        if p["pub"]["data"] == "after":
            break
    a.silence(0.5)
    a.close()
    bb.close()


def case_subscribe_then_publish_same_frame(b):
    """The subscribe reply comes before the pub push of the same frame's publish."""
    c = Client(b)
    c.connect()
    c.send({"subscribe": {"channel": "same"}, "id": 2},
           {"publish": {"channel": "same", "data": "x"}, "id": 3})
    m = c.next()
    assert m == {"id": 2, "subscribe": {}}, m
    c.close()


def case_already_subscribed(b):
    c = Client(b)
    c.connect()
    c.send({"subscribe": {"channel": "twice"}, "id": 2},
           {"subscribe": {"channel": "twice"}, "id": 3})
    assert c.reply(2) == {"id": 2, "subscribe": {}}
    r = c.reply(3)
    assert r["error"]["code"] == 105, r
    c.close()


def case_channel_limit(b):
    """128 channels per connection, as Centrifugo's default; the next gets 106; one freed
    makes room again."""
    c = Client(b)
    c.connect()
    c.send(*({"subscribe": {"channel": "lim-%d" % i}, "id": 10 + i} for i in range(129)))
    for i in range(128):
        assert c.reply(10 + i) == {"id": 10 + i, "subscribe": {}}
    r = c.reply(138)
    assert r["error"]["code"] == 106, r
    c.send({"unsubscribe": {"channel": "lim-0"}, "id": 200},
           {"subscribe": {"channel": "lim-x"}, "id": 201})
    assert c.reply(200) == {"id": 200, "unsubscribe": {}}
    assert c.reply(201) == {"id": 201, "subscribe": {}}
    c.close()


def case_raw_and_proto_one_namespace(b):
    (p,) = subscribed(b, "lobby")
    raw = RawWS(b.port, "/room/lobby")
    # Wait until both the raw member and the subscriber are known to the room.
    deadline = time.monotonic() + 10
    while True:
        raw.send_text('{"probe":1}')
        try:
            m = p.push(0.2)
            if m["pub"]["data"] == {"probe": 1}:
                break
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
    time.sleep(0.3)
    while True:
        try:
            p.next(0.1)
        except Exception:  # noqa: BLE001
            break
    # raw -> protocol: JSON text passes as JSON, anything else as a string.
    raw.send_text('  {"a": [1, 2]}  ')
    first = p.push()
    assert bare(first) == {"channel": "lobby", "pub": {"data": {"a": [1, 2]}}}, first
    assert "info" not in first["pub"], first  # a raw member has no ClientInfo
    raw.send_text("plain text")
    nxt = p.push()
    assert bare(nxt) == {"channel": "lobby", "pub": {"data": "plain text"}}, nxt
    assert nxt["pub"]["offset"] == first["pub"]["offset"] + 1, (first, nxt)
    raw.send_binary(b"\x01\x02")
    assert p.push()["pub"]["data"] == "\x01\x02"
    # protocol -> raw: the JSON text of data, as a text frame.
    p.send({"publish": {"channel": "lobby", "data": {"from": "sdk"}}, "id": 9})
    reply, push = p.reply_and_push(9)
    assert reply == {"id": 9, "publish": {}}, reply
    assert bare(push) == {"channel": "lobby", "pub": {"data": {"from": "sdk"}}}, push
    while True:
        op, data = raw.recv_message(5)
        if data not in (b'{"probe":1}',):
            break
    assert op == OP_TEXT and json.loads(data) == {"from": "sdk"}, (op, data)
    raw.close()
    p.close()


def case_ping_pong(b):
    """--ping-interval 1: `{}` arrives every second; answered, the connection outlives
    --idle-timeout 3."""
    c = Client(b)
    r = c.connect()
    assert r["connect"]["ping"] == 1 and r["connect"]["pong"] is True, r
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 5:
        m = c.next(3)
        assert m == {}, m
        pings += 1
        c.send({})
    assert pings >= 3, pings
    c.send({"unsubscribe": {"channel": "alive"}, "id": 2})
    assert c.reply(2) == {"id": 2, "unsubscribe": {}}
    c.close()


def case_token_connect(b):
    c = Client(b)
    exp = int(time.time()) + 600
    r = c.connect(token({"sub": "alice", "exp": exp, "info": {"name": "Alice"}}))
    res = r["connect"]
    assert res["expires"] is True and 590 <= res["ttl"] <= 600, res
    c.close()
    c = Client(b)
    r = c.connect(token({"sub": "bob"}))
    assert "expires" not in r["connect"], r
    c.close()


def case_token_bad(b):
    for what, tok in [("wrong secret", token({"sub": "a"}, secret="other")),
                      ("alg none", token({"sub": "a"}, alg="none")),
                      ("garbage", "abc.def.ghi")]:
        c = Client(b)
        c.send({"connect": {"token": tok}, "id": 1})
        code, reason = c.expect_close()
        assert code == 3500 and reason == b"invalid token", (what, code, reason)
        c.close()


def case_token_expired(b):
    c = Client(b)
    c.send({"connect": {"token": token({"sub": "a", "exp": int(time.time()) - 10})}, "id": 1},
           {"subscribe": {"channel": "dropped"}, "id": 2})
    r = c.reply(1)
    assert r == {"id": 1, "error": {"code": 109, "message": "token expired"}}, r
    c.silence(0.3)  # the subscribe after a failed connect is dropped
    c.send({"connect": {}, "id": 3})
    assert c.expect_close()[0] == 3501
    c.close()


def case_anonymous_refused_with_secret(b):
    c = Client(b)
    c.send({"connect": {}, "id": 1})
    assert c.expect_close()[0] == 3501
    c.close()


def case_private_channels(b):
    c = Client(b)
    c.connect(token({"sub": "alice"}))
    c.send({"subscribe": {"channel": "$secret"}, "id": 2})
    assert c.reply(2)["error"]["code"] == 103
    st = token({"sub": "alice", "channel": "$secret", "exp": int(time.time()) + 100})
    c.send({"subscribe": {"channel": "$secret", "token": st}, "id": 3})
    r = c.reply(3)
    assert r["subscribe"]["expires"] is True and r["subscribe"]["ttl"] <= 100, r
    bad = token({"sub": "alice", "channel": "$secret"}, secret="nope")
    c.send({"subscribe": {"channel": "$other", "token": bad}, "id": 4})
    assert c.reply(4)["error"]["code"] == 103
    c.send({"subscribe": {"channel": "dialog#bob,carol"}, "id": 5})
    assert c.reply(5)["error"]["code"] == 103
    c.send({"subscribe": {"channel": "dialog#alice,bob"}, "id": 6})
    assert c.reply(6) == {"id": 6, "subscribe": {}}
    # A token for another channel closes 3500 (§9).
    wrong = token({"sub": "alice", "channel": "$elsewhere"})
    c.send({"subscribe": {"channel": "$secret2", "token": wrong}, "id": 7})
    assert c.expect_close()[0] == 3500
    c.close()


def drain(c, seconds=0.2):
    """Reads and drops whatever arrives within <seconds>."""
    while True:
        try:
            c.next(seconds)
        except Exception:  # noqa: BLE001 - quiet now
            return


def case_history(b):
    """Offsets 1, 2, 3… per channel, raw publications included; history with limit, reverse and
    since (§5), 112 for another epoch, 107 for reverse from offset 0."""
    c = Client(b)
    c.connect()
    c.send({"history": {"channel": "hist"}, "id": 2})
    h = c.reply(2)["history"]
    # An empty stream has a position too (its epoch lasts while the room has members or kept
    # publications).
    assert h["publications"] == [] and h["offset"] == 0 and h["epoch"], h
    for i in range(1, 5):
        c.send({"publish": {"channel": "hist", "data": {"n": i}}, "id": 10 + i})
        assert c.reply(10 + i) == {"id": 10 + i, "publish": {}}
    raw = RawWS(b.port, "/room/hist")
    raw.send_text("from raw")  # a raw member's message takes offset 5
    deadline = time.monotonic() + 5
    while True:
        c.send({"history": {"channel": "hist"}, "id": 3})
        h = c.reply(3)["history"]
        if h["offset"] == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    epoch = h["epoch"]
    assert h == {"publications": [], "epoch": epoch, "offset": 5}, h
    c.send({"history": {"channel": "hist", "limit": 2, "reverse": True}, "id": 4})
    h = c.reply(4)["history"]
    assert [x["offset"] for x in h["publications"]] == [5, 4], h
    assert h["publications"][0]["data"] == "from raw" and "info" not in h["publications"][0], h
    assert h["publications"][1]["info"] == {"user": "", "client": c.client}, h
    c.send({"history": {"channel": "hist", "since": {"offset": 2, "epoch": epoch}, "limit": 10},
            "id": 5})
    h = c.reply(5)["history"]
    assert [x["data"] for x in h["publications"]] == [{"n": 3}, {"n": 4}, "from raw"], h
    c.send({"history": {"channel": "hist", "limit": -1}, "id": 6})
    assert len(c.reply(6)["history"]["publications"]) == 5
    c.send({"history": {"channel": "hist", "since": {"offset": 1, "epoch": "nope"}, "limit": 9},
            "id": 7})
    assert c.reply(7) == {"id": 7, "error": {"code": 112, "message": "unrecoverable position"}}
    c.send({"history": {"channel": "hist", "since": {"offset": 0}, "reverse": True}, "id": 8})
    assert c.reply(8)["error"]["code"] == 107
    raw.close()
    c.close()


def case_presence_join_leave(b):
    """Clients on both shards: presence lists each with its ClientInfo, presence_stats counts
    clients and distinct users; join and leave pushes reach those that asked (§5, §6)."""
    watcher = Client(b)
    watcher.connect()
    watcher.send({"subscribe": {"channel": "pres", "join_leave": True}, "id": 2})
    assert watcher.reply(2) == {"id": 2, "subscribe": {}}
    j = watcher.push()  # its own join (§6: the joiner gets its own join too)
    assert j == {"channel": "pres", "join": {"info": {"user": "", "client": watcher.client}}}, j
    others = []
    for i in range(5):  # with two shards, some land on the other one
        o = Client(b)
        o.connect()
        o.send({"subscribe": {"channel": "pres"}, "id": 2})
        assert o.reply(2) == {"id": 2, "subscribe": {}}
        others.append(o)
    joined = set()
    while len(joined) < 5:
        p = watcher.push()
        assert "join" in p, p
        joined.add(p["join"]["info"]["client"])
    assert joined == {o.client for o in others}, joined
    watcher.send({"presence": {"channel": "pres"}, "id": 3},
                 {"presence_stats": {"channel": "pres"}, "id": 4})
    pr = watcher.reply(3)["presence"]["presence"]
    assert set(pr) == joined | {watcher.client}, pr
    for cid, info in pr.items():
        assert info == {"user": "", "client": cid}, info
    assert watcher.reply(4) == {"id": 4, "presence_stats": {"num_clients": 6, "num_users": 1}}
    # One unsubscribes, one closes: two leaves.
    others[0].send({"unsubscribe": {"channel": "pres"}, "id": 9})
    assert others[0].reply(9) == {"id": 9, "unsubscribe": {}}
    others[1].close()
    left = set()
    while len(left) < 2:
        p = watcher.push()
        assert "leave" in p, p
        left.add(p["leave"]["info"]["client"])
    assert left == {others[0].client, others[1].client}, left
    watcher.send({"presence_stats": {"channel": "pres"}, "id": 5})
    assert watcher.reply(5)["presence_stats"] == {"num_clients": 4, "num_users": 1}
    # Who did not ask for join/leave gets none.
    others[2].silence(0.3)
    for o in [watcher] + others:
        o.close()


def positioned_sub(c, chan, id_, **extra):
    body = {"channel": chan, "recoverable": True, "positioned": True}
    body.update(extra)
    c.send({"subscribe": body, "id": id_})
    return c.reply(id_)["subscribe"]


def case_recovery(b):
    """A recoverable subscription gets epoch and offset; after a reconnect it recovers what it
    missed, exactly once and in order, then the live pushes go on from there (§8)."""
    pub = Client(b)
    pub.connect()
    pub.send({"publish": {"channel": "rec", "data": 0}, "id": 2})
    pub.reply(2)
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "rec", 2)
    assert r["recoverable"] is True and r["positioned"] is True and r["offset"] >= 1, r
    epoch, offset = r["epoch"], r["offset"]
    c.close()
    for i in range(1, 4):
        pub.send({"publish": {"channel": "rec", "data": i}, "id": 10 + i})
        pub.reply(10 + i)
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "rec", 2, recover=True, offset=offset, epoch=epoch)
    assert r["was_recovering"] is True and r["recovered"] is True, r
    assert r["offset"] == offset and r["epoch"] == epoch, r
    assert [p["data"] for p in r["publications"]] == [1, 2, 3], r
    assert [p["offset"] for p in r["publications"]] == [offset + 1, offset + 2, offset + 3], r
    pub.send({"publish": {"channel": "rec", "data": 4}, "id": 20})
    p = c.push()
    assert p["pub"]["data"] == 4 and p["pub"]["offset"] == offset + 4, p
    # Nothing missed: recovered, no publications.
    c.close()
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "rec", 2, recover=True, offset=offset + 4, epoch=epoch)
    assert r["recovered"] is True and "publications" not in r, r
    # Another epoch: not recovered, the current position instead.
    c.close()
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "rec", 2, recover=True, offset=1, epoch="other")
    assert r["was_recovering"] is True and "recovered" not in r, r
    assert r["offset"] == offset + 4 and r["epoch"] == epoch and "publications" not in r, r
    c.close()
    pub.close()


def case_recovery_gap(b):
    """--history-size 3: a client that missed 5 is told it did not recover, never given a
    hole."""
    pub = Client(b)
    pub.connect()
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "gap", 2)
    epoch, offset = r["epoch"], r.get("offset", 0)
    c.close()
    for i in range(5):
        pub.send({"publish": {"channel": "gap", "data": i}, "id": 10 + i})
        pub.reply(10 + i)
    c = Client(b)
    c.connect()
    r = positioned_sub(c, "gap", 2, recover=True, offset=offset, epoch=epoch)
    assert r["was_recovering"] is True and "recovered" not in r, r
    assert r["offset"] == offset + 5 and "publications" not in r, r
    c.send({"history": {"channel": "gap", "limit": -1}, "id": 3})
    h = c.reply(3)["history"]
    assert [x["data"] for x in h["publications"]] == [2, 3, 4], h
    c.close()
    pub.close()


def case_recovery_under_load(b):
    """A publisher keeps publishing while clients on both shards resubscribe with recovery: the
    recovered publications and the pushes after the reply meet exactly, no gap and no double."""
    pub = Client(b)
    pub.connect()
    stop = [False]
    sent = [0]

    def publisher():
        n = 0
        while not stop[0] and n < 20000:
            n += 1
            pub.send({"publish": {"channel": "busy", "data": n}, "id": 1000 + n})
            sent[0] = n
            time.sleep(0.001)

    import threading
    t = threading.Thread(target=publisher)
    t.start()
    try:
        for round_ in range(6):
            c = Client(b)
            c.connect()
            r = positioned_sub(c, "busy", 2)
            epoch, offset = r["epoch"], r.get("offset", 0)
            seen = []
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                try:
                    p = c.push(0.3)
                except Exception:  # noqa: BLE001
                    break
                seen.append(p["pub"]["offset"])
            assert seen == list(range(offset + 1, offset + 1 + len(seen))), (offset, seen[:10])
            last = seen[-1] if seen else offset
            c.close()
            time.sleep(0.05)
            c = Client(b)
            c.connect()
            r = positioned_sub(c, "busy", 2, recover=True, offset=last, epoch=epoch)
            assert r.get("recovered") is True, r
            got = [p["offset"] for p in r.get("publications", [])]
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                try:
                    p = c.push(0.3)
                except Exception:  # noqa: BLE001
                    break
                got.append(p["pub"]["offset"])
            assert got == list(range(last + 1, last + 1 + len(got))), (round_, last, got[:10])
            assert len(got) > 0, round_
            c.close()
    finally:
        stop[0] = True
        t.join()
        pub.close()


def case_server_side_subs(b):
    """The token's `channels` subscribe the connection at connect: `subs` in the reply, and the
    channel's publications arrive as pushes (§3, §9)."""
    c = Client(b)
    r = c.connect(token({"sub": "srv", "channels": ["news", "alerts"]}))
    assert r["connect"]["subs"] == {"news": {}, "alerts": {}}, r
    p = Client(b)
    p.connect(token({"sub": "editor"}))
    deadline = time.monotonic() + 5
    while True:  # the membership reaches the home through a queue
        p.send({"publish": {"channel": "news", "data": "hi"}, "id": 2})
        p.reply(2)
        try:
            m = c.push(0.2)
            break
        except Exception:  # noqa: BLE001
            assert time.monotonic() < deadline
    assert m["channel"] == "news" and m["pub"]["data"] == "hi", m
    assert m["pub"]["info"]["user"] == "editor", m
    c.close()
    p.close()


def case_refresh(b):
    """refresh moves the connection's expiry, sub_refresh a subscription's; a token of another
    user closes 3500 (§9)."""
    c = Client(b)
    now = int(time.time())
    r = c.connect(token({"sub": "ref", "exp": now + 30}))
    assert r["connect"]["expires"] is True, r
    c.send({"refresh": {"token": token({"sub": "ref", "exp": now + 600})}, "id": 2})
    r = c.reply(2)["refresh"]
    assert r["client"] == c.client and r["expires"] is True and 590 <= r["ttl"] <= 600, r
    st = token({"sub": "ref", "channel": "$sr", "exp": now + 30})
    c.send({"subscribe": {"channel": "$sr", "token": st}, "id": 3})
    assert c.reply(3)["subscribe"]["expires"] is True
    st2 = token({"sub": "ref", "channel": "$sr", "exp": now + 300})
    c.send({"sub_refresh": {"channel": "$sr", "token": st2}, "id": 4})
    r = c.reply(4)
    assert r["sub_refresh"]["expires"] is True and 290 <= r["sub_refresh"]["ttl"] <= 300, r
    c.send({"sub_refresh": {"channel": "$not-mine", "token": st2}, "id": 5})
    assert c.reply(5)["error"]["code"] == 103
    c.send({"refresh": {"token": token({"sub": "someone-else"})}, "id": 6})
    assert c.expect_close()[0] == 3500
    c.close()


def case_expiry_closes(b):
    """A connection left expired is closed 3005 a few seconds after its token's exp; one that
    never connects is closed 3502 "stale" after 10 s (§3, §9)."""
    stale = Client(b)
    c = Client(b)
    c.connect(token({"sub": "late", "exp": int(time.time()) + 1}))
    t0 = time.monotonic()
    code, reason = c.expect_close(15)
    assert code == 3005 and reason == b"connection expired", (code, reason)
    assert 1 <= time.monotonic() - t0 <= 10, time.monotonic() - t0
    code, reason = stale.expect_close(15)
    assert code == 3502 and reason == b"stale", (code, reason)
    c.close()
    stale.close()


def case_push_out_of_memory(b):
    """RINGCAST_FAULT=proto_push:1 (debug builds): no pub push can be built, neither by the home
    nor by a member shard. The protocol members miss the publications, raw members still get
    theirs, the history still holds them all (encoded when asked), nothing leaks (ASan's leak
    check at exit) and the connections carry on."""
    deadline = time.monotonic() + 1.0  # the stderr reader thread may lag the start
    while not any("RINGCAST_FAULT" in line for line in b.stderr_lines):
        if time.monotonic() > deadline:
            print("     (skipped: not a fault-injection build)")
            return
        time.sleep(0.05)
    (p,) = subscribed(b, "oom")
    raw = RawWS(b.port, "/room/oom")
    time.sleep(0.3)  # one shard: the memberships are in place already
    for i in range(10):
        raw.send_text(str(i))
    pub = Client(b)
    pub.connect()
    pub.send({"publish": {"channel": "oom", "data": "last"}, "id": 2})
    op, data = raw.recv_message(5)
    assert data == b'"last"', data
    p.silence(0.5)
    p.send({"history": {"channel": "oom", "limit": -1}, "id": 3})
    h = p.reply(3)["history"]
    assert [x["data"] for x in h["publications"]] == list(range(10)) + ["last"], h
    assert [x["offset"] for x in h["publications"]] == list(range(1, 12)), h
    raw.close()
    p.close()
    pub.close()


def main():
    r = Runner()
    with Broker("--shards", "2") as b:
        for name, fn in [("connect_anonymous", case_connect_anonymous),
                         ("first_command_must_be_connect", case_first_command_must_be_connect),
                         ("bad_input_closes", case_bad_input_closes),
                         ("second_connect_closes", case_second_connect_closes),
                         ("batch_one_frame", case_batch_one_frame),
                         ("rpc_and_send", case_rpc_and_send),
                         ("publish_subscribe", case_publish_subscribe),
                         ("subscribe_then_publish_same_frame",
                          case_subscribe_then_publish_same_frame),
                         ("already_subscribed", case_already_subscribed),
                         ("channel_limit", case_channel_limit),
                         ("raw_and_proto_one_namespace", case_raw_and_proto_one_namespace),
                         ("history", case_history),
                         ("presence_join_leave", case_presence_join_leave),
                         ("recovery", case_recovery),
                         ("recovery_under_load", case_recovery_under_load)]:
            r.run(name, fn, b)
    with Broker("--shards", "2", "--history-size", "3") as b:
        r.run("recovery_gap", case_recovery_gap, b)
    with Broker("--shards", "1", "--ping-interval", "1", "--idle-timeout", "3") as b:
        r.run("ping_pong", case_ping_pong, b)
    with Broker("--shards", "1", env={"RINGCAST_FAULT": "proto_push:1"}) as b:
        r.run("push_out_of_memory", case_push_out_of_memory, b)
    with Broker("--shards", "2", "--jwt-secret", SECRET) as b:
        for name, fn in [("token_connect", case_token_connect), ("token_bad", case_token_bad),
                         ("token_expired", case_token_expired),
                         ("anonymous_refused_with_secret", case_anonymous_refused_with_secret),
                         ("private_channels", case_private_channels),
                         ("server_side_subs", case_server_side_subs),
                         ("refresh", case_refresh),
                         ("expiry_closes", case_expiry_closes)]:
            r.run(name, fn, b)
    r.finish()


if __name__ == "__main__":
    main()

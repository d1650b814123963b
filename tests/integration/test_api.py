# SPDX-License-Identifier: MIT
"""The server HTTP API, POST /api/<method> (ARCHITECTURE.md "Endpoints"), against a broker with
two shards: the key (401), unknown methods (404), bodies that are not objects (400), the API
off without --api-key (404), Centrifugo's error bodies; publish and broadcast reaching a raw
room member and protocol subscribers; send, unsubscribe and disconnect reaching every
connection of a user on both shards (the per-shard connection gauges prove both are used);
channels and info summed over the shards; presence, presence_stats and history asked of the
channel's home; requests pipelined behind a deferred answer answered in order."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, Runner  # noqa: E402
from test_proto import SECRET, Client, token  # noqa: E402
from util import (OP_TEXT, RawWS, WSClosed, connect, http_request,  # noqa: E402
                  read_responses, rst_close)

KEY = "api-key-for-tests"


def post(b, method, body, key=KEY, headers=(), raw=None):
    """POST /api/<method> with <body> (JSON-encoded unless <raw> bytes). Returns
    (status, parsed JSON body or the text)."""
    data = raw if raw is not None else json.dumps(body).encode()
    head = "POST /api/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n" % (method,
                                                                                 len(data))
    if key is not None:
        head += "X-API-Key: %s\r\n" % key
    head += "".join("%s: %s\r\n" % kv for kv in headers)
    r = http_request(b.port, (head + "\r\n").encode() + data, want_close=False, close_wait=0.1)
    text = r.body.decode()
    if r.header("content-type") == "application/json":
        return r.status, json.loads(text)
    return r.status, text


def api(b, method, body):
    status, out = post(b, method, body)
    assert status == 200, (method, status, out)
    return out


def pub_of(push, chan):
    """The data of a pub push on <chan>, which must carry no `info` (a server publication); its
    `offset` is the room's business."""
    assert push.get("channel") == chan and "pub" in push, push
    assert "info" not in push["pub"], push
    return push["pub"]["data"]


def shard_conns(b):
    """The per-shard gauge of WebSocket connections, from /metrics."""
    r = http_request(b.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = {}
    for line in r.body.decode().splitlines():
        if line.startswith('ringcast_connections{shard="'):
            shard = int(line.split('"')[1])
            out[shard] = int(float(line.split()[-1]))
    return out


def users(b, user, n, chans=()):
    """<n> protocol connections of <user>, each subscribed to <chans>."""
    out = []
    for _ in range(n):
        c = Client(b)
        c.connect(token({"sub": user}))
        for i, ch in enumerate(chans):
            c.send({"subscribe": {"channel": ch}, "id": 10 + i})
            assert c.reply(10 + i) == {"id": 10 + i, "subscribe": {}}
        out.append(c)
    return out


def settle(b, chan, clients, raws=()):
    """Subscriptions reach the room's home through a cross-shard queue: publish probes through
    the API until every client and raw member has one, then drop the probes left."""
    want = set(range(len(clients) + len(raws)))
    got = set()
    deadline = time.monotonic() + 10
    n = 0
    while got != want and time.monotonic() < deadline:
        n += 1
        api(b, "publish", {"channel": chan, "data": {"probe": n}})
        for i, c in enumerate(clients):
            try:
                if i not in got and "probe" in c.push(0.05).get("pub", {}).get("data", {}):
                    got.add(i)
            except Exception:  # noqa: BLE001 - not there yet
                pass
        for j, w in enumerate(raws):
            try:
                op, data = w.recv_message(0.05)
                if b"probe" in data:
                    got.add(len(clients) + j)
            except Exception:  # noqa: BLE001 - not there yet
                pass
    assert got == want, "settle %s: %d of %d" % (chan, len(got), len(want))
    time.sleep(0.2)
    for c in clients:
        while True:
            try:
                m = c.next(0.1)
            except Exception:  # noqa: BLE001 - drained
                break
            assert m == {} or "probe" in m["push"]["pub"]["data"], m
    for w in raws:
        while True:
            try:
                w.recv_message(0.1)
            except Exception:  # noqa: BLE001 - drained
                break


def close_all(clients):
    for c in clients:
        c.close()


def on_both_shards(b, clients_needed):
    conns = shard_conns(b)
    assert sum(conns.values()) >= clients_needed, conns
    assert len(conns) == 2 and all(v > 0 for v in conns.values()), \
        "connections not on both shards: %r" % conns


# ---------------------------------------------------------------------------------------------


def case_auth_and_errors(b):
    assert post(b, "info", {}, key=None)[0] == 401
    assert post(b, "info", {}, key="wrong")[0] == 401
    assert post(b, "info", {}, key=KEY[:-1])[0] == 401
    assert post(b, "info", {}, key=KEY + "x")[0] == 401
    st, out = post(b, "info", {}, key=None, headers=[("Authorization", "apikey " + KEY)])
    assert st == 200 and "nodes" in out["result"], (st, out)
    assert post(b, "nope", {})[0] == 404
    assert post(b, "info/x", {})[0] == 404
    assert post(b, "", {})[0] == 404
    for raw in (b"", b"nope", b"[1]", b'"x"', b"{", b'{"a":1} {}'):
        st, out = post(b, "publish", None, raw=raw)
        assert st == 400, (raw, st, out)
    assert post(b, "publish", {"data": 1}) == \
        (200, {"error": {"code": 107, "message": "bad request"}})
    assert post(b, "publish", {"channel": "a/b", "data": 1}) == \
        (200, {"error": {"code": 102, "message": "unknown channel"}})
    assert post(b, "send", {"user": "", "data": 1})[1]["error"]["code"] == 107
    assert post(b, "disconnect", {"user": "u", "disconnect": {"code": 1000}})[1]["error"][
        "code"] == 107
    # GET on the API is not a method of it.
    r = http_request(b.port, b"GET /api/info HTTP/1.1\r\nHost: x\r\nX-API-Key: " +
                     KEY.encode() + b"\r\n\r\n", want_close=False, close_wait=0.1)
    assert r.status == 405, r


def case_api_off(b_unused):
    with Broker("--shards", "1") as b:
        assert post(b, "info", {})[0] == 404
        assert post(b, "publish", {"channel": "a", "data": 1})[0] == 404


def case_publish(b):
    chan = "api-pub"
    subs = users(b, "sub-user", 6, [chan])
    raw = RawWS(b.port, "/room/" + chan)
    settle(b, chan, subs, [raw])
    on_both_shards(b, 7)
    data = {"text": "from api", "n": [1, 2.5, None]}
    res = api(b, "publish", {"channel": chan, "data": data})["result"]
    # The publication's position in the channel's stream, as Centrifugo gives it.
    assert set(res) == {"offset", "epoch"} and res["offset"] >= 1 and res["epoch"], res
    for c in subs:
        push = c.push()
        assert pub_of(push, chan) == data
        assert push["pub"]["offset"] == res["offset"], (push, res)
    h = api(b, "history", {"channel": chan, "limit": 1, "reverse": True})["result"]
    assert h["epoch"] == res["epoch"] and h["offset"] == res["offset"], (h, res)
    op, text = raw.recv_message(5)
    assert op == OP_TEXT and json.loads(text) == data, text
    # A string, as JSON text for the raw member.
    api(b, "publish", {"channel": chan, "data": "plain"})
    assert raw.recv_message(5)[1] == b'"plain"'
    for c in subs:
        assert pub_of(c.push(), chan) == "plain"
    close_all(subs)
    raw.close()


def case_broadcast(b):
    a, c2 = users(b, "bc-a", 3, ["bc-1"]), users(b, "bc-b", 3, ["bc-2"])
    settle(b, "bc-1", a)
    settle(b, "bc-2", c2)
    out = api(b, "broadcast", {"channels": ["bc-1", "", "bad/name", "bc-2"], "data": {"k": 1}})
    assert out == {"result": {"responses": [
        {"result": {}}, {"error": {"code": 107, "message": "bad request"}},
        {"error": {"code": 102, "message": "unknown channel"}}, {"result": {}}]}}, out
    for c in a:
        assert pub_of(c.push(), "bc-1") == {"k": 1}
    for c in c2:
        assert pub_of(c.push(), "bc-2") == {"k": 1}
    close_all(a + c2)


def case_send(b):
    alice = users(b, "alice", 16)
    bob = users(b, "bob", 2)
    on_both_shards(b, 18)
    assert api(b, "send", {"user": "alice", "data": {"hi": 1}}) == {"result": {}}
    for c in alice:
        assert c.push() == {"message": {"data": {"hi": 1}}}
    for c in bob:
        c.silence(0.3)
    assert api(b, "send", {"user": "nobody", "data": 1}) == {"result": {}}
    close_all(alice + bob)


def case_unsubscribe(b):
    carol = users(b, "carol", 12, ["un-news", "un-other"])
    settle(b, "un-news", carol)
    settle(b, "un-other", carol)
    on_both_shards(b, 12)
    assert api(b, "unsubscribe", {"user": "carol", "channel": "un-news"}) == {"result": {}}
    for c in carol:
        assert c.push() == {"channel": "un-news",
                            "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}
    api(b, "publish", {"channel": "un-news", "data": "gone"})
    api(b, "publish", {"channel": "un-other", "data": "still"})
    for c in carol:
        assert pub_of(c.push(), "un-other") == "still"
    # Every channel at once when none is named.
    assert api(b, "unsubscribe", {"user": "carol"}) == {"result": {}}
    for c in carol:
        assert c.push()["unsubscribe"]["code"] == 2000
    close_all(carol)


def case_disconnect(b):
    dave = users(b, "dave", 12)
    erin = users(b, "erin", 4)
    on_both_shards(b, 16)
    assert api(b, "disconnect", {"user": "dave"}) == {"result": {}}
    for c in dave:
        assert c.expect_close() == (3503, b"force disconnect")
    for c in erin:
        c.silence(0.2)
    assert api(b, "disconnect", {"user": "erin",
                                 "disconnect": {"code": 4501, "reason": "bye"}}) == {"result": {}}
    for c in erin:
        assert c.expect_close() == (4501, b"bye")
    close_all(dave + erin)


def case_channels_and_info(b):
    f = users(b, "frank", 8, ["ch-room", "ch-two"])
    g = users(b, "grace", 4, ["ch-room"])
    raw = RawWS(b.port, "/room/ch-room")
    settle(b, "ch-room", f + g, [raw])
    settle(b, "ch-two", f)
    on_both_shards(b, 13)
    out = api(b, "channels", {})
    ch = out["result"]["channels"]
    assert ch["ch-room"] == {"num_clients": 13}, ch
    assert ch["ch-two"] == {"num_clients": 8}, ch
    out = api(b, "channels", {"pattern": "ch-t*"})
    assert out == {"result": {"channels": {"ch-two": {"num_clients": 8}}}}, out
    assert api(b, "channels", {"pattern": "zzz*"}) == {"result": {"channels": {}}}
    nodes = api(b, "info", {})["result"]["nodes"]
    assert len(nodes) == 1, nodes
    n = nodes[0]
    assert len(n["uid"]) == 36 and n["version"] and n["name"], n
    # frank is on both shards and counts once; the raw member has no user.
    assert n["num_users"] == 2, n
    assert n["num_clients"] == 13, n
    assert n["num_channels"] == 2, n
    assert n["num_subs"] == 8 * 2 + 4 + 1, n
    close_all(f + g)
    raw.close()


def case_presence_and_history(b):
    chan = "ph-room"
    subs = users(b, "pat", 6, [chan]) + users(b, "quinn", 2, [chan])
    settle(b, chan, subs)
    on_both_shards(b, 8)
    out = api(b, "presence_stats", {"channel": chan})
    assert out == {"result": {"num_clients": 8, "num_users": 2}}, out
    pres = api(b, "presence", {"channel": chan})["result"]["presence"]
    assert len(pres) == 8, pres
    assert sorted(ci["user"] for ci in pres.values()) == ["pat"] * 6 + ["quinn"] * 2, pres
    assert all(cid == ci["client"] for cid, ci in pres.items()), pres
    assert api(b, "presence", {"channel": "ph-nobody"}) == {"result": {"presence": {}}}
    # History: what the API published, in order, with offsets.
    hc = "ph-hist"
    for i in range(3):
        api(b, "publish", {"channel": hc, "data": {"i": i}})
    h = api(b, "history", {"channel": hc, "limit": -1})["result"]
    assert [p["data"] for p in h["publications"]] == [{"i": 0}, {"i": 1}, {"i": 2}], h
    top = h["offset"]
    assert [p["offset"] for p in h["publications"]] == [top - 2, top - 1, top], h
    epoch = h["epoch"]
    assert epoch, h
    h = api(b, "history", {"channel": hc})["result"]
    assert h == {"publications": [], "epoch": epoch, "offset": top}, h
    h = api(b, "history", {"channel": hc, "limit": 1, "reverse": True})["result"]
    assert [p["data"] for p in h["publications"]] == [{"i": 2}], h
    h = api(b, "history", {"channel": hc, "limit": 10,
                           "since": {"offset": top - 1, "epoch": epoch}})["result"]
    assert [p["data"] for p in h["publications"]] == [{"i": 2}], h
    assert api(b, "history", {"channel": hc, "since": {"offset": 1, "epoch": "other"}}) == \
        {"error": {"code": 112, "message": "unrecoverable position"}}
    assert api(b, "history", {"channel": hc, "since": {"offset": 1, "epoch": "e" * 40}}) == \
        {"error": {"code": 112, "message": "unrecoverable position"}}
    close_all(subs)


def case_pipelined_behind_deferred(b):
    """info and channels answer later (a gather through both shards); a publish pipelined
    between them is answered in its place."""
    def req(method, body):
        data = json.dumps(body).encode()
        return ("POST /api/%s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: %d\r\n\r\n"
                % (method, KEY, len(data))).encode() + data
    s = connect(b.port)
    try:
        s.sendall(req("info", {}) + req("publish", {"channel": "pl", "data": 1}) +
                  req("channels", {"pattern": "pl-none"}) + req("nope", {}) + req("info", {}) +
                  b"".join(req("history", {"channel": "pl-%d" % i}) for i in range(8)))
        rs, _ = read_responses(s, 13)
        bodies = [r.body.decode() for r in rs]
        assert [r.status for r in rs] == [200, 200, 200, 404] + [200] * 9, rs
        for i in range(8):  # rooms on both homes, each answer in its place
            assert json.loads(bodies[5 + i])["result"]["publications"] == [], bodies
        assert "nodes" in bodies[0] and "nodes" in bodies[4], bodies
        assert json.loads(bodies[1])["result"]["offset"] == 1, bodies  # publish, deferred too
        assert json.loads(bodies[2]) == {"result": {"channels": {}}}, bodies
        # The connection is still good for more.
        s.sendall(req("channels", {}))
        rs, _ = read_responses(s, 1)
        assert rs[0].status == 200 and "channels" in rs[0].body.decode()
    finally:
        rst_close(s)
    # A client that leaves while its answer is on its way: the broker carries on.
    for _ in range(20):
        s = connect(b.port)
        s.sendall(req("info", {}))
        s.close()
    assert "nodes" in api(b, "info", {})["result"]


def case_raw_key_compare_long(b):
    """A key much longer than the real one, and the key in other letter case: 401 both."""
    assert post(b, "info", {}, key="x" * 4000)[0] == 401
    assert post(b, "info", {}, key=KEY.upper())[0] == 401


def main():
    r = Runner()
    with Broker("--shards", "2", "--jwt-secret", SECRET, "--api-key", KEY) as b:
        for name, fn in [("auth_and_errors", case_auth_and_errors), ("api_off", case_api_off),
                         ("publish", case_publish), ("broadcast", case_broadcast),
                         ("send", case_send), ("unsubscribe", case_unsubscribe),
                         ("disconnect", case_disconnect),
                         ("channels_and_info", case_channels_and_info),
                         ("presence_and_history", case_presence_and_history),
                         ("pipelined_behind_deferred", case_pipelined_behind_deferred),
                         ("raw_key_compare_long", case_raw_key_compare_long)]:
            r.run(name, fn, b)
    r.finish()


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: MIT
"""Case tables for test_conformance.py: the Autobahn TestSuite categories 1 to 7, 9 and 10,
ported to plain data, numbered as Autobahn numbers them. Cases that Autobahn does not have
(the systematic sweeps and the limit checks of our own) get numbers past Autobahn's last one
in their group, so an Autobahn number always means the same test here as there.

Nothing here does I/O. A case is a list of steps and an outcome; test_conformance.py plays the
steps on a fresh connection to WS /echo and checks the outcome.

Steps:
  send(frames, mode)    frames as F(...) tuples; mode ONE: one write for all of them,
                        FRAMES: one write per frame, ("chop", n): writes of n bytes,
                        ("cuts", offsets): writes split at these offsets of the encoded bytes
  ("quiet", s)          nothing at all may arrive for s seconds
  ("sleep", s)          wait s seconds (whatever arrives is kept for the next expect)
  ("expect", events, timeout)
                        these events must arrive next, in this order: ("msg", opcode, payload)
                        for a whole data message (however the server fragments it), ("pong",
                        payload)
  ("encode", name, F)   encode a frame once and keep it, for send_slice
  ("send_slice", name, start, end)
                        send the kept frame's bytes from payload offset <start> (0 includes
                        the header) to payload offset <end> (None: the end)
  ("failfast", code, s) the server's close frame with <code> must arrive before any later
                        step runs (waiting at most s seconds; the later steps run only to
                        report what a server that did not fail fast does)
  ("shutdown",)         half-close our side of the TCP connection (FIN)
  ("send_fin", frames)  send the frames and our FIN together, in one TCP segment
  ("roundtrips", opcode, size, count)
                        <count> times: send one message of <size> bytes and wait for its echo

Outcomes:
  OK                    no close from the server; we close with 1000, the server must answer
                        with close 1000 and close the TCP connection
  ("fail", code)        the server must send a close frame with exactly <code>, then close
                        the TCP connection
  ("closed", codes)     we already sent a close frame: the server must answer with a close
                        whose code is in <codes> (None: an empty close payload), then close TCP
"""

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Bits of the 3-bit RSV field as F(rsv=...) takes it (RFC 6455 section 5.2: RSV1 is 0x40 of
# the first byte, RSV3 is 0x10). Autobahn's "RSV = n" cases use the same integer.
RSV1, RSV2, RSV3 = 4, 2, 1

# How long a "failfast" step waits for the close, returning as soon as it arrives. Autobahn
# pauses 1 s; a longer bound costs a conforming server nothing, since a server that does not
# fail fast never closes before the rest of the message arrives, and it keeps the cases
# steady on a loaded machine. What is checked is the order: close first, rest after.
FAILFAST_WAIT = 3.0

ONE = "one"
FRAMES = "frames"
OK = ("ok",)

KIB = 1 << 10
MIB = 1 << 20

# The main broker's --max-message (category 9) and the default one (the 1009 checks).
BIG_MAX_MESSAGE = 16 * MIB
DEFAULT_MAX_MESSAGE = 65536


def F(op, payload=b"", fin=True, rsv=0, masked=True, length=None):
    """One client frame. <length>: the payload length to announce, when it is not len(payload)
    (only len(payload) bytes are sent)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return ("frame", op, payload, fin, rsv, masked, length)


def send(*frames, mode=ONE):
    return ("send", list(frames), mode)


def expect(*events, timeout=10.0):
    return ("expect", list(events), timeout)


def msg(op, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return ("msg", op, payload)


def pong(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return ("pong", payload)


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


class Case:
    """One numbered case. <broker>: "main" (--max-message 16 MiB) or "small" (the default
    --max-message)."""

    def __init__(self, cid, title, steps, outcome=OK, broker="main"):
        self.cid = cid
        self.title = title
        self.steps = steps
        self.outcome = outcome
        self.broker = broker

    @property
    def name(self):
        return "%s %s" % (self.cid, self.title)


def pattern(n, unit=b"BAsd7&jh23"):
    """<n> bytes of printable ASCII (valid UTF-8), Autobahn's filler for large messages."""
    reps = n // len(unit) + 1
    return (unit * reps)[:n]


def binary_pattern(n):
    """<n> bytes covering every byte value (not valid UTF-8), deterministic."""
    block = bytes((i * 7 + 3) & 0xFF for i in range(4096))
    return (block * (n // len(block) + 1))[:n]


def fragments(op, payload, size):
    """<payload> as a fragmented message of <size>-byte frames (the last one may be short)."""
    parts = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, p in enumerate(parts):
        out.append(F(op if i == 0 else CONT, p, fin=(i == len(parts) - 1)))
    return out


HELLO = b"Hello, world!"
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # "kosme" in Greek, 11 bytes
# Valid, then a surrogate (U+D800) as 3 bytes, then valid: invalid at byte 12 (0xa0).
INVALID_KOSME = KOSME + b"\xed\xa0\x80" + b"edited"
# Valid, then U+110000 in the UTF-8 integer scheme (out of range), then valid: invalid at 0x90.
INVALID_RANGE = KOSME + b"\xf4\x90\x80\x80" + b"edited"
HELLO_UTF8 = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()

# =============================================================================================
# 1 Framing


def cat1():
    cases = []
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for sub, (op, name, fill) in enumerate([(TEXT, "text", b"*"), (BINARY, "binary", b"\xfe")],
                                           start=1):
        for i, n in enumerate(sizes, start=1):
            payload = fill * n
            cases.append(Case("1.%d.%d" % (sub, i), "%s message, %d bytes" % (name, n),
                              [send(F(op, payload)), expect(msg(op, payload))]))
        payload = fill * 65536
        cases.append(Case("1.%d.8" % sub, "%s message, 65536 bytes, sent in writes of 997 bytes"
                          % name,
                          [send(F(op, payload), mode=("chop", 997)), expect(msg(op, payload))]))
    # Not in Autobahn: the two framing rules a server must enforce on clients.
    cases.append(Case("1.3.1", "unmasked text frame from the client (RFC 6455 5.1)",
                      [send(F(TEXT, HELLO, masked=False))], ("fail", 1002)))
    cases.append(Case("1.3.2", "64-bit payload length with the most significant bit set "
                      "(RFC 6455 5.2)",
                      [send(F(BINARY, b"abc", length=(1 << 63) | 3))], ("fail", 1002)))
    # Not in Autobahn: headers cut at every byte (extended lengths and mask key split across
    # reads), and many messages pipelined in one write or in odd-sized writes.
    for i, (op, n, hlen) in enumerate([(TEXT, 126, 8), (BINARY, 65535, 8),
                                       (BINARY, 65536, 14)], start=1):
        p = pattern(n) if op == TEXT else binary_pattern(n)
        cases.append(Case("1.4.%d" % i, "%s message of %d bytes, its %d-byte header sent one "
                          "byte per write" % ("text" if op == TEXT else "binary", n, hlen),
                          [send(F(op, p), mode=("cuts", list(range(1, hlen + 1)))),
                           expect(msg(op, p))]))
    many = [(TEXT if k % 2 else BINARY, pattern(k * 3) if k % 2 else binary_pattern(k * 3))
            for k in range(100)]
    cases.append(Case("1.5.1", "100 messages of 0 to 297 bytes, text and binary alternating, "
                      "in one write: all echoed in order",
                      [send(*[F(op, p) for op, p in many]),
                       expect(*[msg(op, p) for op, p in many])]))
    cases.append(Case("1.5.2", "the same 100 messages in writes of 7 bytes",
                      [send(*[F(op, p) for op, p in many], mode=("chop", 7)),
                       expect(*[msg(op, p) for op, p in many])]))
    return cases


# =============================================================================================
# 2 Pings and pongs


def cat2():
    cases = [
        Case("2.1", "ping without payload",
             [send(F(PING)), expect(pong(b""))]),
        Case("2.2", "ping with a small text payload",
             [send(F(PING, HELLO)), expect(pong(HELLO))]),
        Case("2.3", "ping with a small binary payload",
             [send(F(PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")),
              expect(pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))]),
        Case("2.4", "ping with a 125-byte binary payload",
             [send(F(PING, b"\xfe" * 125)), expect(pong(b"\xfe" * 125))]),
        Case("2.5", "ping with a 126-byte payload (control frames are at most 125)",
             [send(F(PING, b"\xfe" * 126))], ("fail", 1002)),
        Case("2.6", "ping with a 125-byte payload, sent in 1-byte writes",
             [send(F(PING, b"\xfe" * 125), mode=("chop", 1)), expect(pong(b"\xfe" * 125))]),
        Case("2.7", "unsolicited pong without payload (ignored)",
             [send(F(PONG))]),
        Case("2.8", "unsolicited pong with payload (ignored)",
             [send(F(PONG, b"unsolicited pong payload"))]),
        Case("2.9", "unsolicited pong, then a ping: only the ping is answered",
             [send(F(PONG, b"unsolicited pong payload"), F(PING, b"ping payload")),
              expect(pong(b"ping payload"))]),
        Case("2.10", "10 pings in a row: 10 pongs, in order",
             [send(*[F(PING, "payload-%d" % i) for i in range(10)]),
              expect(*[pong("payload-%d" % i) for i in range(10)])]),
        Case("2.11", "10 pings in a row, sent in 1-byte writes: 10 pongs, in order",
             [send(*[F(PING, "payload-%d" % i) for i in range(10)], mode=("chop", 1)),
              expect(*[pong("payload-%d" % i) for i in range(10)])]),
    ]
    # Not in Autobahn: every control payload length from 0 to 125.
    for n in range(126):
        payload = bytes((i * 31 + n) & 0xFF for i in range(n))
        cases.append(Case("2.12.%d" % n, "ping with a %d-byte payload" % n,
                          [send(F(PING, payload)), expect(pong(payload))]))
    return cases


# =============================================================================================
# 3 Reserved bits


def cat3():
    cases = [
        Case("3.1", "text message with RSV=1",
             [send(F(TEXT, HELLO, rsv=1))], ("fail", 1002)),
        Case("3.2", "valid text, then text with RSV=2, then ping: first echoed, no pong",
             [send(F(TEXT, HELLO), F(TEXT, HELLO, rsv=2), F(PING, HELLO)),
              expect(msg(TEXT, HELLO))], ("fail", 1002)),
        Case("3.3", "valid text, then text with RSV=3, then ping, one write per frame",
             [send(F(TEXT, HELLO), F(TEXT, HELLO, rsv=3), F(PING, HELLO), mode=FRAMES),
              expect(msg(TEXT, HELLO))], ("fail", 1002)),
        Case("3.4", "valid text, then text with RSV=4, then ping, in 1-byte writes",
             [send(F(TEXT, HELLO), F(TEXT, HELLO, rsv=4), F(PING, HELLO), mode=("chop", 1)),
              expect(msg(TEXT, HELLO))], ("fail", 1002)),
        Case("3.5", "binary message with RSV=5",
             [send(F(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5))], ("fail", 1002)),
        Case("3.6", "ping with RSV=6",
             [send(F(PING, HELLO, rsv=6))], ("fail", 1002)),
        Case("3.7", "close with RSV=7",
             [send(F(CLOSE, close_payload(1000), rsv=7))], ("fail", 1002)),
    ]
    # Not in Autobahn: each reserved bit alone on each kind of frame.
    kinds = [
        ("text", lambda r: [F(TEXT, HELLO, rsv=r)]),
        ("binary", lambda r: [F(BINARY, b"\x01\x02\x03", rsv=r)]),
        ("ping", lambda r: [F(PING, HELLO, rsv=r)]),
        ("pong", lambda r: [F(PONG, HELLO, rsv=r)]),
        ("close", lambda r: [F(CLOSE, close_payload(1000), rsv=r)]),
        ("first fragment", lambda r: [F(TEXT, b"frag1", fin=False, rsv=r),
                                      F(CONT, b"frag2")]),
        ("continuation", lambda r: [F(TEXT, b"frag1", fin=False),
                                    F(CONT, b"frag2", rsv=r)]),
    ]
    i = 1
    for kind, make in kinds:
        for bit, bname in [(RSV1, "RSV1"), (RSV2, "RSV2"), (RSV3, "RSV3")]:
            cases.append(Case("3.8.%d" % i, "%s frame with %s set" % (kind, bname),
                              [send(*make(bit))], ("fail", 1002)))
            i += 1
    for i, (bit, bname) in enumerate([(RSV1, "RSV1"), (RSV2, "RSV2"), (RSV3, "RSV3")], start=1):
        cases.append(Case("3.9.%d" % i, "valid binary, then binary with %s set, then ping: "
                          "first echoed, no pong" % bname,
                          [send(F(BINARY, b"\x00\x01"), F(BINARY, b"\x00\x01", rsv=bit),
                                F(PING, b"p")),
                           expect(msg(BINARY, b"\x00\x01"))], ("fail", 1002)))
    return cases


# =============================================================================================
# 4 Opcodes

RESERVED_DATA = [3, 4, 5, 6, 7]
RESERVED_CONTROL = [0xB, 0xC, 0xD, 0xE, 0xF]


def cat4():
    cases = []
    for sub, ops in [(1, RESERVED_DATA), (2, RESERVED_CONTROL)]:
        a, b, c, d, e = ops
        cases += [
            Case("4.%d.1" % sub, "reserved opcode %d" % a,
                 [send(F(a))], ("fail", 1002)),
            Case("4.%d.2" % sub, "reserved opcode %d with payload" % b,
                 [send(F(b, b"reserved opcode payload"))], ("fail", 1002)),
            Case("4.%d.3" % sub, "valid text, then reserved opcode %d, then ping: text echoed, "
                 "no pong" % c,
                 [send(F(TEXT, HELLO), F(c), F(PING)), expect(msg(TEXT, HELLO))],
                 ("fail", 1002)),
            Case("4.%d.4" % sub, "valid text, then reserved opcode %d with payload, then ping"
                 % d,
                 [send(F(TEXT, HELLO), F(d, b"reserved opcode payload"), F(PING)),
                  expect(msg(TEXT, HELLO))], ("fail", 1002)),
            Case("4.%d.5" % sub, "valid text, then reserved opcode %d with payload, then ping"
                 % e,
                 [send(F(TEXT, HELLO), F(e, b"reserved opcode payload"), F(PING)),
                  expect(msg(TEXT, HELLO))], ("fail", 1002)),
        ]
    # Not in Autobahn: every reserved opcode alone, after a valid message, and inside an open
    # fragmented message.
    for i, op in enumerate(RESERVED_DATA + RESERVED_CONTROL, start=1):
        cases.append(Case("4.3.%d" % i, "reserved opcode 0x%X with a 5-byte payload" % op,
                          [send(F(op, b"hello"))], ("fail", 1002)))
    for i, op in enumerate(RESERVED_DATA + RESERVED_CONTROL, start=1):
        cases.append(Case("4.4.%d" % i, "valid binary, then reserved opcode 0x%X, then ping"
                          % op,
                          [send(F(BINARY, b"\xff\x00"), F(op, b"x"), F(PING, b"p")),
                           expect(msg(BINARY, b"\xff\x00"))], ("fail", 1002)))
    for i, op in enumerate(RESERVED_DATA + RESERVED_CONTROL, start=1):
        cases.append(Case("4.5.%d" % i, "reserved opcode 0x%X between two fragments of a text "
                          "message" % op,
                          [send(F(TEXT, b"frag1", fin=False), F(op, b"x"), F(CONT, b"frag2"))],
                          ("fail", 1002)))
    return cases


# =============================================================================================
# 5 Fragmentation


def cat5():
    f1, f2 = b"fragment1", b"fragment2"
    two = [F(TEXT, f1, fin=False), F(CONT, f2)]
    with_ping = [F(TEXT, f1, fin=False), F(PING, b"ping payload"), F(CONT, f2)]
    stray_fin = [F(CONT, f1), F(TEXT, f2)]
    stray_open = [F(CONT, f1, fin=False), F(TEXT, f2)]
    cases = [
        Case("5.1", "ping in 2 fragments",
             [send(F(PING, b"fragment1", fin=False), F(CONT, b"fragment2"))], ("fail", 1002)),
        Case("5.2", "pong in 2 fragments",
             [send(F(PONG, b"fragment1", fin=False), F(CONT, b"fragment2"))], ("fail", 1002)),
        Case("5.3", "text in 2 fragments",
             [send(*two), expect(msg(TEXT, f1 + f2))]),
        Case("5.4", "text in 2 fragments, one write per frame",
             [send(*two, mode=FRAMES), expect(msg(TEXT, f1 + f2))]),
        Case("5.5", "text in 2 fragments, in 1-byte writes",
             [send(*two, mode=("chop", 1)), expect(msg(TEXT, f1 + f2))]),
        Case("5.6", "text in 2 fragments with a ping between them",
             [send(*with_ping), expect(pong(b"ping payload"), msg(TEXT, f1 + f2))]),
        Case("5.7", "text in 2 fragments with a ping between them, one write per frame",
             [send(*with_ping, mode=FRAMES), expect(pong(b"ping payload"), msg(TEXT, f1 + f2))]),
        Case("5.8", "text in 2 fragments with a ping between them, in 1-byte writes",
             [send(*with_ping, mode=("chop", 1)),
              expect(pong(b"ping payload"), msg(TEXT, f1 + f2))]),
        Case("5.9", "final continuation with nothing to continue, then text",
             [send(*stray_fin)], ("fail", 1002)),
        Case("5.10", "final continuation with nothing to continue, then text, one write per "
             "frame", [send(*stray_fin, mode=FRAMES)], ("fail", 1002)),
        Case("5.11", "final continuation with nothing to continue, then text, in 1-byte writes",
             [send(*stray_fin, mode=("chop", 1))], ("fail", 1002)),
        Case("5.12", "non-final continuation with nothing to continue, then text",
             [send(*stray_open)], ("fail", 1002)),
        Case("5.13", "non-final continuation with nothing to continue, then text, one write "
             "per frame", [send(*stray_open, mode=FRAMES)], ("fail", 1002)),
        Case("5.14", "non-final continuation with nothing to continue, then text, in 1-byte "
             "writes", [send(*stray_open, mode=("chop", 1))], ("fail", 1002)),
        Case("5.15", "text in 2 fragments, then a continuation with nothing to continue: "
             "the message is echoed, then 1002",
             [send(F(TEXT, f1, fin=False), F(CONT, f2), F(CONT, b"fragment3", fin=False),
                   F(TEXT, b"fragment4")),
              expect(msg(TEXT, f1 + f2))], ("fail", 1002)),
        Case("5.16", "twice: non-final continuation with nothing to continue, then text in 2 "
             "fragments",
             [send(*([F(CONT, f1, fin=False), F(TEXT, f2, fin=False),
                      F(CONT, b"fragment3")] * 2))], ("fail", 1002)),
        Case("5.17", "twice: final continuation with nothing to continue, then text in 2 "
             "fragments",
             [send(*([F(CONT, f1), F(TEXT, f2, fin=False), F(CONT, b"fragment3")] * 2))],
             ("fail", 1002)),
        Case("5.18", "text in 2 fragments that both open a message (new text while one is "
             "open)", [send(F(TEXT, f1, fin=False), F(TEXT, f2))], ("fail", 1002)),
    ]
    frs = [b"fragment%d" % i for i in range(1, 6)]
    for cid, mode in [("5.19", ONE), ("5.20", FRAMES)]:
        cases.append(Case(
            cid, "text in 5 fragments, a ping after the 2nd (answered before the rest is "
            "sent) and another after the 4th%s" % (", one write per frame" if mode == FRAMES
                                                  else ""),
            [send(F(TEXT, frs[0], fin=False), F(CONT, frs[1], fin=False),
                  F(PING, b"pongme 1!"), mode=mode),
             expect(pong(b"pongme 1!")),
             ("quiet", 0.2),
             send(F(CONT, frs[2], fin=False), F(CONT, frs[3], fin=False),
                  F(PING, b"pongme 2!"), F(CONT, frs[4]), mode=mode),
             expect(pong(b"pongme 2!"), msg(TEXT, b"".join(frs)))]))
    # Not in Autobahn, from here on.
    many = pattern(100 * 37)
    bmany = binary_pattern(100 * 37)
    cases += [
        Case("5.21", "text in 100 fragments of 37 bytes",
             [send(*fragments(TEXT, many, 37)), expect(msg(TEXT, many))]),
        Case("5.22", "binary in 2 fragments",
             [send(F(BINARY, b"\x00\xff", fin=False), F(CONT, b"\xfe\x01")),
              expect(msg(BINARY, b"\x00\xff\xfe\x01"))]),
        Case("5.23", "binary in 100 fragments of 37 bytes",
             [send(*fragments(BINARY, bmany, 37)), expect(msg(BINARY, bmany))]),
        Case("5.24", "text whose fragments are mostly empty (empty, empty, 'abc', empty, "
             "empty)",
             [send(F(TEXT, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"abc", fin=False),
                   F(CONT, b"", fin=False), F(CONT, b"")),
              expect(msg(TEXT, b"abc"))]),
        Case("5.25", "binary of 4 empty fragments",
             [send(F(BINARY, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"", fin=False),
                   F(CONT, b"")),
              expect(msg(BINARY, b""))]),
        Case("5.26", "text in 3 fragments with an unsolicited pong between them (ignored)",
             [send(F(TEXT, b"one", fin=False), F(PONG, b"stray"), F(CONT, b"two", fin=False),
                   F(PONG), F(CONT, b"three")),
              expect(msg(TEXT, b"onetwothree"))]),
        Case("5.27", "binary in 4 fragments with 3 pings between them: 3 pongs in order, then "
             "the message",
             [send(F(BINARY, b"\x01", fin=False), F(PING, b"p1"), F(CONT, b"\x02", fin=False),
                   F(PING, b"p2"), F(CONT, b"\x03", fin=False), F(PING, b"p3"),
                   F(CONT, b"\x04")),
              expect(pong(b"p1"), pong(b"p2"), pong(b"p3"), msg(BINARY, b"\x01\x02\x03\x04"))]),
        Case("5.28", "text in 2 fragments with a ping between them, in 1-byte writes, the ping "
             "answered before the last fragment is sent",
             [send(F(TEXT, f1, fin=False), F(PING, b"early"), mode=("chop", 1)),
              expect(pong(b"early")),
              send(F(CONT, f2), mode=("chop", 1)),
              expect(msg(TEXT, f1 + f2))]),
        Case("5.29", "binary message started while a text message is open",
             [send(F(TEXT, f1, fin=False), F(BINARY, f2))], ("fail", 1002)),
        Case("5.30", "close in 2 fragments",
             [send(F(CLOSE, close_payload(1000), fin=False), F(CONT, b""))], ("fail", 1002)),
        Case("5.31", "text in 2 fragments, then a non-final continuation after the message "
             "ended, then its final continuation",
             [send(F(TEXT, f1, fin=False), F(CONT, f2), F(CONT, b"x", fin=False),
                   F(CONT, b"y")),
              expect(msg(TEXT, f1 + f2))], ("fail", 1002)),
        Case("5.32", "text in 1 fragment (FIN set on the first frame) followed by a "
             "continuation", [send(F(TEXT, f1), F(CONT, f2)), expect(msg(TEXT, f1))],
             ("fail", 1002)),
    ]
    return cases


# =============================================================================================
# 6 UTF-8 handling


def utf8_groups():
    """The UTF-8 decoder stress sequences (after Markus Kuhn's UTF-8-test.txt) in Autobahn's
    grouping; group k is case family 6.(k+5). Each entry: (title, [(valid, bytes), ...])."""
    groups = []
    groups.append(("some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"),
        (True, b"hello\xe2\x82\xacworld"), (True, b"hello\xf0\xa4\xad\xa2world"),
        (True, KOSME)]))
    prefixes = []
    for i in range(1, len(KOSME) + 1):
        p = KOSME[:i]
        try:
            p.decode("utf-8")
            prefixes.append((True, p))
        except UnicodeDecodeError:
            prefixes.append((False, p))
    groups.append(("a prefix of a valid multi-byte UTF-8 string", prefixes))
    groups.append(("first possible sequence of a certain length", [
        (True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"),
        (True, b"\xf0\x90\x80\x80")]))
    groups.append(("first possible sequence of length 5/6 (invalid code point)", [
        (False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    groups.append(("last possible sequence of a certain length", [
        (True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"),
        (True, b"\xf4\x8f\xbf\xbf")]))
    groups.append(("last possible sequence of length 4/5/6 (invalid code point)", [
        (False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"),
        (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    groups.append(("other boundary conditions", [
        (True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
        (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    cont = [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",
            b"\x80\xbf\x80\xbf\x80", b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xbf))]
    groups.append(("unexpected continuation bytes", [(False, s) for s in cont]))
    lonely = []
    for lo, hi in [(0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd)]:
        lonely.append((False, b"".join(bytes([c, 0x20]) for c in range(lo, hi))))
    groups.append(("lonely start bytes, each followed by a space", lonely))
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
               b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
               b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    groups.append(("sequence with its last continuation byte missing",
                   [(False, s) for s in missing]))
    groups.append(("concatenation of incomplete sequences", [(False, b"".join(missing))]))
    groups.append(("impossible bytes", [
        (False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]))
    groups.append(("overlong ASCII character", [
        (False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
        (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")]))
    groups.append(("maximum overlong sequence", [
        (False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
        (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    groups.append(("overlong NUL", [
        (False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
        (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")]))
    groups.append(("single UTF-16 surrogate", [
        (False, s) for s in [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                             b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]]))
    paired = []
    for hi in [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf"]:
        for lo in [b"\xed\xb0\x80", b"\xed\xbf\xbf"]:
            paired.append((False, hi + lo))
    groups.append(("paired UTF-16 surrogates", paired))
    nonchar = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]:
        for z2 in [0x8f, 0x9f, 0xaf, 0xbf]:
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # past U+10FFFF
            for z3 in [0xbe, 0xbf]:
                s = bytes([z1, z2, 0xbf, z3])
                if s in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):
                    continue  # overlong
                nonchar.append((True, s))
    groups.append(("non-character code point (valid UTF-8)", nonchar))
    groups.append(("Unicode specials (valid UTF-8)", [
        (True, bytes([0xef, 0xbf, c])) for c in range(0xb9, 0xc0)]))
    return groups


def _check_utf8_table(groups):
    """The table's verdicts must agree with Python's strict decoder (RFC 3629)."""
    for title, seqs in groups:
        for valid, s in seqs:
            try:
                s.decode("utf-8")
                ok = True
            except UnicodeDecodeError:
                ok = False
            assert ok == valid, "UTF-8 table: %r marked %s in %r" % (s, valid, title)


def cat6():
    cases = [
        Case("6.1.1", "empty text message",
             [send(F(TEXT, b"")), expect(msg(TEXT, b""))]),
        Case("6.1.2", "text of 3 empty fragments",
             [send(F(TEXT, b"", fin=False), F(CONT, b"", fin=False), F(CONT, b"")),
              expect(msg(TEXT, b""))]),
        Case("6.1.3", "text of 3 fragments, first and last empty",
             [send(F(TEXT, b"", fin=False), F(CONT, b"middle frame payload", fin=False),
                   F(CONT, b"")),
              expect(msg(TEXT, b"middle frame payload"))]),
        Case("6.2.1", "valid UTF-8 text in one frame",
             [send(F(TEXT, HELLO_UTF8)), expect(msg(TEXT, HELLO_UTF8))]),
        Case("6.2.2", "valid UTF-8 text in 2 fragments split on a code point boundary",
             [send(F(TEXT, HELLO_UTF8[:13], fin=False), F(CONT, HELLO_UTF8[13:])),
              expect(msg(TEXT, HELLO_UTF8))]),
        Case("6.2.3", "valid UTF-8 text in 1-byte fragments",
             [send(*fragments(TEXT, HELLO_UTF8, 1)), expect(msg(TEXT, HELLO_UTF8))]),
        Case("6.2.4", "valid UTF-8 (kosme) in 1-byte fragments",
             [send(*fragments(TEXT, KOSME, 1)), expect(msg(TEXT, KOSME))]),
    ]
    assert HELLO_UTF8[:13].decode() and HELLO_UTF8[13:].decode()
    # Not in Autobahn: the valid text split into 2 fragments at every byte.
    for k in range(1, len(HELLO_UTF8)):
        cases.append(Case("6.2.5.%d" % k, "valid UTF-8 text in 2 fragments split after byte %d"
                          % k,
                          [send(F(TEXT, HELLO_UTF8[:k], fin=False), F(CONT, HELLO_UTF8[k:])),
                           expect(msg(TEXT, HELLO_UTF8))]))
    cases += [
        Case("6.3.1", "invalid UTF-8 text (a surrogate at byte 12) in one frame",
             [send(F(TEXT, INVALID_KOSME))], ("fail", 1007)),
        Case("6.3.2", "invalid UTF-8 text (a surrogate at byte 12) in 1-byte fragments",
             [send(*fragments(TEXT, INVALID_KOSME, 1))], ("fail", 1007)),
    ]
    # Not in Autobahn: the invalid text split into 2 fragments at every byte.
    for k in range(1, len(INVALID_KOSME)):
        cases.append(Case("6.3.3.%d" % k, "invalid UTF-8 text in 2 fragments split after byte "
                          "%d" % k,
                          [send(F(TEXT, INVALID_KOSME[:k], fin=False),
                                F(CONT, INVALID_KOSME[k:]))], ("fail", 1007)))
    # 6.4: fail fast. Parts 1 and 3 are valid; part 2 makes the message invalid. The close
    # must come after part 2 and before part 3 is sent.
    for cid, split in [("6.4.1", (11, 15)), ("6.4.2", (12, 13))]:
        p = INVALID_RANGE
        cases.append(Case(cid, "invalid UTF-8 in 3 fragments, paused between them: close 1007 "
                          "right after the fragment holding byte 0x%02x (fail fast)" % p[12],
                          [send(F(TEXT, p[:split[0]], fin=False)),
                           ("quiet", 0.3),
                           send(F(CONT, p[split[0]:split[1]], fin=False)),
                           ("failfast", 1007, FAILFAST_WAIT),
                           send(F(CONT, p[split[1]:]))], ("fail", 1007)))
    for cid, split in [("6.4.3", (11, 15)), ("6.4.4", (12, 13))]:
        p = INVALID_RANGE
        cases.append(Case(cid, "invalid UTF-8 in one frame sent in 3 writes, paused between "
                          "them: close 1007 right after the write holding byte 0x%02x (fail "
                          "fast)" % p[12],
                          [("encode", "m", F(TEXT, p)),
                           ("send_slice", "m", 0, split[0]),
                           ("quiet", 0.3),
                           ("send_slice", "m", split[0], split[1]),
                           ("failfast", 1007, FAILFAST_WAIT),
                           ("send_slice", "m", split[1], None)], ("fail", 1007)))
    groups = utf8_groups()
    _check_utf8_table(groups)
    per_byte = []
    for gi, (title, seqs) in enumerate(groups, start=5):
        for si, (valid, s) in enumerate(seqs, start=1):
            cid = "6.%d.%d" % (gi, si)
            what = "%s: %s (%s)" % (title, s.hex(" ") if len(s) <= 24 else
                                    "%d bytes" % len(s), "valid" if valid else "invalid")
            if valid:
                cases.append(Case(cid, what, [send(F(TEXT, s)), expect(msg(TEXT, s))]))
            else:
                cases.append(Case(cid, what, [send(F(TEXT, s))], ("fail", 1007)))
            per_byte.append((cid, valid, s))
    # Not in Autobahn: every 6.5 to 6.23 sequence again, one byte per fragment, so that the
    # validator must carry its state across frames (and see a truncated sequence at the end).
    for i, (cid, valid, s) in enumerate(per_byte, start=1):
        frames = fragments(TEXT, s, 1)
        what = "case %s sent one byte per fragment (%s)" % (cid, "valid" if valid else "invalid")
        if valid:
            cases.append(Case("6.24.%d" % i, what, [send(*frames), expect(msg(TEXT, s))]))
        else:
            cases.append(Case("6.24.%d" % i, what, [send(*frames)], ("fail", 1007)))
    return cases


# =============================================================================================
# 7 Close handling

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000,
                     4999, 1012, 1013, 1014]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015]


def cat7():
    big = pattern(256 * KIB)
    cases = [
        Case("7.1.1", "text message, then close 1000: echo, then close 1000",
             [send(F(TEXT, b"Hello World!")), expect(msg(TEXT, b"Hello World!")),
              send(F(CLOSE, close_payload(1000)))], ("closed", [1000])),
        Case("7.1.2", "close 1000 twice: one close back",
             [send(F(CLOSE, close_payload(1000)), F(CLOSE, close_payload(1000)))],
             ("closed", [1000])),
        Case("7.1.3", "close 1000, then a ping: no pong",
             [send(F(CLOSE, close_payload(1000)), F(PING, b"Hello World!"))],
             ("closed", [1000])),
        Case("7.1.4", "close 1000, then a text message: not echoed (data after close is "
             "ignored)",
             [send(F(CLOSE, close_payload(1000)), F(TEXT, b"Hello World!"))],
             ("closed", [1000])),
        Case("7.1.5", "first fragment of a text message, then close 1000, then the last "
             "fragment: close 1000 back, nothing echoed",
             [send(F(TEXT, b"fragment1", fin=False), F(CLOSE, close_payload(1000)),
                   F(CONT, b"fragment2"))], ("closed", [1000])),
        Case("7.1.6", "256 KiB text, a short text, close 1000, a ping: both echoed, close "
             "1000, no pong",
             [send(F(TEXT, big), F(TEXT, b"Hello World!"), F(CLOSE, close_payload(1000)),
                   F(PING)),
              expect(msg(TEXT, big), msg(TEXT, b"Hello World!"), timeout=10.0)],
             ("closed", [1000])),
        # Not in Autobahn: close, then our FIN at once. A client that half-closes still reads:
        # RFC 6455 section 5.5.1 says the close must be answered all the same.
        Case("7.1.7", "close 1000 and TCP FIN in the same segment: close 1000 back, then TCP "
             "close", [("send_fin", [F(CLOSE, close_payload(1000))])], ("closed", [1000])),
        Case("7.1.8", "close with no payload and TCP FIN in the same segment",
             [("send_fin", [F(CLOSE)])], ("closed", [None, 1000])),
        Case("7.1.9", "close 1000, then TCP FIN 50 ms later",
             [send(F(CLOSE, close_payload(1000))), ("sleep", 0.05), ("shutdown",)],
             ("closed", [1000])),
        Case("7.1.10", "text, close 1000 and TCP FIN in the same segment: echo, then close "
             "1000", [("send_fin", [F(TEXT, b"Hello World!"), F(CLOSE, close_payload(1000))]),
                      expect(msg(TEXT, b"Hello World!"))], ("closed", [1000])),
        Case("7.3.1", "close with an empty payload: empty close or 1000 back",
             [send(F(CLOSE))], ("closed", [None, 1000])),
        Case("7.3.2", "close with a 1-byte payload",
             [send(F(CLOSE, b"\x03"))], ("fail", 1002)),
        Case("7.3.3", "close 1000 without a reason",
             [send(F(CLOSE, close_payload(1000)))], ("closed", [1000])),
        Case("7.3.4", "close 1000 with a short reason",
             [send(F(CLOSE, close_payload(1000, b"Hello World!")))], ("closed", [1000])),
        Case("7.3.5", "close 1000 with a 123-byte reason (125-byte payload)",
             [send(F(CLOSE, close_payload(1000, b"*" * 123)))], ("closed", [1000])),
        Case("7.3.6", "close 1000 with a 124-byte reason (126-byte control frame)",
             [send(F(CLOSE, close_payload(1000, b"*" * 124)))], ("fail", 1002)),
        Case("7.5.1", "close 1000 with a reason that is not valid UTF-8",
             [send(F(CLOSE, close_payload(1000, INVALID_KOSME)))], ("fail", 1007)),
    ]
    for i, code in enumerate(VALID_CLOSE_CODES, start=1):
        cases.append(Case("7.7.%d" % i, "close with valid code %d: the same code back" % code,
                          [send(F(CLOSE, close_payload(code)))], ("closed", [code])))
    for i, code in enumerate(INVALID_CLOSE_CODES, start=1):
        cases.append(Case("7.9.%d" % i, "close with invalid code %d" % code,
                          [send(F(CLOSE, close_payload(code)))], ("fail", 1002)))
    for i, code in enumerate([5000, 65535], start=1):
        cases.append(Case("7.13.%d" % i, "close with code %d (outside the registry ranges)"
                          % code, [send(F(CLOSE, close_payload(code)))], ("fail", 1002)))
    return cases


# =============================================================================================
# 9 Limits and performance (main broker: --max-message 16 MiB)


def cat9():
    cases = []
    sizes = [64 * KIB, 256 * KIB, 1 * MIB, 4 * MIB, 8 * MIB, 16 * MIB]
    for sub, op, name, gen in [(1, TEXT, "text", pattern), (2, BINARY, "binary",
                                                            binary_pattern)]:
        for i, n in enumerate(sizes, start=1):
            p = gen(n)
            cases.append(Case("9.%d.%d" % (sub, i), "%s message of %s" % (name, human(n)),
                              [send(F(op, p)), expect(msg(op, p), timeout=60.0)]))
    frag_sizes = [64, 256, 1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, 1 * MIB]
    for sub, op, name, gen in [(3, TEXT, "text", pattern), (4, BINARY, "binary",
                                                            binary_pattern)]:
        p = gen(1 * MIB)
        for i, fs in enumerate(frag_sizes, start=1):
            cases.append(Case("9.%d.%d" % (sub, i), "1 MiB %s message in fragments of %s"
                              % (name, human(fs)),
                              [send(*fragments(op, p, fs)), expect(msg(op, p), timeout=30.0)]))
    chops = [64, 128, 256, 512, 1024, 2048, 4096, 16 * KIB, 64 * KIB]
    for sub, op, name, gen in [(5, TEXT, "text", pattern), (6, BINARY, "binary",
                                                            binary_pattern)]:
        p = gen(1 * MIB)
        for i, ch in enumerate(chops, start=1):
            cases.append(Case("9.%d.%d" % (sub, i), "1 MiB %s message sent in writes of %s"
                              % (name, human(ch)),
                              [send(F(op, p), mode=("chop", ch)),
                               expect(msg(op, p), timeout=30.0)]))
    rt_sizes = [0, 16, 64, 256, 1024, 4096]
    for sub, op, name in [(7, TEXT, "text"), (8, BINARY, "binary")]:
        for i, n in enumerate(rt_sizes, start=1):
            cases.append(Case("9.%d.%d" % (sub, i), "1000 round trips of %d-byte %s messages"
                              % (n, name), [("roundtrips", op, n, 1000)]))
    # Not in Autobahn: --max-message, on a broker started with the default (65536).
    lim = DEFAULT_MAX_MESSAGE
    t, b = pattern(lim + 1), binary_pattern(lim + 1)
    cases += [
        Case("9.9.1", "text message of exactly --max-message (65536) bytes",
             [send(F(TEXT, t[:lim])), expect(msg(TEXT, t[:lim]))], broker="small"),
        Case("9.9.2", "binary message of exactly --max-message bytes",
             [send(F(BINARY, b[:lim])), expect(msg(BINARY, b[:lim]))], broker="small"),
        Case("9.9.3", "text message of --max-message + 1 bytes",
             [send(F(TEXT, t))], ("fail", 1009), broker="small"),
        Case("9.9.4", "binary message of --max-message + 1 bytes",
             [send(F(BINARY, b))], ("fail", 1009), broker="small"),
        Case("9.9.5", "text of 3 fragments (32768 + 32768 + 1 bytes) growing past "
             "--max-message", [send(*fragments(TEXT, t, 32768))], ("fail", 1009),
             broker="small"),
        Case("9.9.6", "binary of 65 fragments (64 x 1024 + 1 bytes) growing past --max-message",
             [send(*fragments(BINARY, b, 1024))], ("fail", 1009), broker="small"),
        Case("9.9.7", "binary of 4 fragments totalling exactly --max-message",
             [send(*fragments(BINARY, b[:lim], lim // 4)), expect(msg(BINARY, b[:lim]))],
             broker="small"),
        Case("9.9.8", "frame header announcing 16 MiB and no payload: close 1009 without "
             "waiting for the payload",
             [send(F(BINARY, b"", length=16 * MIB)), ("failfast", 1009, FAILFAST_WAIT)],
             ("fail", 1009),
             broker="small"),
        Case("9.9.9", "text of 2 fragments, the second one's header pushing past "
             "--max-message (no payload sent for it)",
             [send(F(TEXT, t[:lim - 10], fin=False), F(CONT, b"", length=11)),
              ("failfast", 1009, FAILFAST_WAIT)], ("fail", 1009), broker="small"),
    ]
    return cases


def human(n):
    if n >= MIB and n % MIB == 0:
        return "%d MiB" % (n // MIB)
    if n >= KIB and n % KIB == 0:
        return "%d KiB" % (n // KIB)
    return "%d bytes" % n


# =============================================================================================
# 10 Auto-fragmentation


def cat10():
    t, b = pattern(64 * KIB), binary_pattern(64 * KIB)
    return [
        Case("10.1.1", "64 KiB text in 1300-byte fragments, echoed as one message",
             [send(*fragments(TEXT, t, 1300)), expect(msg(TEXT, t), timeout=10.0)]),
        Case("10.1.2", "64 KiB binary in 1300-byte fragments, echoed as one message",
             [send(*fragments(BINARY, b, 1300)), expect(msg(BINARY, b), timeout=10.0)]),
    ]


def all_cases():
    cases = cat1() + cat2() + cat3() + cat4() + cat5() + cat6() + cat7() + cat9() + cat10()
    seen = set()
    for c in cases:
        assert c.cid not in seen, "duplicate case number " + c.cid
        seen.add(c.cid)
    return cases

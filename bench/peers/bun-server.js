// SPDX-License-Identifier: MIT
// Peer server for bench/run.sh: ringcast's raw room semantics on Bun's built-in WebSocket
// server (uWebSockets pub/sub), written the way its documentation shows.
//
//   WS /room/<name>          each message goes to every other member of <name>, verbatim,
//                            same opcode (ws.publish excludes the sender)
//   WS /room/<name>?echo=1   the sender gets its own messages too (server.publish)
//   WS /echo                 every message back to its sender
//   GET /healthz             200 ok
//
// Limits follow ringcast's defaults where Bun has a matching knob: 64 KiB messages, 1 MiB of
// unsent bytes per connection and then close (ringcast --slow-consumer close), 60 s idle
// timeout with automatic pings, no permessage-deflate.
//
// Usage: bun bun-server.js [PORT] [HOST]   (or PORT / HOST in the environment; 0 = any port)
// Prints "bun: listening on ws://HOST:PORT" once it accepts connections.
//
// wss://: with TLS_CERT and TLS_KEY (PEM files) in the environment it serves TLS instead, the
// way Bun's documentation shows (Bun.serve's `tls` option: BoringSSL inside uWebSockets, its
// default protocol versions, suites and session resumption), and prints
// "bun: listening on wss://HOST:PORT".

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
const hostname = process.argv[3] ?? process.env.HOST ?? "127.0.0.1";
const tls =
  process.env.TLS_CERT && process.env.TLS_KEY
    ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) }
    : undefined;

// Room names as ringcast takes them: 1..255 bytes after percent-decoding, no '/' and no
// control characters (valid UTF-8 is checked by decodeURIComponent).
function roomName(encoded) {
  let name;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return null;
  }
  const bytes = Buffer.byteLength(name);
  if (bytes < 1 || bytes > 255 || /[\/\x00-\x1f\x7f]/.test(name)) return null;
  return name;
}

const server = Bun.serve({
  port,
  hostname,
  tls,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return new Response("ok\n");
    let data;
    if (url.pathname === "/echo") {
      data = { room: null, echo: false };
    } else if (url.pathname.startsWith("/room/")) {
      const room = roomName(url.pathname.slice(6));
      if (room === null) return new Response("bad room name\n", { status: 400 });
      data = { room, echo: url.searchParams.get("echo") === "1" };
    } else {
      return new Response("not found\n", { status: 404 });
    }
    if (srv.upgrade(req, { data })) return undefined;
    return new Response("WebSocket upgrade expected\n", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 65536,
    backpressureLimit: 1048576,
    closeOnBackpressureLimit: true,
    idleTimeout: 60,
    sendPings: true,
    publishToSelf: false,
    open(ws) {
      if (ws.data.room !== null) ws.subscribe(ws.data.room);
    },
    message(ws, message) {
      const { room, echo } = ws.data;
      if (room === null) ws.send(message);
      else if (echo) server.publish(room, message);
      else ws.publish(room, message);
    },
  },
});

console.log(`bun: listening on ${tls ? "wss" : "ws"}://${hostname}:${server.port}`);

// SPDX-License-Identifier: MIT
// Peer server for bench/run.sh: ringcast's raw room semantics the Socket.IO way, on Node.js and
// the `socket.io` package, written the way its documentation shows (a middleware checks the
// handshake, rooms are socket.join, broadcasts are socket.to(room).emit). ringcast-bench speaks
// it with --protocol socketio (tools/bench/proto_socketio.c).
//
//   WS /socket.io/?EIO=4&transport=websocket&room=<name>
//                            each event "m" (one argument) goes to every other member of
//                            <name>: socket.to(room).emit("m", arg)
//   ...&room=<name>&echo=1   the sender gets its own events too: io.to(room).emit("m", arg)
//   ...without room          every event "m" back to its sender
//   GET /healthz             200 ok
//
// Room names as ringcast takes them: 1..255 bytes, no '/' and no control characters; a bad one
// is refused by a middleware error (the client gets a CONNECT_ERROR packet, 44{"message":...}).
//
// WebSocket transport only (no HTTP long-polling), no permessage-deflate, 64 KiB messages
// (maxHttpBufferSize, as ringcast's limit), Socket.IO's default heartbeat (a ping every 25 s,
// 20 s to answer it). Socket.IO has no knob for ringcast's other limits: nothing bounds the
// unsent bytes of a connection (Engine.IO's write buffer grows without limit, so there is no
// slow-consumer policy: a slow member costs memory, never a close), and there is no idle
// timeout besides the unanswered heartbeat. PING_INTERVAL_MS and PING_TIMEOUT_MS in the
// environment change the heartbeat (the tests shorten it to see the client's answers).
//
// `socket.io` is found in bench/peers/node_modules (npm ci here) or, for CI, which installs
// only tests/integration's packages, in tests/integration/node_modules.
//
// Usage: node socketio-server.js [PORT] [HOST]   (or PORT / HOST in the environment; 0 = any
// port). Prints "socketio: listening on ws://HOST:PORT" once it accepts connections.
"use strict";

const http = require("http");
const path = require("path");

function loadSocketIo() {
  const tries = [
    "socket.io",
    path.join(__dirname, "..", "..", "tests", "integration", "node_modules", "socket.io"),
  ];
  for (const t of tries) {
    try {
      return require(t);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND") throw e;
    }
  }
  throw new Error("the `socket.io` package is missing: run `npm ci` in bench/peers");
}

const { Server } = loadSocketIo();

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
const host = process.argv[3] ?? process.env.HOST ?? "127.0.0.1";

const MAX_MESSAGE = 65536;
const PING_INTERVAL_MS = Number(process.env.PING_INTERVAL_MS || 25000);
const PING_TIMEOUT_MS = Number(process.env.PING_TIMEOUT_MS || 20000);

// The query is already decoded (URLSearchParams), so this checks the name itself. A repeated
// key comes out as its last value.
function roomName(name) {
  if (typeof name !== "string") return null;
  const bytes = Buffer.byteLength(name);
  if (bytes < 1 || bytes > 255 || /[\/\x00-\x1f\x7f]/.test(name)) return null;
  return name;
}

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.end("ok\n");
  } else {
    res.writeHead(404);
    res.end("not found\n");
  }
});

const io = new Server(server, {
  transports: ["websocket"],
  perMessageDeflate: false,
  maxHttpBufferSize: MAX_MESSAGE,
  pingInterval: PING_INTERVAL_MS,
  pingTimeout: PING_TIMEOUT_MS,
  serveClient: false,
});

io.use((socket, next) => {
  const q = socket.handshake.query;
  if (q.room === undefined) {
    socket.data.room = null;
    return next();
  }
  const room = roomName(q.room);
  if (room === null) return next(new Error("bad room name"));
  socket.data.room = room;
  socket.data.echo = q.echo === "1";
  next();
});

io.on("connection", (socket) => {
  const { room, echo } = socket.data;
  if (room === null) {
    socket.on("m", (arg) => socket.emit("m", arg));
    return;
  }
  socket.join(room);
  if (echo) socket.on("m", (arg) => io.to(room).emit("m", arg));
  else socket.on("m", (arg) => socket.to(room).emit("m", arg));
});

server.listen(port, host, () => {
  console.log(`socketio: listening on ws://${host}:${server.address().port}`);
});

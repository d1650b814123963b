// SPDX-License-Identifier: MIT
// Peer server for bench/run.sh: ringcast's raw room semantics on Node.js and the `ws` package,
// the way its README's broadcast example is written (a Map of rooms, one send per member).
//
//   WS /room/<name>          each message goes to every other member of <name>, verbatim,
//                            same opcode
//   WS /room/<name>?echo=1   the sender gets its own messages too
//   WS /echo                 every message back to its sender
//   GET /healthz             200 ok
//
// Limits follow ringcast's defaults: 64 KiB messages, 1 MiB of unsent bytes per connection
// before the connection is dropped (ringcast --slow-consumer close), a ping every 25 s and
// 60 s idle timeout, no permessage-deflate.
//
// Usage: node ws-server.js [PORT] [HOST]   (or PORT / HOST in the environment; 0 = any port)
// Prints "node-ws: listening on ws://HOST:PORT" once it accepts connections.
"use strict";

const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
const host = process.argv[3] ?? process.env.HOST ?? "127.0.0.1";

const MAX_MESSAGE = 65536;
const SEND_QUEUE = 1048576;
const PING_INTERVAL_MS = 25000;
const IDLE_TIMEOUT_MS = 60000;

const rooms = new Map(); // name -> Set of sockets
const clients = new Set(); // every open socket, for pings and the idle timeout

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

function refuse(socket, status, reason) {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: MAX_MESSAGE,
  clientTracking: false,
});

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.end("ok\n");
  } else {
    res.writeHead(404);
    res.end("not found\n");
  }
});

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://x");
  let room = null;
  if (url.pathname.startsWith("/room/")) {
    room = roomName(url.pathname.slice(6));
    if (room === null) return refuse(socket, 400, "Bad Request");
  } else if (url.pathname !== "/echo") {
    return refuse(socket, 404, "Not Found");
  }
  const echo = url.searchParams.get("echo") === "1";
  wss.handleUpgrade(req, socket, head, (ws) => join(ws, room, echo));
});

function join(ws, room, echo) {
  ws.lastSeen = Date.now();
  clients.add(ws);
  let members = null;
  if (room !== null) {
    members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
  }
  ws.on("pong", () => {
    ws.lastSeen = Date.now();
  });
  ws.on("message", (data, isBinary) => {
    ws.lastSeen = Date.now();
    if (members === null) {
      ws.send(data, { binary: isBinary });
      return;
    }
    for (const m of members) {
      if ((m !== ws || echo) && m.readyState === WebSocket.OPEN) {
        if (m.bufferedAmount > SEND_QUEUE) m.terminate(); // slow consumer
        else m.send(data, { binary: isBinary });
      }
    }
  });
  ws.on("close", () => {
    clients.delete(ws);
    if (members !== null) {
      members.delete(ws);
      if (members.size === 0) rooms.delete(room);
    }
  });
  ws.on("error", () => {});
}

setInterval(() => {
  const now = Date.now();
  for (const ws of clients) {
    if (now - ws.lastSeen > IDLE_TIMEOUT_MS) ws.terminate();
    else ws.ping();
  }
}, PING_INTERVAL_MS).unref();

server.listen(port, host, () => {
  console.log(`node-ws: listening on ws://${host}:${server.address().port}`);
});

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Peer server for bench/run.sh: ringcast's raw room semantics on Python's `websockets`
(Debian's python3-websockets, asyncio), written the way its documentation shows.

  WS /room/<name>          each message goes to every other member of <name>, verbatim,
                           same opcode (websockets.broadcast)
  WS /room/<name>?echo=1   the sender gets its own messages too
  WS /echo                 every message back to its sender

Limits follow ringcast's defaults: 64 KiB messages, a ping every 25 s, no permessage-deflate.
websockets.broadcast skips a member whose write buffer is over its high-water mark instead of
closing it (the library's own slow-consumer rule).

Usage: py-websockets-server.py [PORT] [HOST]   (or PORT / HOST in the environment; 0 = any)
Prints "py-websockets: listening on ws://HOST:PORT" once it accepts connections.
"""
import asyncio
import os
import sys
import urllib.parse

import websockets

PORT = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8080"))
HOST = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("HOST", "127.0.0.1")

rooms = {}  # name -> set of connections


def room_name(encoded):
    try:
        name = urllib.parse.unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        return None
    size = len(name.encode())
    if size < 1 or size > 255 or any(c == "/" or ord(c) < 0x20 or c == "\x7f" for c in name):
        return None
    return name


def route(path):
    """(kind, room, echo) for a request path, or None."""
    url = urllib.parse.urlsplit(path)
    echo = urllib.parse.parse_qs(url.query).get("echo") == ["1"]
    if url.path == "/echo":
        return ("echo", None, False)
    if url.path.startswith("/room/"):
        room = room_name(url.path[6:])
        return ("room", room, echo) if room is not None else None
    return None


async def check(path, _headers):
    if route(path) is None:
        return (404, [], b"not found\n")
    return None


async def handler(ws, path):
    kind, room, echo = route(path)
    if kind == "echo":
        async for message in ws:
            await ws.send(message)
        return
    members = rooms.setdefault(room, set())
    members.add(ws)
    try:
        async for message in ws:
            if echo:
                websockets.broadcast(members, message)
            else:
                websockets.broadcast([m for m in members if m is not ws], message)
    finally:
        members.discard(ws)
        if not members:
            rooms.pop(room, None)


async def main():
    async with websockets.serve(handler, HOST, PORT, compression=None, max_size=65536,
                                ping_interval=25, ping_timeout=35,
                                process_request=check) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"py-websockets: listening on ws://{HOST}:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

#!/usr/bin/env python3
"""Counts PostgreSQL round trips on the wire, for benchmarks (scripts/bench-nodes.sh).

A TCP relay on 127.0.0.1 in front of a PostgreSQL unix socket: it forwards both directions and
counts the server's ReadyForQuery ('Z') messages, of which the server sends exactly one per
round trip (one per Sync or simple query); the registry tests count the same way
(crates/xtt-registry/tests/postgres.rs). Clients must connect with sslmode=disable (no SSL
negotiation byte before the first typed message).

    pg-round-trips.py SOCKET_PATH
prints "relay PORT" and "count PORT" on stdout, then serves until killed. Connecting to the
count port returns the number of round trips so far as one line of text.
"""
import asyncio
import sys


class Counter:
    def __init__(self):
        self.trips = 0


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def pipe_counting(reader, writer, counter):
    """Server to client: typed messages (type byte, 4-byte big-endian length including itself)."""
    try:
        while True:
            header = await reader.readexactly(5)
            length = int.from_bytes(header[1:5], "big")
            body = await reader.readexactly(max(length - 4, 0))
            if header[0:1] == b"Z":
                counter.trips += 1
            writer.write(header + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(socket_path):
    counter = Counter()

    async def relay(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_unix_connection(socket_path)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            pipe(client_r, server_w), pipe_counting(server_r, client_w, counter)
        )

    async def report(_r, w):
        w.write(f"{counter.trips}\n".encode())
        await w.drain()
        w.close()

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    count_server = await asyncio.start_server(report, "127.0.0.1", 0)
    print("relay", relay_server.sockets[0].getsockname()[1])
    print("count", count_server.sockets[0].getsockname()[1], flush=True)
    await asyncio.gather(relay_server.serve_forever(), count_server.serve_forever())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1]))

#!/usr/bin/env python3
"""Holds N half-sent requests open against a running server, then measures /healthz
latency while they are held, and the server's RSS before, during and after.

usage: slow_connections.py HOST:PORT SERVER_PID [N]
Traffic goes to the given address only (run it against a loopback server)."""
import asyncio
import sys
import time


def open_fds(pid):
    import os
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def healthz(host, port):
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return (time.monotonic() - start) * 1000, head.decode().strip()


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port = int(port)
    pid = int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    idle = rss_mib(pid)
    conns = []
    opened = time.monotonic()
    for i in range(n):
        try:
            r, w = await asyncio.open_connection(host, port)
        except OSError as e:
            print(f"connection {i} failed: {e}")
            break
        w.write(b"POST /v1/buses/default/events HTTP/1.1\r\nhost: x\r\nx-slow: ")
        conns.append((r, w))
        if i % 500 == 499:
            await asyncio.sleep(0)
    print(f"half-open connections: {len(conns)} opened in {time.monotonic() - opened:.1f} s")
    lat = [await healthz(host, port) for _ in range(5)]
    print("healthz while held: " + ", ".join(f"{ms:.1f} ms ({status})" for ms, status in lat))
    held = rss_mib(pid)
    for _, w in conns:
        w.close()
    conns.clear()
    await asyncio.sleep(3)
    after = rss_mib(pid)
    await asyncio.sleep(12)
    later = rss_mib(pid)
    print(f"server descriptors open 15 s after closing: {open_fds(pid)}")
    print(f"RSS idle {idle:.1f} MiB, while held {held:.1f} MiB, "
          f"3 s after closing {after:.1f} MiB, 15 s after {later:.1f} MiB")


asyncio.run(main())

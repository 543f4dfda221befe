#!/usr/bin/python3
"""netproxy.py — a TCP proxy that makes a bad network for the network-fault tests (this kernel has
no netem): every chunk is held DELAY_MS before it is passed on, and every connection is cut
(both sides closed) after a random 1..2*CUT_S seconds, so the peers must reconnect and resend.

Usage: netproxy.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS CUT_S
Prints "proxy listening" once it accepts connections; runs until killed.
"""
import asyncio
import random
import sys


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(client_r, client_w, target, delay, cut):
    try:
        up_r, up_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    tasks = [asyncio.ensure_future(pipe(client_r, up_w, delay)),
             asyncio.ensure_future(pipe(up_r, client_w, delay))]
    lifetime = random.uniform(1.0, 2.0 * cut) if cut > 0 else None
    await asyncio.wait(tasks, timeout=lifetime, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:  # cut: both directions closed at once
        t.cancel()
    client_w.close()
    up_w.close()


async def main():
    host, port, thost, tport, delay_ms, cut_s = sys.argv[1:7]
    target = (thost, int(tport))
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, target, float(delay_ms) / 1000.0, float(cut_s)), host, int(port))
    print("proxy listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

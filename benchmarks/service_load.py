"""Benchmark: the risk service under load, on loopback.

Starts ``deleverage serve`` in a subprocess (SQLite file in a temporary directory), opens
10,000 cross accounts with positions of 1 to 9x leverage against the book, connects 1,000
WebSocket clients (one per account key, the first 1,000 accounts), then for ``--seconds`` the
oracle posts 20 marks a second on a sine wave around 100 (+-5%) while readers hit the read
endpoints (an account's positions, the market's insurance fund) 50 times a second. The
accounts are 70% longs and 30% shorts opened at 97, 98.5, 100, 101.5 and 103; the mark swings
4% around 100 over 20 s. Margin warnings at the levels 0.3 ... 0.7, liquidations and
ADL-indicator changes produce the notifications.

Figures:

- latency from the moment a mark is posted to the moment each notification it caused reaches
  its client (p50, p99, max), joined on the notification ``seq`` (the mark's response names
  its seq range);
- dropped: notifications stored for the connected accounts (plus the market-wide ones) that
  their client did not receive;
- reads per second of the read endpoints (4 concurrent readers, after the load).

Everything runs on 127.0.0.1; every loop is bounded in count and time. Target (issue #7):
p99 < 250 ms with nothing dropped. Run: ``.venv/bin/python benchmarks/service_load.py``
(``--quick``: 2,000 accounts, 200 clients, 5 s). The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_description

ADMIN = "benchmark-admin-key-0123456789"
MARKS_PER_SECOND = 20
SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 10, "maintenance_rate": 0.05}],
    "maker_fee_rate": 0.0,
    "taker_fee_rate": 0.0,
}
LEVELS = ("0.3", "0.4", "0.5", "0.6", "0.7")
ENTRY_PRICES = (97.0, 98.5, 100.0, 101.5, 103.0)
AMPLITUDE = 0.04  # the mark's swing around 100, a fraction
PERIOD_S = 20.0  # one swing down and up
READS_PER_SECOND_UNDER_LOAD = 50.0  # reads on a schedule while the marks run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    levels = [arg for level in LEVELS for arg in ("--margin-level", level)]
    command = [
        sys.executable, "-c", "from deleverage.cli.app import main; main()", "serve",
        "--db", str(db), "--port", str(port), "--admin-key", ADMIN,
        "--rate-limit", "1000000", "--rate-burst", "1000000", *levels,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/info", headers={"X-API-Key": ADMIN})
            if r.status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


async def setup(http: httpx.AsyncClient, accounts: int) -> tuple[list[int], list[str]]:
    r = await http.post("/v1/markets", json={"spec": SPEC})
    r.raise_for_status()
    (await http.post("/v1/marks", json={"market": "BTCUSDT", "price": 100.0})).raise_for_status()
    ids: list[int] = []
    keys: list[str] = []
    for start in range(0, accounts, 10_000):
        count = min(10_000, accounts - start)
        r = await http.post("/v1/accounts/batch", json={"count": count, "deposit": 100.0})
        r.raise_for_status()
        ids += r.json()["accounts"]
        keys += r.json()["api_keys"]
    rng = np.random.default_rng(7)
    sizes = rng.uniform(1.0, 9.0, len(ids)).round(3)
    sides = np.where(rng.random(len(ids)) < 0.7, 1, -1)  # 70% longs, 30% shorts
    # a funded trader makes the market: the venue's system accounts never trade through the API
    maker = await http.post("/v1/accounts", json={"deposit": 1e9})
    maker.raise_for_status()
    book = maker.json()["account"]
    groups = np.array_split(np.arange(len(ids)), len(ENTRY_PRICES))
    for price, group in zip(ENTRY_PRICES, groups, strict=True):
        mark = {"market": "BTCUSDT", "price": price}
        (await http.post("/v1/marks", json=mark)).raise_for_status()
        trades = [
            {"market": "BTCUSDT", "buyer": ids[k] if sides[k] > 0 else book,
             "seller": book if sides[k] > 0 else ids[k], "size": float(sizes[k]), "price": price}
            for k in group.tolist()
        ]  # fmt: skip
        (await http.post("/v1/trades/batch", json={"trades": trades})).raise_for_status()
    mark = {"market": "BTCUSDT", "price": 100.0}
    (await http.post("/v1/marks", json=mark)).raise_for_status()
    return ids, keys


class Client:
    """One WebSocket client: its account and (seq, arrival time) of each notification."""

    def __init__(self, account: int) -> None:
        self.account = account
        self.arrivals: dict[int, float] = {}
        self.closed_code: int | None = None

    async def run(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        with contextlib.suppress(Exception):
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                note = json.loads(text)
                self.arrivals[note["seq"]] = now
        self.closed_code = ws.close_code


async def connect_clients(
    url: str, ids: list[int], keys: list[str], n: int
) -> list[tuple[Client, ClientConnection]]:
    out: list[tuple[Client, ClientConnection]] = []
    for start in range(0, n, 100):
        batch = range(start, min(n, start + 100))

        async def one(k: int) -> tuple[Client, ClientConnection]:
            ws = await connect(
                f"{url}/v1/stream", additional_headers={"X-API-Key": keys[k]}, max_queue=None
            )
            hello = json.loads(await ws.recv())
            assert hello["kind"] == "subscribed"
            return Client(ids[k]), ws

        out += await asyncio.gather(*(one(k) for k in batch))
    return out


async def oracle(
    http: httpx.AsyncClient, seconds: float, posts: list[tuple[float, dict[str, Any]]]
) -> None:
    count = int(seconds * MARKS_PER_SECOND)
    t0 = time.perf_counter()

    async def post(k: int) -> None:
        phase = 2.0 * math.pi * k / (PERIOD_S * MARKS_PER_SECOND)
        price = round(100.0 * (1.0 - AMPLITUDE * math.sin(phase)), 2)
        sent = time.perf_counter()
        r = await http.post("/v1/marks", json={"market": "BTCUSDT", "price": price})
        r.raise_for_status()
        result = r.json()
        result["round_trip_ms"] = (time.perf_counter() - sent) * 1000.0
        posts.append((sent, result))

    for k in range(1, count + 1):  # one feed, in order; late posts catch up at once
        delay = t0 + k / MARKS_PER_SECOND - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await post(k)


async def readers(
    http: httpx.AsyncClient,
    ids: list[int],
    seconds: float,
    *,
    rate: float | None = None,
    workers: int = 4,
) -> int:
    """Read an account's positions and the market's fund, alternately; return reads done.

    ``rate``: that many reads a second on a fixed schedule (during the load); None: as fast
    as ``workers`` concurrent readers go (the throughput figure).
    """
    done = 0
    deadline = time.perf_counter() + seconds

    async def read(k: int) -> None:
        nonlocal done
        if k % 2:
            r = await http.get(f"/v1/accounts/{ids[k % len(ids)]}")
        else:
            r = await http.get("/v1/markets/BTCUSDT/insurance")
        r.raise_for_status()
        done += 1

    if rate is not None:
        t0 = time.perf_counter()
        tasks = []
        for k in range(int(seconds * rate)):
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(read(k)))
        await asyncio.gather(*tasks)
        return done

    async def work(w: int) -> None:
        k = w
        while time.perf_counter() < deadline and k < 10_000_000:
            await read(k)
            k += workers

    await asyncio.gather(*(work(w) for w in range(workers)))
    return done


async def stored_since(http: httpx.AsyncClient, since: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _ in range(10_000):  # pages of 10,000
        page = (
            await http.get("/v1/notifications", params={"since": since, "limit": 10_000})
        ).json()
        out += page
        if len(page) < 10_000:
            break
        since = page[-1]["seq"]
    return out


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": ADMIN}, timeout=120.0, limits=limits
    ) as http:
        t = time.perf_counter()
        ids, keys = await setup(http, args.accounts)
        print(f"setup: {len(ids):,} accounts with positions in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        ws_url = url.replace("http://", "ws://")
        clients = await connect_clients(ws_url, ids, keys, args.clients)
        print(f"connected {len(clients):,} WebSocket clients in {time.perf_counter() - t:.1f} s")
        start_seq = (await http.get("/v1/info")).json()["last_notification_seq"]
        stop = asyncio.Event()
        listeners = [asyncio.create_task(c.run(ws, stop)) for c, ws in clients]
        posts: list[tuple[float, dict[str, Any]]] = []
        t = time.perf_counter()
        _, reads = await asyncio.gather(
            oracle(http, args.seconds, posts),
            readers(http, ids, args.seconds, rate=READS_PER_SECOND_UNDER_LOAD),
        )
        load_s = time.perf_counter() - t
        await asyncio.sleep(2.0)  # let the last notifications arrive
        stop.set()
        await asyncio.gather(*listeners)
        stored = await stored_since(http, start_seq)
        t = time.perf_counter()
        quiet_reads = await readers(http, ids, 5.0)
        quiet_s = time.perf_counter() - t
        for _, ws in clients:
            await ws.close()
    sent_at: dict[int, float] = {}
    for sent, result in posts:
        first, count = result["first_notification_seq"], result["notifications"]
        if count:
            for seq in range(first, first + count):
                sent_at[seq] = sent
    by_account: dict[int, list[Client]] = {}
    for client, _ in clients:
        by_account.setdefault(client.account, []).append(client)
    latencies: list[float] = []
    expected = dropped = 0
    for note in stored:
        targets = (
            [c for c, _ in clients] if note["account"] is None
            else by_account.get(note["account"], [])
        )  # fmt: skip
        for client in targets:
            expected += 1
            arrival = client.arrivals.get(note["seq"])
            if arrival is None:
                dropped += 1
            elif note["seq"] in sent_at:
                latencies.append((arrival - sent_at[note["seq"]]) * 1000.0)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    trips = np.asarray([result["round_trip_ms"] for _, result in posts])
    worst = sorted(posts, key=lambda p: -p[1]["round_trip_ms"])[:5]
    print(
        "slowest mark posts (ms, notifications, liquidations):",
        [
            (round(r["round_trip_ms"], 1), r["notifications"], r["detail"]["liquidations"])
            for _, r in worst
        ],
    )
    return {
        "accounts": len(ids),
        "clients": len(clients),
        "seconds": round(load_s, 2),
        "marks": len(posts),
        "marks_per_second": round(len(posts) / load_s, 2),
        "notifications_stored": len(stored),
        "deliveries_expected": expected,
        "deliveries_measured": len(latencies),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        "mark_post_p50_ms": round(float(np.percentile(trips, 50)), 2),
        "mark_post_p99_ms": round(float(np.percentile(trips, 99)), 2),
        "dropped": dropped,
        "clients_closed_early": sum(1 for c, _ in clients if c.closed_code not in (None, 1000)),
        "reads_per_second": round(quiet_reads / quiet_s, 1),
        "reads_under_load": reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 accounts, 200 clients, 5 s")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.clients, args.seconds = 2_000, 200, 5.0
    args.seconds = min(max(args.seconds, 1.0), 120.0)
    args.clients = min(args.clients, args.accounts)
    print(f"machine: {machine_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        server = start_server(Path(tmp) / "load.db", port, Path(tmp) / "server.log")
        try:
            figures = asyncio.run(run(args, f"http://127.0.0.1:{port}"))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{figures['accounts']:,} accounts, {figures['clients']:,} WebSocket clients, "
        f"{figures['marks']} marks in {figures['seconds']} s "
        f"({figures['marks_per_second']}/s), {figures['notifications_stored']:,} notifications"
    )
    print(
        f"mark -> notification latency: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms over {figures['deliveries_measured']:,} deliveries; "
        f"dropped {figures['dropped']}"
    )
    print(
        f"reads: {figures['reads_per_second']}/s (4 concurrent readers, after the load); "
        f"{figures['reads_under_load']} reads at {READS_PER_SECOND_UNDER_LOAD:g}/s during it"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

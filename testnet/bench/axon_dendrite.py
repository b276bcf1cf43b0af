"""Bittensor's axon/dendrite pattern, for `agora bench-query` to measure Agora against.

Miners are FastAPI apps served by uvicorn (one process each, as an axon is); the
validator is an aiohttp client (as the dendrite is). Requests carry ed25519-signed headers
(caller, nonce, body hash); the miner verifies the signature and refuses replayed nonces
before any work, answers, and signs its response over the request's signature and its
body; the client verifies that signature (which Bittensor's dendrite does not: this is the
fairer, slower version). Tasks: `echo` (the body back) and `compute` (A, B generated from
a seed with numpy, C = A @ B returned as float32 bytes; the client checks C with Freivalds'
test, 8 rounds).

    python axon_dendrite.py run --miners 16 --seconds 5 --concurrency 64 --task echo

prints one JSON line: requests/s, p50/p99 latency (ms), completed, errors.
"""

import argparse
import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives import serialization


def raw_public(key):
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_of(name):
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())


def operands(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    return a, b


def serve(port, task, name, validator_hex):
    from fastapi import FastAPI, Request, Response
    import uvicorn

    app = FastAPI()
    key = key_of(name)
    validator = Ed25519PublicKey.from_public_bytes(bytes.fromhex(validator_hex))
    seen = set()

    @app.post("/forward")
    async def forward(request: Request):
        body = await request.body()
        h = request.headers
        try:
            nonce = int(h["x-nonce"])
            sig = bytes.fromhex(h["x-signature"])
            digest = hashlib.blake2b(body, digest_size=32).hexdigest()
            if digest != h["x-body-hash"]:
                return Response(status_code=400, content=b"body hash")
            message = f"{h['x-caller']}.{nonce}.{digest}".encode()
            validator.verify(sig, message)
        except Exception:
            return Response(status_code=401, content=b"bad signature")
        if nonce in seen:
            return Response(status_code=409, content=b"replayed")
        seen.add(nonce)
        if task == "echo":
            out = body
        else:
            seed = int.from_bytes(body[:8], "little")
            n = int.from_bytes(body[8:12], "little")
            a, b = operands(seed, n)
            out = (a @ b).astype(np.float32).tobytes()
        response_sig = key.sign(sig + hashlib.blake2b(out, digest_size=32).digest())
        return Response(content=out, headers={"x-signature": response_sig.hex()})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def freivalds(a, b, c, rounds=8):
    rng = np.random.default_rng()
    for _ in range(rounds):
        r = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(c.shape[1],))
        left = a @ (b @ r)
        right = c @ r
        scale = np.abs(a) @ (np.abs(b) @ np.ones_like(r)) + 1.0
        if np.any(np.abs(left - right) > 1e-3 * scale):
            return False
    return True


def check_product(seed, n, out):
    if len(out) != n * n * 4:
        return False
    a, b = operands(seed, n)
    return freivalds(a, b, np.frombuffer(out, dtype=np.float32).reshape(n, n))


async def client(ports, seconds, concurrency, task, n, key, miners):
    import aiohttp

    caller = raw_public(key).hex()
    latencies = []
    errors = 0
    nonce = [time.time_ns()]
    deadline = time.perf_counter() + seconds

    async def worker(w, session):
        nonlocal errors
        i = w
        while time.perf_counter() < deadline:
            port = ports[i % len(ports)]
            miner = miners[i % len(ports)]
            i += 1
            nonce[0] += 1
            if task == "echo":
                body = os.urandom(1024)
            else:
                seed = int.from_bytes(os.urandom(8), "little")
                body = seed.to_bytes(8, "little") + n.to_bytes(4, "little")
            digest = hashlib.blake2b(body, digest_size=32).hexdigest()
            sig = key.sign(f"{caller}.{nonce[0]}.{digest}".encode())
            headers = {
                "x-caller": caller,
                "x-nonce": str(nonce[0]),
                "x-body-hash": digest,
                "x-signature": sig.hex(),
            }
            start = time.perf_counter()
            try:
                async with session.post(
                    f"http://127.0.0.1:{port}/forward", data=body, headers=headers
                ) as r:
                    out = await r.read()
                    ok = r.status == 200
                    rsig = bytes.fromhex(r.headers.get("x-signature", ""))
                if ok:
                    miner.verify(rsig, sig + hashlib.blake2b(out, digest_size=32).digest())
            except Exception:
                ok = False
            latency = (time.perf_counter() - start) * 1000
            if not ok:
                errors += 1
                continue
            if task == "echo":
                ok = out == body
            else:
                # Off the event loop, as Agora's validator scores off its query thread.
                ok = await asyncio.get_running_loop().run_in_executor(
                    None, check_product, seed, n, out
                )
            if ok:
                latencies.append(latency)
            else:
                errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(w, session) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "completed": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(args):
    validator = key_of("bench-validator")
    ports = [free_port() for _ in range(args.miners)]
    names = [f"bench-miner-{i}" for i in range(args.miners)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "serve", str(p), args.task, name, raw_public(validator).hex()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p, name in zip(ports, names)
    ]
    try:
        deadline = time.time() + 60
        for p in ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit(f"uvicorn on port {p} did not start")
                    time.sleep(0.1)
        miners = [Ed25519PublicKey.from_public_bytes(raw_public(key_of(n))) for n in names]
        # Warm up (connections, imports), then measure.
        asyncio.run(client(ports, 1.0, args.concurrency, args.task, args.n, validator, miners))
        result = asyncio.run(
            client(ports, args.seconds, args.concurrency, args.task, args.n, validator, miners)
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    s.add_argument("task")
    s.add_argument("name")
    s.add_argument("validator")
    r = sub.add_parser("run")
    r.add_argument("--miners", type=int, default=16)
    r.add_argument("--seconds", type=float, default=5.0)
    r.add_argument("--concurrency", type=int, default=64)
    r.add_argument("--task", choices=["echo", "compute"], default="echo")
    r.add_argument("--n", type=int, default=1024)
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args.port, args.task, args.name, args.validator)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""The catalog at studio size: `GET /api/actors` and `enqueue --all` over thousands of actors.

    python benchmarks/bench_catalog.py                       # 1,000 and 10,000, local and s3
    python benchmarks/bench_catalog.py --sizes 1000 --stores s3

For each store and size: the manifests (the old system's real ones as templates, ~9 KB
each) are written, then `actor-maker serve` starts in its own process and is timed:

- cold: the first `GET /api/actors?per_page=50` (every manifest listed and read);
- warm: the median of 20 first-page requests, and of 20 searches (`q=`);
- memory: the server's peak resident set (VmHWM) after the requests.

Then `actor-maker enqueue --all --dry-run` (reads and plans every manifest) is timed.
Goals (issue 10): warm first page < 100 ms, cold < 30 s at 10k, memory < 300 MB,
enqueue --all < 60 s against moto.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "original"


def templates() -> list[dict[str, object]]:
    found = sorted((FIXTURES / "manifests").glob("*_manifest.json"))
    if not found:
        raise SystemExit(f"no fixture manifests under {FIXTURES}")
    return [json.loads(p.read_text()) for p in found]


def seed(store: object, n: int) -> float:
    """``n`` actors: a manifest shaped like a real one, and a small base image in the store."""
    import io

    from PIL import Image

    from actor_maker.layout import base_image_key, manifest_key

    shapes = templates()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buffer, "JPEG")
    base = buffer.getvalue()

    def write(i: int) -> int:
        data = json.loads(json.dumps(shapes[i % len(shapes)]))
        actor_id = f"{i:05d}"
        name = f"{actor_id}_bench_actor"
        data["character_id"] = actor_id
        data["character_name"] = name
        key = base_image_key(name, "jpg")
        store.put_if_absent(key, base, content_type="image/jpeg")  # type: ignore[attr-defined]
        data["base_images"] = [{"filename": key.rsplit("/", 1)[-1], "key": key, "format": "jpeg"}]
        raw = json.dumps(data).encode()
        store.put_if_absent(manifest_key(actor_id), raw, content_type="application/json")  # type: ignore[attr-defined]
        return len(raw)

    with ThreadPoolExecutor(32) as pool:
        sizes = list(pool.map(write, range(n)))
    return statistics.mean(sizes)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(client: httpx.Client, path: str, **params: object) -> float:
    started = time.perf_counter()
    response = client.get(path, params=params)
    response.raise_for_status()
    return time.perf_counter() - started


def restarted_first_page(env: dict[str, str], workdir: Path) -> float:
    """The first page after a restart: the summaries kept in the state dir are reused and
    only the listing (and any manifest that changed) is read."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "actor_maker", "-q", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            return timed(client, "/api/actors", per_page=50)
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench(store_kind: str, n: int, env: dict[str, str], workdir: Path) -> dict[str, object]:
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "actor_maker", "-q", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
                if server.poll() is not None:
                    raise SystemExit(server.stderr.read() if server.stderr else "server died")
            up = time.perf_counter() - started
            cold = timed(client, "/api/actors", per_page=50)
            warm = statistics.median(timed(client, "/api/actors", per_page=50) for _ in range(20))
            search = statistics.median(
                timed(client, "/api/actors", q=f"{i * 37 % n:05d}"[:4]) for i in range(20)
            )
            total = int(client.get("/api/actors", params={"per_page": 1}).headers["X-Total-Count"])
            memory = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    restart = restarted_first_page(env, workdir)
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actor_maker",
            "enqueue",
            "--all",
            "--dry-run",
            "--provider",
            "preview",
        ],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    enqueue = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"enqueue --all failed: {done.stderr.strip()[-500:]}")
    return {
        "store": store_kind,
        "actors": n,
        "listed": total,
        "server_up_s": round(up, 2),
        "cold_first_page_s": round(cold, 2),
        "warm_first_page_ms": round(warm * 1000, 1),
        "warm_search_ms": round(search * 1000, 1),
        "peak_rss_mb": round(memory, 1),
        "restart_first_page_s": round(restart, 2),
        "enqueue_all_dry_run_s": round(enqueue, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--stores", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    args = parser.parse_args()

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    from actor_maker.store.local import LocalStore
    from actor_maker.store.s3 import S3Store
    from actor_maker.testing.s3server import start_moto_server

    rows = []
    with start_moto_server() as s3:
        for store_kind in args.stores:
            for n in args.sizes:
                workdir = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith(("ACTOR_MAKER_", "AWS_", "REPLICATE_"))
                }
                env["ACTOR_MAKER_STATE_DIR"] = str(workdir / "state")
                env["ACTOR_MAKER_SLOT_DIR"] = str(workdir / "slots")
                if store_kind == "local":
                    store: object = LocalStore(workdir / "store")
                    env["ACTOR_MAKER_STORE"] = str(workdir / "store")
                else:
                    bucket = s3.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
                    store = S3Store(
                        bucket,
                        region="us-east-1",
                        endpoint_url=s3.endpoint_url,
                        access_key_id="testing",
                        secret_access_key="testing",
                    )
                    env.update(
                        ACTOR_MAKER_STORE=f"s3://{bucket}",
                        AWS_ENDPOINT_URL_S3=s3.endpoint_url,
                        AWS_ACCESS_KEY_ID="testing",
                        AWS_SECRET_ACCESS_KEY="testing",
                        AWS_DEFAULT_REGION="us-east-1",
                    )
                started = time.perf_counter()
                size = seed(store, n)
                print(
                    f"seeded {n} manifests (~{size / 1024:.1f} KB each) in the {store_kind} store "
                    f"in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                row = bench(store_kind, n, env, workdir)
                print(json.dumps(row), flush=True)
                rows.append(row)
    print()
    print(
        "| store | actors | cold first page | warm first page | warm search | peak RSS "
        "| enqueue --all (dry run) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['store']} | {r['actors']:,} | {r['cold_first_page_s']} s "
            f"| {r['restart_first_page_s']} s | {r['warm_first_page_ms']} ms "
            f"| {r['warm_search_ms']} ms | {r['peak_rss_mb']} MB "
            f"| {r['enqueue_all_dry_run_s']} s |"
        )


if __name__ == "__main__":
    main()

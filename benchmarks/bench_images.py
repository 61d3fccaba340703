"""Server memory for large images (#11.7): three small 49-megapixel PNGs through the API.

Starts ``actor-maker serve`` (preview provider, a fresh local store) in its own process,
uploads three 7000×7000 PNGs of ~160 KB each as base images of three new actors at once,
then asks for their three thumbnails at once. Reads the server's resident memory from
/proc: at idle, its peak (VmHWM) and what it still holds afterwards (VmRSS).

    python benchmarks/bench_images.py
    python benchmarks/bench_images.py --decodes 1     # ACTOR_MAKER_MAX_CONCURRENT_DECODES

Run it with another source tree first on PYTHONPATH to compare versions. Prints a Markdown
table row; the latest numbers live in docs/benchmarks.md. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

SIDE = 7000


def big_png(seed: int) -> bytes:
    img = Image.new("RGB", (SIDE, SIDE), (200, 180 - seed * 20, 160))
    draw = ImageDraw.Draw(img)
    for i in range(0, SIDE, 500):
        draw.rectangle([i, i, i + 300 + seed * 10, i + 300], fill=(20, 40, 90))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def wait_healthy(base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def run(decodes: int | None) -> None:
    images = [big_png(i) for i in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ACTOR_MAKER_", "REPLICATE_"))
        }
        env.update(
            ACTOR_MAKER_STORE=f"{tmp}/store",
            ACTOR_MAKER_STATE_DIR=f"{tmp}/state",
            ACTOR_MAKER_SLOT_DIR=f"{tmp}/slots",
            ACTOR_MAKER_PROVIDER="preview",
        )
        if decodes:
            env["ACTOR_MAKER_MAX_CONCURRENT_DECODES"] = str(decodes)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "actor_maker", "serve", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_healthy(base)
            idle = memory_mb(server.pid)["VmRSS"]

            def upload(i: int) -> str:
                files = {"base_image": (f"big{i}.png", images[i], "image/png")}
                data = {"actor_id": f"09{i}0", "actor_name": f"09{i}0_big"}
                response = httpx.post(f"{base}/api/actors", data=data, files=files, timeout=300)
                response.raise_for_status()
                return data["actor_id"]

            def thumbnail(actor_id: str) -> int:
                actors = httpx.get(f"{base}/api/actors", params={"q": actor_id}).json()
                url = actors[0]["base_thumbnail"]
                response = httpx.get(f"{base}{url}", timeout=300)
                response.raise_for_status()
                return len(response.content)

            started = time.perf_counter()
            with ThreadPoolExecutor(3) as pool:
                ids = list(pool.map(upload, range(3)))
                list(pool.map(thumbnail, ids))
            wall = time.perf_counter() - started
            time.sleep(1.0)
            after = memory_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    import actor_maker

    print(
        f"| {Path(actor_maker.__file__).parent.parent} | {decodes or 'default'} "
        f"| {len(images[0]) / 1024:.0f} KB | {idle:.0f} MB | {after['VmHWM']:.0f} MB "
        f"| {after['VmRSS']:.0f} MB | {wall:.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decodes", type=int, default=None, help="max concurrent decodes")
    args = parser.parse_args()
    print("| source | decodes | PNG size | idle RSS | peak RSS | RSS after | wall |")
    print("|---|---|---|---|---|---|---|")
    run(args.decodes)


if __name__ == "__main__":
    main()

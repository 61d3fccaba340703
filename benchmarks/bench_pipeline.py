"""Pipeline throughput against the Replicate stand-in.

1. Concurrency: N prompts, stand-in latency L, K concurrent requests → wall time
   against the ideal ceil(N/K) × L and against running them one after another (N × L).
2. Overhead: zero provider latency → images per second through download, decode
   check, create-only upload and manifest update, on the local store and on S3 (moto).

    python benchmarks/bench_pipeline.py            # defaults from issue 2: N=24, L=1 s, K=8
    python benchmarks/bench_pipeline.py --sequential  # also run K=1 for the measured baseline

Prints a Markdown table; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import tempfile
import time
import uuid
from pathlib import Path

from actor_maker.config import Settings
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.providers.replicate import ReplicateProvider
from actor_maker.slots import MachineSlots
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

TOKEN = "bench-token"
MODEL = "black-forest-labs/flux-kontext-pro"


def base_image() -> bytes:
    from importlib import resources

    return resources.files("actor_maker").joinpath("assets/astronaut.jpg").read_bytes()


async def run_once(
    store: ObjectStore, standin: ReplicateStandIn, n: int, limit: int, slot_dir: Path
) -> float:
    settings = Settings(_env_file=None, max_concurrent_requests=limit)
    provider = ReplicateProvider(
        token=TOKEN, model=MODEL, base_url=standin.base_url, price=0.04, poll_interval_s=0.05
    )
    pipeline = Pipeline(
        settings=settings,
        store=store,
        provider=provider,
        slots=MachineSlots(limit, slot_dir / uuid.uuid4().hex),
    )
    actor = Actor(f"b{uuid.uuid4().hex[:6]}", f"bench_{uuid.uuid4().hex[:6]}", "person", "female")
    ids = [t.id for t in pipeline.library][:n]
    plan = pipeline.plan_all(actor, only=ids)
    started = time.perf_counter()
    result = await pipeline.run(plan, base_image())
    elapsed = time.perf_counter() - started
    await provider.aclose()
    assert len(result.succeeded) == n, [i.error for i in result.failed]
    return elapsed


def s3_store() -> tuple[ObjectStore, object]:
    from actor_maker.store.s3 import S3Store
    from actor_maker.testing.s3server import start_moto_server

    server = start_moto_server()
    bucket = server.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
    store = S3Store(
        bucket,
        region="us-east-1",
        endpoint_url=server.endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
    )
    return store, server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=24, help="prompts (default 24)")
    parser.add_argument(
        "--latency", type=float, default=1.0, help="stand-in latency in s (default 1)"
    )
    parser.add_argument("--limit", type=int, default=8, help="MAX_CONCURRENT_REQUESTS (default 8)")
    parser.add_argument("--sequential", action="store_true", help="also measure limit 1")
    parser.add_argument("--overhead-n", type=int, default=40, help="images for the overhead runs")
    args = parser.parse_args()

    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, ReplicateStandIn(token=TOKEN) as standin:
        slot_dir = Path(tmp) / "slots"
        standin.faults = Faults(latency=args.latency)
        ideal = math.ceil(args.n / args.limit) * args.latency
        wall = asyncio.run(
            run_once(LocalStore(Path(tmp) / "s1"), standin, args.n, args.limit, slot_dir)
        )
        rows.append(
            f"| concurrency | local | {args.n} | {args.latency:g} s | {args.limit} "
            f"| {wall:.2f} s | "
            f"ideal {ideal:.2f} s → **{wall / ideal:.2f}×**; "
            f"one after another {args.n * args.latency:.0f} s → "
            f"{args.n * args.latency / wall:.1f}× faster |"
        )
        if args.sequential:
            seq = asyncio.run(run_once(LocalStore(Path(tmp) / "s2"), standin, args.n, 1, slot_dir))
            rows.append(
                f"| sequential (K=1) | local | {args.n} | {args.latency:g} s | 1 | {seq:.2f} s | "
                f"ideal {args.n * args.latency:.0f} s → {seq / (args.n * args.latency):.2f}× |"
            )
        standin.faults = Faults(latency=0.0)
        for name, make in (
            ("local", lambda: (LocalStore(Path(tmp) / "o1"), None)),
            ("s3 (moto)", s3_store),
        ):
            store, server = make()
            wall = asyncio.run(run_once(store, standin, args.overhead_n, 8, slot_dir))
            rows.append(
                f"| overhead | {name} | {args.overhead_n} | 0 s | 8 | {wall:.2f} s | "
                f"**{args.overhead_n / wall:.1f} images/s** "
                f"({wall / args.overhead_n * 1000:.0f} ms each) |"
            )
            if server is not None:
                server.stop()  # type: ignore[attr-defined]

    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"Machine: {platform.machine()}, {python}\n")
    print("| run | store | images | latency | K | wall | vs ideal |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Pipeline throughput against the Replicate stand-in (run in its own process).

1. Concurrency: N prompts, stand-in latency L, K concurrent requests → wall time
   against the ideal ceil(N/K) × L and against running them one after another (N × L).
2. Overhead: zero provider latency → images per second through download, decode
   check, create-only upload and manifest update, on the local store and on S3 (moto).

    python benchmarks/bench_pipeline.py               # issue 2's setup: N=24, L=1 s, K=8
    python benchmarks/bench_pipeline.py --sequential  # also measure K=1

Prints a Markdown table; the latest numbers live in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import platform
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from actor_maker.config import Settings
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.providers.replicate import ReplicateProvider
from actor_maker.providers.replicate_http import ReplicateHTTP
from actor_maker.runtime import make_checker
from actor_maker.slots import MachineSlots
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.testing.replicate_server import standin_process

TOKEN = "bench-token"
MODEL = "black-forest-labs/flux-kontext-pro"


@contextlib.contextmanager
def s3_store() -> Iterator[ObjectStore]:
    from actor_maker.store.s3 import S3Store
    from actor_maker.testing.s3server import start_moto_server

    with start_moto_server() as server:
        bucket = server.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        yield S3Store(
            bucket,
            region="us-east-1",
            endpoint_url=server.endpoint_url,
            access_key_id="testing",
            secret_access_key="testing",
        )


CHECKS = True


async def run_once(store: ObjectStore, base_url: str, n: int, limit: int, slots: Path) -> float:
    settings = Settings(_env_file=None, max_concurrent_requests=limit, checks=CHECKS)
    provider = ReplicateProvider(
        ReplicateHTTP(token=TOKEN, base_url=base_url), model=MODEL, price=0.04, poll_interval_s=0.05
    )
    pipeline = Pipeline(
        settings=settings,
        store=store,
        provider=provider,
        slots=MachineSlots(limit, slots / uuid.uuid4().hex),
        checker=make_checker(settings),  # as in production: checks on by default
    )
    tag = uuid.uuid4().hex[:6]
    actor = Actor(f"b{tag}", f"bench_{tag}", "person", "female")
    ids = [t.id for t in pipeline.library][:n]
    base = resources.files("actor_maker").joinpath("assets/astronaut.jpg").read_bytes()
    plan = pipeline.plan_all(actor, only=ids)
    started = time.perf_counter()
    result = await pipeline.run(plan, base)
    elapsed = time.perf_counter() - started
    await provider.aclose()
    assert len(result.succeeded) == n, [i.error for i in result.failed]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=24, help="prompts (default 24)")
    parser.add_argument("--latency", type=float, default=1.0, help="stand-in latency, s")
    parser.add_argument("--limit", type=int, default=8, help="MAX_CONCURRENT_REQUESTS")
    parser.add_argument("--sequential", action="store_true", help="also measure K=1")
    parser.add_argument("--overhead-n", type=int, default=40, help="images per overhead run")
    parser.add_argument("--no-checks", action="store_true", help="run without the quality checks")
    args = parser.parse_args()
    global CHECKS
    CHECKS = not args.no_checks
    n, latency, limit = args.n, args.latency, args.limit

    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        slots = Path(tmp) / "slots"
        with standin_process(latency) as url:
            ideal = math.ceil(n / limit) * latency
            wall = asyncio.run(run_once(LocalStore(Path(tmp) / "c"), url, n, limit, slots))
            rows.append(
                f"| concurrency | local | {n} | {latency:g} s | {limit} | {wall:.2f} s "
                f"| {wall / ideal:.2f}× ideal ({ideal:.2f} s); "
                f"{n * latency / wall:.1f}× faster than one after another ({n * latency:.0f} s) |"
            )
            if args.sequential:
                seq = asyncio.run(run_once(LocalStore(Path(tmp) / "s"), url, n, 1, slots))
                rows.append(
                    f"| one after another | local | {n} | {latency:g} s | 1 | {seq:.2f} s "
                    f"| {seq / (n * latency):.2f}× ideal ({n * latency:.0f} s) |"
                )
        with standin_process(0.0) as url:
            count = args.overhead_n
            stores = {"local": lambda: contextlib.nullcontext(LocalStore(Path(tmp) / "o"))}
            stores["s3 (moto)"] = s3_store
            for name, open_store in stores.items():
                with open_store() as store:
                    wall = asyncio.run(run_once(store, url, count, 8, slots))
                rows.append(
                    f"| overhead | {name} | {count} | 0 s | 8 | {wall:.2f} s "
                    f"| {count / wall:.1f} images/s ({wall / count * 1000:.0f} ms each) |"
                )

    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"Machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, {python}")
    checker = make_checker(Settings(_env_file=None, checks=CHECKS))
    identity = "identity on" if checker and checker.identity_enabled else "identity off"
    print(f"Quality checks: {'on' if checker else 'off'} ({identity})\n")
    print("| run | store | images | latency | K | wall | against the ideal |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

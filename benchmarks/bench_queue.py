"""Distributed mode throughput: N actors × M prompts through Redis and worker processes.

    python benchmarks/bench_queue.py                  # issue 4: 40 × 16, 2 s latency, limit 32
    python benchmarks/bench_queue.py --workers 1 2 4 --rate-case

Wall time is measured from the first message enqueued to the last job finished and
compared with the ideal ``ceil(N×M / limit) × latency``. The rate-limited case
lowers ACTOR_MAKER_CREATE_RATE and compares with its floor (items / rate).
Real Redis (127.0.0.1:6379, database 12, a throwaway prefix), the Replicate
stand-in in its own process, moto S3 in this process.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from importlib import resources

REDIS = "redis://127.0.0.1:6379/12"
TOKEN = "bench-token"


def run(
    args: argparse.Namespace, workers: int, rate: int | None, actors_n: int, prompts_n: int
) -> float:
    from actor_maker import actors
    from actor_maker.jobs.redis import RedisJobRecords
    from actor_maker.prompts import load_library
    from actor_maker.store.s3 import S3Store
    from actor_maker.testing.replicate_server import standin_process
    from actor_maker.testing.s3server import start_moto_server

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with start_moto_server() as s3, standin_process(args.latency) as replicate:
        bucket = s3.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        store = S3Store(
            bucket,
            region="us-east-1",
            endpoint_url=s3.endpoint_url,
            access_key_id="testing",
            secret_access_key="testing",
        )
        base = resources.files("actor_maker").joinpath("assets/astronaut.jpg").read_bytes()
        ids = []
        for n in range(actors_n):
            actor_id = f"b{n:04d}"
            actors.create_actor(
                store,
                actor_id=actor_id,
                actor_name=f"{actor_id}_bench",
                actor_sex="female",
                base_image=base,
                max_bytes=10**7,
                max_pixels=10**8,
            )
            ids.append(actor_id)
        only = ",".join(t.id for t in load_library()[:prompts_n])
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ACTOR_MAKER_", "AWS_", "REPLICATE_"))
        }
        env.update(
            ACTOR_MAKER_QUEUE=REDIS,
            ACTOR_MAKER_QUEUE_PREFIX=prefix,
            ACTOR_MAKER_STORE=f"s3://{bucket}",
            AWS_ENDPOINT_URL=s3.endpoint_url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            REPLICATE_API_TOKEN=TOKEN,
            REPLICATE_BASE_URL=replicate,
            MAX_CONCURRENT_REQUESTS=str(args.limit),
            ACTOR_MAKER_POLL_INTERVAL="0.1",
            ACTOR_MAKER_MAX_JOB_COST="1000",
        )
        if rate:
            env["ACTOR_MAKER_CREATE_RATE"] = str(rate)
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "actor_maker",
                    "-q",
                    "worker",
                    "--concurrency",
                    str(math.ceil(args.limit / workers) + 2),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        time.sleep(3)  # let the workers connect
        records = RedisJobRecords(REDIS, prefix=prefix)
        try:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "actor_maker", "-q", "enqueue", *ids, "--only", only],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            while True:
                jobs = records.list(limit=1000)
                if len(jobs) == actors_n and all(j.state.finished for j in jobs):
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
            failed = sum(j.failed for j in jobs)
            assert failed == 0, f"{failed} items failed"
            return wall
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
            records.clear()
            records.close()


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actors", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rate-case", action="store_true", help="also run the rate-limited case")
    args = parser.parse_args()
    items = args.actors * args.prompts
    ideal = math.ceil(items / args.limit) * args.latency
    print(
        f"{args.actors} actors × {args.prompts} prompts = {items} items, "
        f"latency {args.latency:g} s, "
        f"global limit {args.limit}; ideal {ideal:.0f} s; {os.cpu_count()} cores\n"
    )
    print("| case | workers | wall | against the ideal |")
    print("|---|---|---|---|")
    for workers in args.workers:
        wall = run(args, workers, None, args.actors, args.prompts)
        print(
            f"| concurrency | {workers} | {wall:.1f} s | {wall / ideal:.2f}× ({ideal:.0f} s) |",
            flush=True,
        )
    if args.rate_case:
        rate, n_actors = (
            240,
            8,
        )  # 128 items at 4 creates/s: the floor is 32 s, far above ceil(128/32)×2
        floor = n_actors * args.prompts / (rate / 60)
        wall = run(args, 2, rate, n_actors, args.prompts)
        print(
            f"| rate {rate}/min, {n_actors * args.prompts} items | 2 | {wall:.1f} s | "
            f"{wall / floor:.2f}× the rate floor ({floor:.0f} s) |"
        )


if __name__ == "__main__":
    main()

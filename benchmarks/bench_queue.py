"""Distributed mode throughput: N actors × M prompts through Redis and worker processes.

    python benchmarks/bench_queue.py                  # issue 4: 40 × 16, 2 s latency, limit 32
    python benchmarks/bench_queue.py --workers 1 2 4 --rate-case
    python benchmarks/bench_queue.py --scale          # issue 10: 300 × 49 at the rate limit

Wall time is measured from the first message enqueued to the last job finished and
compared with the ideal: the larger of ``ceil(N×M / limit) × latency`` and the default
create rate's floor (N×M items at 600 a minute: 64 s for 640). The rate-limited cases
lower ACTOR_MAKER_CREATE_RATE and compare with their floor (items / rate).

``--scale`` is Replicate's create limit, time-scaled: 600 creates a minute and ~5 s per
image, run ``--time-scale`` (5) times faster, so 3,000 creates a minute and 1 s per image
(the concurrency needed, rate × latency, is unchanged); the workers' default 1 s poll
interval is scaled the same way (0.2 s). The stand-in enforces that rate
itself (a token bucket answering 429 with ``Retry-After``), so the workers' global create
gate is what keeps it. After the run every manifest is read back: each actor must hold
exactly one entry per prompt asked for (0 lost, 0 duplicated), the stand-in must have made
exactly one prediction per item, and no image may lie in the store without its entry.

Real Redis (127.0.0.1:6379, database 12, a throwaway prefix), the Replicate stand-in in
its own process, moto S3 in this process, the workers as ``actor-maker worker`` processes.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from importlib import resources
from typing import Any

REDIS = "redis://127.0.0.1:6379/12"
TOKEN = "bench-token"
#: Replicate's create limit (creates a minute) and a typical FLUX Kontext latency (s).
REAL_RATE = 600
REAL_LATENCY = 5.0


@dataclasses.dataclass
class Case:
    actors: int
    prompts: int
    workers: int
    latency: float
    limit: int
    rate: int | None = None  # creates a minute; None: the default gate (600)
    concurrency: int | None = None  # threads a worker; None: ceil(limit / workers) + 2
    checks: bool = True
    verify: bool = False
    standin_limit: bool = False  # the stand-in answers 429 above ``rate``
    image_size: int = 768
    profile: str | None = None  # a folder: py-spy records worker 0 and this process there
    poll: float = 0.1  # ACTOR_MAKER_POLL_INTERVAL in the workers (s)

    @property
    def items(self) -> int:
        return self.actors * self.prompts


@dataclasses.dataclass
class Outcome:
    wall: float
    enqueue_s: float
    creates: int = 0
    create_attempts: int = 0
    throttled: int = 0
    lost: int = 0
    duplicated: int = 0
    orphans: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    #: CPU seconds (user + system) spent during the run, by component.
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    jobs: list[Any] = dataclasses.field(default_factory=list)


# -- the stand-in, in its own process, with the provider's create limit --------------------


def _serve(latency: float, per_minute: int | None, size: int, conn: Any) -> None:
    from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

    class RateLimited(ReplicateStandIn):
        """A token bucket over successful creates, like the provider's own limit: about two
        seconds of burst, then ``per_minute``; over it, 429 with ``Retry-After``."""

        rate = (per_minute or 0) / 60.0
        tokens = capacity = max(1.0, rate * 2.0)
        stamp = time.monotonic()
        bucket = threading.Lock()

        @property
        def _create_fault(self) -> str | None:
            fault = super()._create_fault
            if fault is not None or not self.rate:
                return fault
            with self.bucket:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return None
            with self._lock:
                self.throttled += 1
            return "throttle"

    faults = Faults(latency=latency, retry_after=1.0)
    with RateLimited(token=TOKEN, faults=faults, image_size=(size, size)) as standin:
        conn.send(standin.base_url)
        conn.recv()  # "stop"
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(
            {
                "cpu": usage.ru_utime + usage.ru_stime,
                "creates": standin.creates,
                "create_attempts": standin.create_attempts,
                "throttled": standin.throttled,
            }
        )


class StandIn:
    def __init__(self, case: Case) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        limit = case.rate if case.standin_limit else None
        self._proc = ctx.Process(
            target=_serve, args=(case.latency, limit, case.image_size, child), daemon=True
        )

    def __enter__(self) -> StandIn:
        self._proc.start()
        self.base_url: str = self._conn.recv()
        return self

    def counts(self) -> dict[str, Any]:
        self._conn.send("stop")
        counts: dict[str, Any] = self._conn.recv()
        return counts

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join()


def _atomic_conditional_puts() -> None:
    """moto checks ``If-Match``/``If-None-Match`` and then writes, with no lock between:
    two workers' compare-and-swap writes of one manifest can both pass and one entry is
    lost, which real S3 never does. Serialise moto's PUTs so the count checks S3's
    behaviour, not moto's race."""
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "serialised", False):
        return
    lock = threading.Lock()
    put = S3Response.put_object

    def put_object(self: Any) -> Any:
        with lock:
            return put(self)

    put_object.serialised = True  # type: ignore[attr-defined]
    S3Response.put_object = put_object  # type: ignore[method-assign]


# -- one run -------------------------------------------------------------------------------


def run(case: Case) -> Outcome:
    from actor_maker.jobs.redis import RedisJobRecords
    from actor_maker.prompts import load_library
    from actor_maker.store.s3 import S3Store
    from actor_maker.testing.s3server import start_moto_server

    _atomic_conditional_puts()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with start_moto_server() as s3, StandIn(case) as replicate:
        bucket = s3.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        store = S3Store(
            bucket,
            region="us-east-1",
            endpoint_url=s3.endpoint_url,
            access_key_id="testing",
            secret_access_key="testing",
        )
        ids = _make_actors(store, case.actors)
        prompt_ids = [t.id for t in load_library()[: case.prompts]]
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
            REPLICATE_BASE_URL=replicate.base_url,
            MAX_CONCURRENT_REQUESTS=str(case.limit),
            ACTOR_MAKER_POLL_INTERVAL=str(case.poll),
            ACTOR_MAKER_MAX_JOB_COST=str(case.items),
            ACTOR_MAKER_BASE_CACHE=str(max(32, case.actors)),
        )
        if not case.checks:
            env["ACTOR_MAKER_CHECKS"] = "false"
        if case.rate:
            env["ACTOR_MAKER_CREATE_RATE"] = str(case.rate)
        threads = case.concurrency or math.ceil(case.limit / case.workers) + 2
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "actor_maker",
                    "-q",
                    "worker",
                    "--concurrency",
                    str(threads),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(case.workers)
        ]
        time.sleep(3)  # let the workers connect
        targets = (("worker0", procs[0].pid), ("bench", os.getpid())) if case.profile else ()
        spies = [_spy(pid, os.path.join(str(case.profile), f"{name}.txt")) for name, pid in targets]
        records = RedisJobRecords(REDIS, prefix=prefix)
        try:
            cpu_before = (
                _own_cpu(),
                _redis_cpu(records),
                sum(_proc_cpu(p.pid) for p in procs),
            )
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "actor_maker",
                    "-q",
                    "enqueue",
                    *ids,
                    "--only",
                    ",".join(prompt_ids),
                    "--max-cost",
                    str(case.items),
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            enqueued = time.perf_counter() - started
            poll = 0.2 if case.items <= 1000 else 1.0  # this process also runs moto
            while True:
                jobs = records.list(limit=case.actors + 10)
                if len(jobs) == case.actors and all(j.state.finished for j in jobs):
                    break
                time.sleep(poll)
            wall = time.perf_counter() - started
            if poll > 0.2:  # the last job's own finish time, not the poll that saw it
                ends = [j.finished_at for j in jobs if j.finished_at]
                wall -= max(0.0, time.time() - max(ends).timestamp()) if ends else 0.0
            outcome = Outcome(wall=wall, enqueue_s=enqueued, jobs=jobs)
            outcome.cpu["workers"] = sum(_proc_cpu(p.pid) for p in procs) - cpu_before[2]
            outcome.cpu["moto + this process"] = _own_cpu() - cpu_before[0]
            outcome.cpu["redis (all clients)"] = _redis_cpu(records) - cpu_before[1]
            failed = sum(j.failed for j in jobs)
            if failed:
                outcome.problems.append(f"{failed} items failed")
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
            records.clear()
            records.close()
        counts = replicate.counts()
        outcome.cpu["stand-in"] = counts["cpu"]
        outcome.creates = counts["creates"]
        outcome.create_attempts = counts["create_attempts"]
        outcome.throttled = counts["throttled"]
        if case.verify:
            verify(store, ids, prompt_ids, outcome)
        return outcome


def _spy(pid: int, path: str) -> subprocess.Popen[bytes]:
    """py-spy sampling what holds the GIL (CPU, not waits) in ``pid``, 50 times a second."""
    command = ["py-spy", "record", "--nonblocking", "--gil", "-f", "raw", "-r", "50"]
    return subprocess.Popen(
        [*command, "-p", str(pid), "-o", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _make_actors(store: Any, count: int) -> list[str]:
    """``count`` actors with the bundled portrait, 8 at a time. As ``create_actor`` does,
    less its check that the name is free (which reads every manifest: quadratic here)."""
    from concurrent.futures import ThreadPoolExecutor

    from actor_maker.images import inspect_image
    from actor_maker.layout import store_base_image
    from actor_maker.manifest import new_manifest, update_manifest

    base = resources.files("actor_maker").joinpath("assets/astronaut.jpg").read_bytes()
    info = inspect_image(base, max_bytes=10**7, max_pixels=10**8, what="base image")

    def make(actor_id: str) -> str:
        name = f"{actor_id}_bench"
        manifest = new_manifest(
            actor_id=actor_id, actor_name=name, actor_type="person", actor_sex="female"
        )
        manifest.base_images.append(store_base_image(store, actor_id, name, base, info))
        update_manifest(store, actor_id, lambda _: True, create=manifest.copy)
        return actor_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(make, [f"b{n:04d}" for n in range(count)]))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a running process (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(records: Any) -> float:
    import redis

    info = redis.Redis.from_url(REDIS).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def verify(store: Any, ids: list[str], prompt_ids: list[str], outcome: Outcome) -> None:
    """Every actor: one entry per prompt asked for, each with its image; no stray images;
    one prediction per item."""
    from actor_maker import layout
    from actor_maker.manifest import read_manifest

    wanted = set(prompt_ids)
    entries = 0
    for actor_id in ids:
        manifest = read_manifest(store, actor_id)
        assert manifest is not None, actor_id
        got = collections.Counter(str(e.get("prompt_id")) for e in manifest.training_data)
        entries += len(manifest.training_data)
        missing = wanted - set(got)
        outcome.lost += len(missing)
        for prompt_id in sorted(missing):
            states = [
                f"{i.state} {i.key} {i.error}"
                for j in outcome.jobs
                if j.actor_id == actor_id
                for i in j.items
                if i.prompt_id == prompt_id
            ]
            outcome.problems.append(f"{actor_id}: no entry for {prompt_id}; job item: {states}")
            if os.environ.get("BENCH_DEBUG"):
                keys = sorted(
                    o.key for o in store.list(layout.training_prefix(f"{actor_id}_bench"))
                )
                outcome.problems.append(
                    f"  keys {len(keys)}: {[k.rsplit('_', 1)[1] for k in keys]}"
                )
                outcome.problems.append(
                    "  entries: "
                    + str(
                        sorted(
                            (e.get("filename"), e.get("prompt_id")) for e in manifest.training_data
                        )
                    )
                )
        outcome.duplicated += sum(n - 1 for n in got.values() if n > 1)
        extra = set(got) - wanted
        if extra:
            outcome.problems.append(f"{actor_id}: entries for prompts not asked: {sorted(extra)}")
        keys = {obj.key for obj in store.list(layout.training_prefix(f"{actor_id}_bench"))}
        named = {layout.entry_key(store, e, f"{actor_id}_bench") for e in manifest.training_data}
        if named - keys:
            outcome.problems.append(f"{actor_id}: {len(named - keys)} entries without an image")
        outcome.orphans += len(keys - named)
    items = len(ids) * len(prompt_ids)
    if entries != items:
        outcome.problems.append(f"{entries} manifest entries for {items} items")
    if outcome.creates != items:
        outcome.problems.append(f"the stand-in made {outcome.creates} predictions for {items}")


# -- the cases -----------------------------------------------------------------------------


def _scale(args: argparse.Namespace) -> None:
    k = args.time_scale
    rate = round(REAL_RATE * k)
    latency = REAL_LATENCY / k
    case = Case(
        actors=args.actors if args.actors_set else 300,
        prompts=args.prompts if args.prompts_set else 49,
        workers=args.workers[0] if args.workers_set else 4,
        latency=latency,
        limit=args.limit if args.limit_set else 64,
        rate=rate,
        concurrency=args.concurrency,
        checks=args.checks,
        verify=True,
        standin_limit=True,
        image_size=args.image_size,
        profile=args.profile,
        poll=1.0 / args.time_scale,  # the default 1 s poll, time-scaled like the rest
    )
    floor = case.items / (rate / 60)
    print(
        f"{case.actors} actors × {case.prompts} prompts = {case.items} items; "
        f"{case.workers} workers × {case.concurrency or math.ceil(case.limit / case.workers) + 2}"
        f" threads, MAX_CONCURRENT_REQUESTS={case.limit}\n"
        f"time scale {k:g}×: create rate {rate}/min and {latency:g} s a prediction model "
        f"Replicate's {REAL_RATE}/min at {REAL_LATENCY:g} s "
        f"(real-world floor {case.items / REAL_RATE:.1f} min)\n"
        f"quality checks {'on' if case.checks else 'off'}; stand-in images "
        f"{case.image_size}×{case.image_size}; {os.cpu_count()} cores shared with "
        f"Redis, moto, the stand-in and other people's work (load average "
        f"{os.getloadavg()[0]:.1f} at the start)\n",
        flush=True,
    )
    out = run(case)
    print("| case | workers | wall | against the rate floor | creates | 429s | lost | duplicated |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {case.actors}×{case.prompts} at {rate}/min | {case.workers} | {out.wall:.1f} s "
        f"(enqueue {out.enqueue_s:.1f} s) | {out.wall / floor:.2f}× ({floor:.0f} s) | "
        f"{out.creates} / {case.items} | {out.throttled} | {out.lost} | {out.duplicated} |"
    )
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}; orphan images {out.orphans}")
    print(
        "CPU during the run, ms an item: "
        + ", ".join(f"{name} {sec / case.items * 1000:.1f}" for name, sec in out.cpu.items())
        + f"; all {sum(out.cpu.values()) / case.items * 1000:.1f} ms, i.e. "
        f"{sum(out.cpu.values()) / case.items * rate / 60:.2f} cores at the rate"
    )
    for problem in out.problems:
        print(f"PROBLEM: {problem}")
    if out.problems or out.lost or out.duplicated or out.orphans:
        sys.exit(1)


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actors", type=int)
    parser.add_argument("--prompts", type=int)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--workers", type=int, nargs="+")
    parser.add_argument("--rate-case", action="store_true", help="also run the rate-limited case")
    parser.add_argument(
        "--scale", action="store_true", help="only the 300 × 49 case at the time-scaled rate"
    )
    parser.add_argument("--time-scale", type=float, default=5.0, help="with --scale (5)")
    parser.add_argument("--concurrency", type=int, help="threads a worker process")
    parser.add_argument(
        "--checks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="quality checks in the workers (default: on, off with --scale)",
    )
    parser.add_argument("--image-size", type=int, help="stand-in output side (768; 256 --scale)")
    parser.add_argument("--profile", help="folder for py-spy profiles (py-spy on PATH)")
    args = parser.parse_args()
    args.actors_set, args.prompts_set = args.actors is not None, args.prompts is not None
    args.workers_set, args.limit_set = args.workers is not None, args.limit is not None
    if args.scale:
        args.checks = False if args.checks is None else args.checks
        args.image_size = args.image_size or 256
        _scale(args)
        return
    actors_n, prompts_n = args.actors or 40, args.prompts or 16
    limit, workers_list = args.limit or 32, args.workers or [1, 2, 4]
    checks = True if args.checks is None else args.checks
    size = args.image_size or 768
    items = actors_n * prompts_n
    by_limit = math.ceil(items / limit) * args.latency
    by_rate = items / (REAL_RATE / 60)  # the workers' default create gate
    ideal = max(by_limit, by_rate)
    print(
        f"{actors_n} actors × {prompts_n} prompts = {items} items, "
        f"latency {args.latency:g} s, global limit {limit}: {by_limit:.0f} s; "
        f"create rate {REAL_RATE}/min: {by_rate:.0f} s; ideal {ideal:.0f} s; "
        f"{os.cpu_count()} cores\n"
    )
    print("| case | workers | wall | against the ideal |")
    print("|---|---|---|---|")
    for workers in workers_list:
        case = Case(actors_n, prompts_n, workers, args.latency, limit, checks=checks)
        case.concurrency, case.image_size = args.concurrency, size
        wall = run(case).wall
        print(
            f"| concurrency | {workers} | {wall:.1f} s | {wall / ideal:.2f}× ({ideal:.0f} s) |",
            flush=True,
        )
    if args.rate_case:
        # 128 items at 4 creates/s: the floor is 32 s, far above ceil(128/32)×2
        rate, n_actors = 240, 8
        floor = n_actors * prompts_n / (rate / 60)
        case = Case(n_actors, prompts_n, 2, args.latency, limit, rate=rate, checks=checks)
        case.concurrency, case.image_size = args.concurrency, size
        wall = run(case).wall
        print(
            f"| rate {rate}/min, {n_actors * prompts_n} items | 2 | {wall:.1f} s | "
            f"{wall / floor:.2f}× the rate floor ({floor:.0f} s) |"
        )


if __name__ == "__main__":
    main()

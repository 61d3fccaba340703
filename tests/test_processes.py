"""Real `actor-maker` processes against the Replicate stand-in: the machine-wide request
limit, Ctrl-C, the demo, and secrets staying out of output."""

import json
import signal
import subprocess
import time

import pytest

from actor_maker.manifest import require_manifest
from actor_maker.store.local import LocalStore
from actor_maker.testing.replicate_server import Faults

from .conftest import STANDIN_TOKEN
from .helpers import CLI, clean_environ, run_cli, sample_image

TOKEN = STANDIN_TOKEN


@pytest.fixture
def env(tmp_path, standin):
    base = tmp_path / "base.jpg"
    base.write_bytes(sample_image())
    environ = clean_environ()
    environ.update(
        ACTOR_MAKER_STORE=str(tmp_path / "store"),
        ACTOR_MAKER_SLOT_DIR=str(tmp_path / "slots"),
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=standin.base_url,
        ACTOR_MAKER_POLL_INTERVAL="0.05",
    )
    return environ, str(base)


def _default_sigint() -> None:
    # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across exec:
    # give the CLI the disposition a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(environ, *args):
    return subprocess.Popen(
        [*CLI, *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


PROMPTS = "photo-rain-platform,photo-diner-morning,photo-rooftop-dusk,bw-charcoal-portrait"


def test_request_limit_holds_across_processes_on_one_machine(env, standin):
    environ, base = env
    environ["MAX_CONCURRENT_REQUESTS"] = "2"
    standin.faults = Faults(latency=0.4)
    procs = [
        spawn(environ, "-q", "generate-all", f"07{i}", f"07{i}_actor", base, "--only", PROMPTS)
        for i in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert standin.creates == 12
    assert standin.max_in_flight == 2  # 3 processes × 4 prompts, never more than 2 at once


def test_ctrl_c_cancels_in_flight_keeps_finished_and_exits_130(env, standin, tmp_path):
    environ, base = env
    environ["MAX_CONCURRENT_REQUESTS"] = "1"
    standin.faults = Faults(latency=1.5, wait_cap=0.1)  # a wide window for the signal
    proc = spawn(environ, "generate-all", "0800", "0800_actor", base, "--only", PROMPTS)
    deadline = time.monotonic() + 30
    while standin.creates < 2 and time.monotonic() < deadline:  # first done, second running
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert standin.canceled >= 1, err
    assert standin.creates == 2  # nothing new started
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    assert len(manifest.training_data) == 1  # the one that finished; nothing after it


def test_demo_runs_offline_and_says_where_things_are(tmp_path):
    environ = clean_environ()
    environ["ACTOR_MAKER_SLOT_DIR"] = str(tmp_path / "slots")
    proc = run_cli(environ, "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "not training data" in proc.stderr
    assert "manifest:" in proc.stdout and "demo_manifest.json" in proc.stdout
    manifest = require_manifest(LocalStore(tmp_path / "data" / "store"), "demo")
    assert len(manifest.training_data) >= 38
    assert {e["generation"]["provider"] for e in manifest.training_data} == {"preview"}
    # the job id it prints is a job of the shared records: `jobs list` and `jobs watch` know it
    job_id = proc.stdout.rsplit("· job ", 1)[1].split()[0]

    listed = run_cli(environ, "jobs", "list", cwd=tmp_path, timeout=60)
    assert listed.returncode == 0 and job_id in listed.stdout, listed.stdout
    watched = run_cli(environ, "jobs", "watch", job_id, cwd=tmp_path, timeout=60)
    assert watched.returncode == 0 and "succeeded" in watched.stdout, watched.stdout


def test_secrets_stay_out_of_verbose_output_and_manifests(
    env, standin, tmp_path, moto_server, s3_bucket
):
    environ, base = env
    environ.update(
        ACTOR_MAKER_STORE=f"s3://{s3_bucket}",
        AWS_ENDPOINT_URL=moto_server.endpoint_url,
        AWS_ACCESS_KEY_ID="AKIATESTKEYID000",
        AWS_SECRET_ACCESS_KEY="aws-secret-value-123",
        AWS_DEFAULT_REGION="us-east-1",
    )
    standin.faults = Faults(flag_prompts_containing="charcoal", throttle_first=1, retry_after=0.1)
    earlier = set(standin.predictions)  # the session's stand-in keeps other tests' predictions
    proc = spawn(
        environ, "-vv", "generate-all", "0900", "0900_actor", base, "--only", PROMPTS, "--json"
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # the charcoal prompt was flagged
    text = out + err
    for secret in (TOKEN, "aws-secret-value-123", "X-Amz-Signature", "X-Amz-Credential"):
        assert secret not in text
    # a loopback S3 endpoint cannot be fetched by a hosted model: the bytes went instead
    sent = [p["input"]["input_image"] for i, p in standin.predictions.items() if i not in earlier]
    assert sent and all(url.startswith("data:image/") for url in sent)
    manifest = json.dumps(json.loads(out))
    assert "X-Amz" not in manifest and TOKEN not in manifest

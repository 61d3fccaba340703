"""Shared test helpers (not fixtures): fixture paths and sample images."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from PIL import Image, ImageDraw

from actor_maker.config import Settings

if TYPE_CHECKING:
    from actor_maker.testing.s3server import MotoS3

REPO = Path(__file__).resolve().parent.parent
#: A verbatim copy of ../shared/fixtures/original (test_fixtures_copy pins that it stays so).
ORIGINAL = REPO / "tests" / "fixtures" / "original"
SHARED_ORIGINAL = REPO.parent / "shared" / "fixtures" / "original"
MANIFESTS = ORIGINAL / "manifests"
PROMPT_METADATA = ORIGINAL / "prompt_metadata"

T = TypeVar("T")

#: The region the test S3 stores and buckets live in (moto's default).
S3_REGION = "us-east-1"
#: The Redis database of the tests that keep request limits and image indices there.
REDIS_LIMITS_URL = "redis://127.0.0.1:6379/14"

#: ``actor-maker`` as a real process, the way a test's subprocess starts it.
CLI = (sys.executable, "-m", "actor_maker")


def clean_environ() -> dict[str, str]:
    """This process's environment without any Actor Maker, AWS or Replicate setting and without
    a request limit: what a test's CLI or server process starts from."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACTOR_MAKER_", "AWS_", "REPLICATE_"))
        and k != "MAX_CONCURRENT_REQUESTS"
    }


def cli_environ(tmp_path: Path, **settings: str) -> dict[str, str]:
    """``clean_environ()`` with the store, state and request-slot directories under
    ``tmp_path``, plus ``settings``."""
    environ = clean_environ()
    environ.update(
        ACTOR_MAKER_STORE=str(tmp_path / "store"),
        ACTOR_MAKER_STATE_DIR=str(tmp_path / "state"),
        ACTOR_MAKER_SLOT_DIR=str(tmp_path / "slots"),
        **settings,
    )
    return environ


def s3_environ(moto: MotoS3, bucket: str) -> dict[str, str]:
    """The settings that point a CLI process at ``bucket`` on the moto server."""
    return {
        "ACTOR_MAKER_STORE": f"s3://{bucket}",
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": S3_REGION,
    }


def local_settings(root: Path, **extra: Any) -> Settings:
    """Settings (no .env file) with the local store, state and request slots under ``root``."""
    values: dict[str, Any] = {
        "_env_file": None,
        "store": str(root / "store"),
        "state_dir": root / "state",
        "slot_dir": root / "slots",
        **extra,
    }
    return Settings(**values)


def run_cli(
    environ: dict[str, str], *args: str, timeout: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``actor-maker *args`` run to the end, its output captured as text."""
    return subprocess.run(
        [*CLI, *args], env=environ, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def fixture_manifest(actor_id: str) -> dict:  # type: ignore[type-arg]
    return json.loads((MANIFESTS / f"{actor_id}_manifest.json").read_text())


def copy_fixtures(dest: Path) -> Path:
    shutil.copytree(MANIFESTS, dest)
    return dest


def sample_image(size: tuple[int, int] = (640, 640), fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A busy, non-uniform picture (passes decode and quality checks)."""
    img = Image.new("RGB", size, (40 + seed % 100, 90, 140))
    draw = ImageDraw.Draw(img)
    for i in range(24):
        x, y = (i * 53 + seed * 7) % size[0], (i * 97 + seed * 13) % size[1]
        draw.ellipse((x, y, x + 60, y + 40), fill=((i * 40) % 255, (i * 90) % 255, (i * 20) % 255))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def store_training_image(
    store,  # type: ignore[no-untyped-def]
    actor_id: str,
    actor_name: str,
    index: int,
    data: bytes,
    *,
    metadata: dict[str, str],
    **fields: object,
) -> dict:  # type: ignore[type-arg]
    """Store an image create-only and add its entry, as the pipeline does (for seeding tests)."""
    from actor_maker.images import md5_hex
    from actor_maker.layout import training_key
    from actor_maker.manifest import update_manifest

    key = training_key(actor_name, index, "jpg")
    store.put_if_absent(key, data, content_type="image/jpeg", metadata=metadata)
    entry = {
        "filename": key.rsplit("/", 1)[-1],
        "s3_url": store.public_url(key),
        "key": key,
        "md5_hash": md5_hex(data),
        "size_bytes": len(data),
        "status": "synced",
        **fields,
    }
    update_manifest(store, actor_id, lambda m: m.add_entry(dict(entry)))
    return entry


def found(value: T | None) -> T:
    """``value``, failing the test when it is ``None`` (a lookup that must hit)."""
    assert value is not None, "expected a value, got None"
    return value

"""``actor-maker demo`` end to end in process, on an S3 store (moto)."""

from __future__ import annotations

import pytest

from actor_maker.cli import main
from actor_maker.manifest import read_manifest
from actor_maker.testing.s3server import MotoS3

from .conftest import S3_REGION


def test_demo_on_an_s3_store(
    clean_env: pytest.MonkeyPatch,
    moto_server: MotoS3,
    s3_bucket: str,
    s3_store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 12.12: the demo generated everything, then exited 2 printing its folder."""
    clean_env.setenv("ACTOR_MAKER_STORE", f"s3://{s3_bucket}")
    clean_env.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    clean_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    clean_env.setenv("AWS_DEFAULT_REGION", S3_REGION)
    with pytest.raises(SystemExit) as info:
        main(["demo"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    prefix = "system_actors/training_data/demo_astronaut_female/"
    assert f"images:   {moto_server.endpoint_url}/{s3_bucket}/{prefix}" in out
    assert f"{s3_bucket}/system_actors/manifests/demo_manifest.json" in out
    manifest = read_manifest(s3_store, "demo")
    assert manifest is not None and len(manifest.training_data) == 49
    assert len(list(s3_store.list(prefix))) >= 49

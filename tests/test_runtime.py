"""The composition root: one store, one set of records, bounded pipelines (issue 11.6)."""

from __future__ import annotations

import pytest

from actor_maker.errors import InputError
from actor_maker.runtime import MAX_PIPELINES, Runtime

from .helpers import local_settings


def runtime(tmp_path, **extra):
    settings = local_settings(
        tmp_path,
        replicate_api_token="r8_test_secret_token_value",
        provider="replicate",
        **extra,
    )
    return Runtime(settings)


def test_unknown_models_are_refused_before_anything_is_built(tmp_path):
    rt = runtime(tmp_path)
    for i in range(200):
        with pytest.raises(InputError):
            rt.pipeline(f"someone/model-{i}")
        with pytest.raises(InputError):
            rt.pipeline(f"../Not A Model {i}")
    assert len(rt._pipelines) == 0


def test_kept_pipelines_are_bounded(tmp_path):
    prices = {f"owner/model-{i}": 0.01 for i in range(3 * MAX_PIPELINES)}
    rt = runtime(tmp_path, prices=prices)
    for model in prices:
        rt.pipeline(model)
    assert len(rt._pipelines) == MAX_PIPELINES
    assert rt.pipeline("owner/model-0") is rt.pipeline("owner/model-0")


def test_one_store_and_one_set_of_records(tmp_path):
    rt = runtime(tmp_path)
    assert rt.store is rt.store and rt.records is rt.records
    assert rt.pipeline().store is rt.store

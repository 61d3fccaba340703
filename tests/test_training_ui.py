"""The actor page's "Train LoRA" panel in Debian's Chromium against a real server with the
preview trainer: estimate, start, live progress, samples beside the base image, score, mark
good."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actor_maker.manifest import read_manifest
from actor_maker.store.local import LocalStore

from .apiserver import serve_in_thread
from .helpers import local_settings
from .test_ui import CHROMIUM, shot
from .training_helpers import ACTOR, seed_actor

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, LocalStore]]:
    store = LocalStore(tmp_path / "store")
    seed_actor(store)
    settings = local_settings(
        tmp_path,
        trainer="preview",
        preview_training_s=3.0,
        poll_interval_s=0.1,
        api_token="ui-secret-token-0123",
    )
    with serve_in_thread(settings) as url:
        yield url, store


def test_train_panel_estimate_start_progress_samples_mark_good(
    server: tuple[str, LocalStore],
) -> None:
    url, store = server
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=url)
        page = context.new_page()
        errors: list[Any] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/")
        page.get_by_label("API token").fill("ui-secret-token-0123")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_label("API token")).to_be_hidden()  # signed in (the cookie is set)
        page.goto(f"/actors/{ACTOR}")
        panel = page.get_by_test_id("train-panel")
        panel.get_by_role("button", name="Estimate").click()
        expect(page.get_by_test_id("train-plan")).to_contain_text("13 images")
        expect(page.get_by_test_id("train-plan")).to_contain_text("1000 steps")
        panel.get_by_role("button", name="Start training").click()
        page.wait_for_function(
            "() => { const b = document.querySelector('[data-testid=train-progress]');"
            " return b && b.value > 0 }",  # moving (a loaded machine may see it only at the end)
            timeout=30_000,
        )
        expect(page.get_by_test_id("model-status-V1")).to_have_text("trained", timeout=60_000)
        expect(page.get_by_test_id("model-score-V1")).to_contain_text("6/6 samples")
        model = page.get_by_test_id("model-V1")
        expect(model.locator("img")).to_have_count(7)  # the base image and 6 samples
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=model-V1] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        shot(page, "ui-train-lora")
        page.get_by_test_id("mark-good-V1").click()
        expect(page.get_by_test_id("model-status-V1")).to_have_text("good")
        context.close()
        browser.close()
    assert errors == []
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None and manifest.data["lora_model"]["version"] == "V1"

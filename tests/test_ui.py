"""The web UI end to end in Debian's Chromium (Playwright, no browser download), against a
real server with the Replicate stand-in. Screenshots of the main pages are written to
``test-artifacts/`` (kept by CI as test artifacts)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from actor_maker.config import Settings
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

from .apiserver import serve_in_thread
from .helpers import REPO, found, local_settings

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ACTOR_MAKER_TEST_ARTIFACTS", REPO / "test-artifacts"))
PHOTO = REPO / "tests" / "fixtures" / "photos" / "astronaut.jpg"
TOKEN = "r8_ui_token"

if not Path(CHROMIUM).exists():  # .ci/run installs it; a developer machine may not have it
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)


@pytest.fixture(scope="module")
def standin():
    with ReplicateStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, standin):
    root = tmp_path_factory.mktemp("ui")
    settings = local_settings(
        root,
        provider="replicate",
        replicate_api_token=TOKEN,
        replicate_base_url=standin.base_url,
        poll_interval_s=0.05,
        api_token="ui-secret-token-0123",
        max_concurrent_requests=8,
    )
    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    # the pages' Content-Security-Policy must not block anything they use (#11.9)
    tab.on(
        "console",
        lambda m: "Content Security Policy" in m.text and errors.append(f"CSP: {m.text}"),
    )
    tab.on(
        "request",
        lambda r: (
            r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            or errors.append(f"request off loopback: {r.url}")
        ),
    )
    yield tab
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def sign_in(page) -> None:
    page.goto("/")
    page.get_by_label("API token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not the API token")
    page.get_by_label("API token").fill("ui-secret-token-0123")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin")).to_be_hidden()  # the cookie is set before we navigate


def create_actor(page, actor_id: str, name: str) -> None:
    page.goto("/")
    page.get_by_role("button", name="New actor").click()
    page.get_by_label("ID", exact=True).fill(actor_id)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Sex", exact=True).select_option("female")
    page.get_by_label("Description").fill("short brown hair")
    page.get_by_label("Base image file").set_input_files(str(PHOTO))
    page.get_by_role("button", name="Create actor").click()
    page.wait_for_url(f"**/actors/{actor_id}")


def wait_state(page, state: str, timeout: int = 60_000) -> None:
    expect(page.locator("#job-state")).to_have_text(state, timeout=timeout)


def test_create_generate_watch_and_curate(page, standin):
    standin.faults = Faults(latency=0.3)
    sign_in(page)
    create_actor(page, "0101", "0101_ui_actor")
    expect(page.get_by_test_id("plan")).to_contain_text("missing")
    page.get_by_role("button", name="Generate all missing prompts").click()
    bar = page.get_by_test_id("job-progress")
    expect(bar).to_be_visible()
    # the grid fills while the job runs, without a reload
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=job-progress]');"
        " return b && b.value > 0 && b.value < b.max }",
        timeout=30_000,
    )
    page.wait_for_function(  # each image is fetched after its event: wait for the first
        "() => { const n = document.querySelectorAll('[data-testid=training-image]').length;"
        " return n > 0 && n < 49 }",
        timeout=30_000,
    )
    # mid-run: the plan counts down as images land (not "49 prompts missing" until the end),
    # and the items not started yet are "waiting", apart from the running ones
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=job-progress]');"
        " const plan = Number(document.querySelector('[data-testid=plan]').dataset.count);"
        " const text = document.getElementById('job-counts').textContent;"
        " return b.value < b.max && plan < 49 && /\\d+ running · \\d+ waiting$/.test(text) }",
        timeout=30_000,
    )
    counts = page.locator("#job-counts").inner_text()
    numbers = [int(n) for n in re.findall(r"\d+", counts)]
    assert sum(numbers) == 49, counts  # made + failed + running + waiting
    wait_state(page, "succeeded")
    assert bar.get_attribute("aria-valuenow") == bar.get_attribute("aria-valuemax") == "49"
    expect(page.get_by_test_id("training-image")).to_have_count(49)
    shot(page, "ui-actor")

    first = page.get_by_test_id("training-image").first
    filename = first.get_attribute("data-filename")
    first.get_by_role("button").click()
    lightbox = page.get_by_test_id("lightbox")
    expect(lightbox).to_be_visible()
    expect(page.get_by_test_id("lightbox-prompt")).to_contain_text("woman")
    lightbox.get_by_role("button", name="Mark good").click()
    expect(lightbox.get_by_role("button", name="Mark good")).to_have_attribute(
        "aria-pressed", "true"
    )
    image = page.locator(f'[data-testid=training-image][data-filename="{filename}"]')
    lightbox.get_by_role("button", name="Reject").click()
    expect(image).to_have_attribute("data-verdict", "rejected")
    lightbox.get_by_role("button", name="Approve").click()
    expect(image).to_have_attribute("data-verdict", "accepted")
    shot(page, "ui-lightbox")

    lightbox.get_by_role("button", name="Delete").click()
    expect(lightbox).to_be_hidden()
    expect(image).to_have_count(0)
    page.get_by_role("button", name="Undo").click()
    expect(image).to_have_count(1)

    image.get_by_role("button").click()
    page.get_by_test_id("lightbox").get_by_role("button", name="Delete").click()
    expect(image).to_have_count(0)
    page.goto("/trash")
    expect(page.get_by_test_id("trash-entry").first).to_be_visible()
    shot(page, "ui-trash")
    page.get_by_role("button", name="Restore").first.click()
    expect(page.get_by_test_id("status")).to_contain_text("Restored")
    page.goto("/actors/0101")
    expect(page.locator(f'[data-testid=training-image][data-filename="{filename}"]')).to_have_count(
        1
    )

    page.goto("/jobs")
    expect(page.get_by_test_id("job-row").first).to_be_visible()
    shot(page, "ui-jobs")
    page.goto("/")
    expect(page.get_by_test_id("actor-card")).to_have_count(1)
    shot(page, "ui-actors")


def test_failure_shown_with_reason_retried_and_a_second_tab_follows(page, standin, browser, server):
    sign_in(page)
    create_actor(page, "0102", "0102_ui_actor")
    standin.faults = Faults(latency=0.6, flag_prompts_containing="Charcoal")
    page.get_by_text("Choose prompts").click()
    for prompt_id in ("photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"):
        page.locator(f'#prompt-list input[value="{prompt_id}"]').check()
    page.get_by_role("button", name="Generate selected").click()
    expect(page.get_by_test_id("job-progress")).to_be_visible()

    # a second tab (same browser session) shows the same running job
    second = page.context.new_page()
    second.goto("/actors/0102")
    expect(second.get_by_test_id("job-progress")).to_be_visible()
    assert second.locator("#job-title").inner_text() == page.locator("#job-title").inner_text()

    wait_state(page, "partially_failed")
    failed = page.locator('[data-testid=item-error][data-key="bw-charcoal-portrait"]')
    expect(failed).to_contain_text("E005")
    # the stand-in draws shapes, not faces: the identity check's rejections show too, with why
    expect(
        page.get_by_test_id("item-error").filter(has_text="rejected: no face found").first
    ).to_be_visible()
    shot(page, "ui-failed-item")
    standin.faults = Faults()
    page.get_by_role("button", name="Retry failed").click()
    wait_state(page, "succeeded")
    expect(page.get_by_test_id("training-image")).to_have_count(3)
    second.close()


def test_api_errors_are_shown_in_plain_words(page):
    sign_in(page)
    create_actor(page, "0103", "0103_ui_actor")
    page.evaluate("document.getElementById('custom-prompt').removeAttribute('maxlength')")
    page.get_by_label("Custom prompt").fill("z" * 2100)
    page.get_by_role("button", name="Generate custom").click()
    expect(page.get_by_role("alert")).to_contain_text("2000")


def test_s3_mode_shows_images_through_short_lived_urls(browser, standin, tmp_path, s3_store):
    """In S3 mode the grid's images come from presigned URLs (moto on loopback here)."""
    standin.faults = Faults()
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path / "state",
        slot_dir=tmp_path / "slots",
        provider="replicate",
        replicate_api_token=TOKEN,
        replicate_base_url=standin.base_url,
        poll_interval_s=0.05,
    )
    with serve_in_thread(settings, store=s3_store) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=url)
        page = context.new_page()
        create_actor(page, "0104", "0104_ui_actor")
        page.get_by_text("Choose prompts").click()
        page.locator('#prompt-list input[value="photo-rain-platform"]').check()
        page.get_by_role("button", name="Generate selected").click()
        wait_state(page, "succeeded")
        thumbnail = page.get_by_test_id("training-image").first.locator("img")
        expect(thumbnail).to_be_visible()
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=training-image] img')]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            timeout=15_000,
        )
        context.close()


def test_captions_trigger_word_and_export(page, standin, tmp_path):
    import zipfile

    standin.faults = Faults()
    sign_in(page)
    create_actor(page, "0105", "0105_ui_actor")
    panel = page.get_by_test_id("captions-panel")
    expect(panel.get_by_label("Trigger word")).to_have_value("amk0105")
    page.get_by_text("Choose prompts").click()
    for prompt_id in ("photo-rain-platform", "color-oil-portrait"):
        page.locator(f'#prompt-list input[value="{prompt_id}"]').check()
    page.get_by_role("button", name="Generate selected").click()
    wait_state(page, "succeeded")
    tiles = page.get_by_test_id("training-image")
    expect(tiles).to_have_count(2)
    filenames = [tiles.nth(i).get_attribute("data-filename") for i in range(2)]

    # one caption by hand in the large view; a person approves both images for the export
    lightbox = page.get_by_test_id("lightbox")
    tiles.first.get_by_role("button").click()
    caption = page.get_by_test_id("lightbox-caption")
    lightbox.get_by_role("button", name="Approve").click()
    expect(tiles.first).to_have_attribute("data-verdict", "accepted")
    lightbox.get_by_label("Caption").fill("amk0105 a woman waiting on a rainy platform")
    lightbox.get_by_role("button", name="Save caption").click()
    expect(lightbox).to_contain_text("Saved.")
    shot(page, "ui-caption-lightbox")
    lightbox.get_by_role("button", name="Next image").click()
    expect(page.locator("#lb-title")).to_have_text(filenames[1])
    lightbox.get_by_role("button", name="Approve").click()
    expect(tiles.nth(1)).to_have_attribute("data-verdict", "accepted")
    lightbox.get_by_role("button", name="Close").click()

    page.reload()
    expect(tiles).to_have_count(2)
    tiles.first.get_by_role("button").click()
    expect(caption).to_have_value("amk0105 a woman waiting on a rainy platform")
    lightbox.get_by_role("button", name="Close").click()

    # generate fills missing captions only (new images get one already): the hand-written
    # caption stays
    status = page.get_by_test_id("status")
    panel.get_by_role("button", name="Generate captions").click()
    expect(status).to_contain_text(re.compile(r"^\d+ captions? updated"))
    tiles.first.get_by_role("button").click()
    expect(caption).to_have_value("amk0105 a woman waiting on a rainy platform")
    lightbox.get_by_role("button", name="Next image").click()
    expect(caption).to_have_value(re.compile(r"^amk0105 \S"))
    lightbox.get_by_role("button", name="Close").click()

    # bulk find / replace
    panel.get_by_label("Find").fill("woman")
    panel.get_by_label("Replace with").fill("person")
    panel.get_by_role("button", name="Replace in captions").click()
    expect(status).to_contain_text(
        re.compile(r"Replaced .woman. with .person.: \d+ captions? updated")
    )
    changed = int(found(re.search(r"(\d+) captions? updated", status.inner_text())).group(1))
    assert changed > 0
    tiles.first.get_by_role("button").click()
    expect(caption).to_have_value("amk0105 a person waiting on a rainy platform")
    lightbox.get_by_role("button", name="Close").click()

    # a new trigger word: shown after a reload, and the captions that opened with the old one
    panel.get_by_label("Trigger word").fill("zqx0105")
    panel.get_by_role("button", name="Save trigger word").click()
    expect(status).to_contain_text("zqx0105")
    page.reload()
    expect(panel.get_by_label("Trigger word")).to_have_value("zqx0105")
    tiles.first.get_by_role("button").click()
    expect(caption).to_have_value("zqx0105 a person waiting on a rainy platform")
    lightbox.get_by_role("button", name="Close").click()
    page.set_viewport_size({"width": 1400, "height": 2300})  # the panel is below the fold
    shot(page, "ui-captions")

    # regenerate all: the hand-written caption is rewritten from the prompt
    panel.get_by_role("button", name="Regenerate all captions").click()
    expect(status).to_contain_text(re.compile(r"^[12] captions? updated"))
    tiles.first.get_by_role("button").click()
    expect(caption).to_have_value(re.compile(r"^zqx0105 \S"))
    expect(caption).not_to_have_value("zqx0105 a person waiting on a rainy platform")
    lightbox.get_by_role("button", name="Close").click()

    # export: a replicate zip, images and same-stem captions at its root
    panel.get_by_label("Export format").select_option("replicate-zip")
    with page.expect_download() as info:
        panel.get_by_role("button", name="Export").click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    expect(page.get_by_test_id("export-status")).to_contain_text("zqx0105")
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        assert all("/" not in n for n in names), names
        txts = sorted(n for n in names if n.endswith(".txt"))
        pictures = sorted(
            n for n in names if n.rsplit(".", 1)[-1] in ("jpg", "jpeg", "png", "webp")
        )
        assert len(pictures) == 2 and len(txts) == 2, names
        assert [t.rsplit(".", 1)[0] for t in txts] == [p.rsplit(".", 1)[0] for p in pictures]
        for name in txts:
            assert archive.read(name).decode().startswith("zqx0105"), name
    shot(page, "ui-captions-exported")


#: The places where an element's rendered text moves to a new line, as "before|after"
#: pairs of characters, where that happens inside a part of a name (not after _ - . / or a
#: space); and the number of lines.
MID_WORD_BREAKS = """(node) => {
  const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
  const bad = [];
  let top = null, prev = "", lines = 0;
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    for (let i = 0; i < t.data.length; i++) {
      const range = document.createRange();
      range.setStart(t, i);
      range.setEnd(t, i + 1);
      const rect = range.getBoundingClientRect();
      if (!rect.width && !rect.height) continue;
      if (top === null || rect.top > top + 2) {
        lines += 1;
        if (top !== null && !/[_\\-./\\s]/.test(prev)) bad.push(prev + "|" + t.data[i]);
      }
      top = rect.top;
      prev = t.data[i];
    }
  }
  return { bad, lines };
}"""

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def test_phone_width_pages_fit_and_names_break_between_words(browser, server, standin):
    standin.faults = Faults()
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=server)
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:")) or outside.append(r.url),
    )
    sign_in(page)
    name = "0107_a_rather_long_actor_name_for_phone_screens"
    create_actor(page, "0107", name)
    page.get_by_text("Choose prompts").click()
    for prompt_id in ("photo-rain-platform", "color-oil-portrait"):
        page.locator(f'#prompt-list input[value="{prompt_id}"]').check()
    page.get_by_role("button", name="Generate selected").click()
    wait_state(page, "succeeded")
    expect(page.get_by_test_id("training-image")).to_have_count(2)
    assert page.evaluate(NO_SIDEWAYS_SCROLL), page.evaluate(
        "[document.documentElement.scrollWidth, innerWidth]"
    )
    title = page.locator("#actor-title").evaluate(MID_WORD_BREAKS)
    assert title["lines"] > 1 and title["bad"] == [], title  # it wraps, between parts only
    for fname in page.locator(".fname").all():
        assert fname.evaluate(MID_WORD_BREAKS)["bad"] == [], fname.inner_text()
    shot(page, "ui-phone-actor")

    page.goto("/jobs")
    row = page.get_by_test_id("job-row").first
    expect(row).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    for label in ("Actor", "State", "Done", "Failed", "Total"):
        cell = row.locator(f'td[data-label="{label}"]')
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
    assert row.locator('td[data-label="Actor"]').evaluate(MID_WORD_BREAKS)["bad"] == []
    shot(page, "ui-phone-jobs")

    page.goto("/")
    card = page.get_by_test_id("actor-card").filter(has_text="0107")
    expect(card).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    assert card.locator("h2").evaluate(MID_WORD_BREAKS)["bad"] == []
    context.close()
    assert outside == []


def test_the_pager_pages_through_actors_and_jobs(browser, tmp_path):
    """The actors and jobs pages share one pager (templates/pager.html, ``AM.pager``)."""
    from actor_maker import actors
    from actor_maker.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    photo = PHOTO.read_bytes()
    for i in range(25):  # the actors page shows 24 a page
        actor_id = f"{i + 1:04d}"
        actors.create_actor(
            store,
            actor_id=actor_id,
            actor_name=f"{actor_id}_pager",
            base_image=photo,
            max_bytes=25 << 20,
            max_pixels=50_000_000,
        )
    settings = Settings(_env_file=None, store=str(tmp_path / "store"), state_dir=tmp_path / "state")
    with serve_in_thread(settings) as url:
        context = browser.new_context(base_url=url)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto("/")
        info, prev, next_ = (
            tab.locator("#page-info"),
            tab.locator("#page-prev"),
            tab.locator("#page-next"),
        )
        expect(info).to_have_text("Page 1 of 2")
        expect(tab.get_by_test_id("actor-card")).to_have_count(24)
        expect(prev).to_be_disabled()
        next_.click()
        expect(info).to_have_text("Page 2 of 2")
        expect(tab.get_by_test_id("actor-card")).to_have_count(1)
        expect(next_).to_be_disabled()
        prev.click()
        expect(info).to_have_text("Page 1 of 2")
        expect(tab.get_by_test_id("actor-card")).to_have_count(24)
        tab.goto("/jobs")
        expect(info).to_have_text("Page 1 of 1 · 0 jobs")
        expect(prev).to_be_disabled()
        expect(next_).to_be_disabled()
        context.close()
    assert errors == [], errors

"""CSRF and DNS rebinding, attacked from real Chromium (#11.9).

A page served by another loopback port (a second, tiny HTTP server: another "site" as far
as the server is concerned, but the same site for cookies) tries what a malicious page
would: toggle a flag, start a 24-image job, create an actor, with and without a signed-in
session. A name that resolves to 127.0.0.1 (Chromium's ``--host-resolver-rules``) stands
in for a rebinding DNS name. Nothing may change, and nothing may be paid for.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest

from actor_maker.store.local import LocalStore

from .apiserver import serve_in_thread, standin_settings
from .conftest import STANDIN_TOKEN
from .helpers import sample_image
from .httpserver import LoopbackServer

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
API_TOKEN = "browser-guard-token-0123"
REBIND = "rebind.example"

if not Path(CHROMIUM).exists():
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)

ATTACKS = """
async ({server, actorId, photo}) => {
  const init = {method: "POST", mode: "no-cors", credentials: "include"};
  const tried = async (name, url, extra) => {
    try { await fetch(url, {...init, ...extra}); return name; }
    catch (err) { return name + ": " + err; }
  };
  const bytes = Uint8Array.from(atob(photo), (c) => c.charCodeAt(0));
  const form = new FormData();
  form.append("actor_id", "0666");
  form.append("actor_name", "0666_planted");
  form.append("base_image", new Blob([bytes], {type: "image/jpeg"}), "x.jpg");
  return [
    await tried("flag", `${server}/api/actors/${actorId}/toggle-good`, {}),
    // "balance" with no body: a job of 24 images (the default size)
    await tried("job", `${server}/api/actors/${actorId}/balance`, {}),
    await tried("actor", `${server}/api/actors`, {body: form}),
  ];
}
"""


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--host-resolver-rules=MAP {REBIND} 127.0.0.1",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def attacker():
    """The other site: a blank page on another loopback port."""
    server = LoopbackServer()

    def blank(handler) -> None:
        body = b"<!doctype html><title>cute cats</title><p>nothing to see</p>"
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server.routes["/"] = blank
    yield server
    server.close()


def make_actor(url: str, headers: dict[str, str]) -> None:
    response = httpx.post(
        f"{url}/api/actors",
        data={"actor_id": "0600", "actor_name": "0600_victim"},
        files={"base_image": ("b.jpg", sample_image(), "image/jpeg")},
        headers=headers,
    )
    assert response.status_code == 201, response.text


def snapshot(url: str, headers: dict[str, str]) -> tuple[object, ...]:
    def get(path: str) -> object:
        response = httpx.get(url + path, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    return get("/api/actors/0600"), get("/api/actors"), get("/api/jobs")


@pytest.mark.parametrize("signed_in", [False, True], ids=["no-token", "signed-in"])
def test_another_site_cannot_change_anything(tmp_path, standin, browser, attacker, signed_in):
    extra = {"api_token": API_TOKEN} if signed_in else {}
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN, **extra)
    headers = {"Authorization": f"Bearer {API_TOKEN}"} if signed_in else {}
    store = LocalStore(tmp_path / "store")
    with serve_in_thread(settings, store=store) as url:
        make_actor(url, headers)
        before = snapshot(url, headers)
        context = browser.new_context()
        page = context.new_page()
        if signed_in:  # the user signed in to the UI earlier: the cookie sits in the browser
            page.goto(url + "/")
            status = page.evaluate(
                "async (token) => (await fetch('/api/session', {method: 'POST',"
                " headers: {'content-type': 'application/json'},"
                " body: JSON.stringify({token})})).status",
                API_TOKEN,
            )
            assert status == 204
        page.goto(attacker.url("/"))
        tried = page.evaluate(
            ATTACKS,
            {
                "server": url,
                "actorId": "0600",
                "photo": base64.b64encode(sample_image()).decode(),
            },
        )
        assert tried == ["flag", "job", "actor"]  # each request went out
        time.sleep(0.5)  # what a started job would have asked for by now
        after = snapshot(url, headers)
        harm = {
            "flag toggled": after[0].get("good") != before[0].get("good"),  # type: ignore[attr-defined]
            "jobs started": len(after[2]) - len(before[2]),  # type: ignore[arg-type]
            "predictions paid": standin.create_attempts,
            "actor planted": httpx.get(f"{url}/api/actors/0666", headers=headers).status_code
            != 404,
        }
        assert harm == {
            "flag toggled": False,
            "jobs started": 0,
            "predictions paid": 0,
            "actor planted": False,
        }
        assert after == before

        # the server's own pages still can (same origin, same browser, same cookie)
        page.goto(url + "/")
        own = page.evaluate(
            "async () => (await fetch('/api/actors/0600/toggle-good', {method: 'POST'})).status"
        )
        assert own == 200
        assert snapshot(url, headers)[0] != before[0]
        context.close()


def test_a_rebound_name_reaches_nothing(tmp_path, standin, browser):
    """DNS rebinding: the attacker's name now resolves to 127.0.0.1, so its page is
    same-origin with the server; only the Host check stands in the way."""
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN)
    with serve_in_thread(settings, store=LocalStore(tmp_path / "store")) as url:
        make_actor(url, {})
        before = snapshot(url, {})
        port = url.rsplit(":", 1)[1]
        context = browser.new_context()
        page = context.new_page()
        response = page.goto(f"http://{REBIND}:{port}/")
        assert response is not None and response.status == 421
        statuses = page.evaluate(
            """async () => [
              (await fetch('/api/actors')).status,
              (await fetch('/api/actors/0600/toggle-good', {method: 'POST'})).status,
            ]"""
        )
        assert statuses == [421, 421]
        assert snapshot(url, {}) == before
        context.close()


def test_pages_cannot_be_framed_and_keep_working_under_their_policy(tmp_path, standin, browser):
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN)
    with serve_in_thread(settings, store=LocalStore(tmp_path / "store")) as url:
        make_actor(url, {})
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        for path in ("/", "/actors/0600", "/jobs", "/trash"):
            response = page.goto(url + path)
            assert response is not None
            page.wait_for_load_state("networkidle")
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            policy = response.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        # scripts ran, the API answered and the images drew under the policy
        page.goto(url + "/")
        page.wait_for_selector("[data-testid=actor-card]")
        page.goto(url + "/actors/0600")
        page.wait_for_function(
            "() => { const i = document.getElementById('base-img');"
            " return i && i.complete && i.naturalWidth > 1 }",
            timeout=15_000,
        )
        # a page of another origin that frames the UI gets nothing
        page.set_content(f'<iframe id="f" src="{url}/"></iframe>')
        frame = page.frame_locator("#f")
        page.wait_for_timeout(500)
        assert frame.locator("header.topbar").count() == 0
        blocked = [p for p in problems if "frame-ancestors" in p or "X-Frame-Options" in p]
        others = [p for p in problems if p not in blocked]
        assert others == [], others
        context.close()


def test_host_header_of_another_name_is_refused(tmp_path, standin):
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN)
    with serve_in_thread(settings, store=LocalStore(tmp_path / "store")) as url:
        port = url.rsplit(":", 1)[1]
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            response = httpx.get(f"{url}/api/actors", headers={"Host": host})
            assert response.status_code == 421, host
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == 421
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
            assert httpx.get(f"{url}/api/actors", headers={"Host": host}).status_code == 200


def test_allowed_hosts_setting_adds_names(tmp_path, standin):
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN, allowed_hosts=["studio.example"])
    with serve_in_thread(settings, store=LocalStore(tmp_path / "store")) as url:
        assert httpx.get(f"{url}/healthz", headers={"Host": "studio.example"}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers={"Host": "other.example"}).status_code == 421


def test_origin_rules_for_state_changes(tmp_path, standin):
    settings = standin_settings(
        tmp_path, standin, STANDIN_TOKEN, cors_origins=["https://studio.example"]
    )
    with serve_in_thread(settings, store=LocalStore(tmp_path / "store")) as url:
        make_actor(url, {})
        toggle = f"{url}/api/actors/0600/toggle-good"
        port = url.rsplit(":", 1)[1]
        refused = [
            {"Origin": f"http://127.0.0.1:{int(port) + 1}"},
            {"Origin": "null"},
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site"},
        ]
        for headers in refused:
            response = httpx.post(toggle, headers=headers)
            assert response.status_code == 403, headers
            assert response.headers["content-type"] == "application/problem+json"
            assert "ACTOR_MAKER_CORS_ORIGINS" in response.json()["detail"]
        allowed = [
            {},  # curl, the CLI, another server
            {"Origin": url, "Sec-Fetch-Site": "same-origin"},
            {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
            {"Origin": "https://studio.example"},  # listed in the CORS setting
            {"Sec-Fetch-Site": "none"},
        ]
        for headers in allowed:
            assert httpx.post(toggle, headers=headers).status_code == 200, headers
        # reading stays open to any origin's simple GETs (CORS keeps the answer from them)
        assert httpx.get(f"{url}/api/actors", headers={"Origin": "https://x"}).status_code == 200


def test_listening_on_every_interface_accepts_ip_addresses_but_not_names(tmp_path, standin):
    """``serve --host 0.0.0.0``: people reach it by the machine's address; a rebinding page
    always sends its own name."""
    settings = standin_settings(tmp_path, standin, STANDIN_TOKEN)
    store = LocalStore(tmp_path / "store")
    with serve_in_thread(settings, store=store, bind_host="0.0.0.0") as url:
        for host in ("192.168.1.5:8000", "[fe80::1]:8000", "10.0.0.7"):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "192.168.1.5.nip.io"):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}).status_code == 421, host
    with serve_in_thread(settings, store=store, bind_host="192.168.1.5") as url:
        assert httpx.get(f"{url}/healthz", headers={"Host": "192.168.1.5:80"}).status_code == 200
        assert httpx.get(f"{url}/healthz", headers={"Host": "10.0.0.7"}).status_code == 421

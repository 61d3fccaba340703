"""API tokens and browser sessions over real HTTP: weak tokens refused at start-up, the
cookie's own HKDF key, revoking every session, the sign-in rate limit (#11.10)."""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import pytest
from itsdangerous import BadSignature, URLSafeTimedSerializer

from actor_maker.api.sessions import SALT_KEY, derive_key, load_salt, rotate_salt
from actor_maker.config import Settings
from actor_maker.store.local import LocalStore

from .apiserver import free_port, serve_in_thread, standin_settings
from .conftest import STANDIN_TOKEN
from .helpers import clean_environ, run_cli

API_TOKEN = "a-long-enough-api-token-0123"


def settings_for(tmp_path, standin, **extra) -> Settings:
    values = {"store": str(tmp_path / "store"), "api_token": API_TOKEN, **extra}
    return standin_settings(tmp_path, standin, STANDIN_TOKEN, **values)


def serve_cli(tmp_path, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = clean_environ()
    env.update(
        ACTOR_MAKER_STORE=str(tmp_path / "store"),
        ACTOR_MAKER_STATE_DIR=str(tmp_path / "state"),
        ACTOR_MAKER_API_TOKEN=token,
    )
    return run_cli(env, *args, cwd=tmp_path, timeout=30)


def sign_in(client: httpx.Client) -> str:
    response = client.post("/api/session", json={"token": API_TOKEN})
    assert response.status_code == 204
    return client.cookies["actor_maker_session"]


@pytest.mark.parametrize("token", ["short-token", "x" * 15, " 0123456789abcd "])
def test_a_short_token_is_refused_at_start_up(tmp_path, token):
    proc = serve_cli(tmp_path, "serve", "--port", str(free_port()), token=token)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 16" in lines[0], proc.stderr
    assert token.strip() not in proc.stderr  # the secret is not echoed
    assert not (tmp_path / "store").exists()  # refused before anything was written


@pytest.mark.parametrize("token", ["", "   ", "\t\n"])
def test_a_blank_token_counts_as_unset(tmp_path, token):
    assert Settings(_env_file=None, api_token=token).api_token is None
    proc = serve_cli(
        tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()), token=token
    )
    assert proc.returncode == 2 and "ACTOR_MAKER_API_TOKEN" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_cookie_is_signed_with_a_key_of_its_own(tmp_path, standin):
    store = LocalStore(tmp_path / "store")
    with (
        serve_in_thread(settings_for(tmp_path, standin), store=store) as url,
        httpx.Client(base_url=url) as browser,
    ):
        cookie = sign_in(browser)
        assert browser.get("/api/actors").status_code == 200
    assert API_TOKEN not in cookie
    salt = store.get(SALT_KEY).data
    assert len(salt) >= 32
    # only the token and the store's salt together verify it...
    URLSafeTimedSerializer(derive_key(API_TOKEN, salt), salt="actor-maker-session").loads(cookie)
    # ...the token alone (the old scheme, or HKDF without the salt) does not: a stolen
    # cookie cannot be used to test token guesses offline
    for key in (API_TOKEN.encode(), derive_key(API_TOKEN, b""), derive_key(API_TOKEN, b"\0" * 32)):
        with pytest.raises(BadSignature):
            URLSafeTimedSerializer(key, salt="actor-maker-session").loads(cookie)


def test_revoking_ends_every_session_but_not_the_token(tmp_path, standin):
    store = LocalStore(tmp_path / "store")
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    with (
        serve_in_thread(settings_for(tmp_path, standin), store=store) as url,
        httpx.Client(base_url=url) as first,
        httpx.Client(base_url=url) as second,
    ):
        old = sign_in(first)
        sign_in(second)
        assert first.get("/api/actors").status_code == 200
        assert httpx.post(f"{url}/api/sessions/revoke").status_code == 401  # needs auth
        assert httpx.post(f"{url}/api/sessions/revoke", headers=bearer).status_code == 204
        assert first.get("/api/actors").status_code == 401
        assert second.get("/api/actors").status_code == 401
        assert httpx.get(f"{url}/api/actors", headers=bearer).status_code == 200
        fresh = sign_in(first)
        assert fresh != old and first.get("/api/actors").status_code == 200

        # the CLI rotates the salt in the store: the running server notices within seconds
        proc = serve_cli(tmp_path, "sessions", "revoke", token=API_TOKEN)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 15
        while first.get("/api/actors").status_code == 200:
            assert time.monotonic() < deadline, "the revoked cookie still works"
            time.sleep(0.2)
        first.cookies.clear()
        first.cookies.set("actor_maker_session", old)
        assert first.get("/api/actors").status_code == 401


def test_wrong_tokens_are_rate_limited_per_address(tmp_path, standin):
    with serve_in_thread(settings_for(tmp_path, standin)) as url:
        with httpx.Client(base_url=url) as attacker:
            for attempt in range(10):
                response = attacker.post("/api/session", json={"token": f"guess-{attempt}"})
                assert response.status_code == 401
            limited = attacker.post("/api/session", json={"token": API_TOKEN})
            assert limited.status_code == 429  # even the right token: no oracle
            assert limited.headers["content-type"] == "application/problem+json"
            assert 1 <= int(limited.headers["retry-after"]) <= 61
            assert "actor_maker_session" not in attacker.cookies
            bearer = attacker.get("/api/actors", headers={"Authorization": f"Bearer {API_TOKEN}"})
            assert bearer.status_code == 429 and "retry-after" in bearer.headers
        # another address is not locked out (127.0.0.2 is loopback too)
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, transport=transport) as other:
            sign_in(other)
            assert other.get("/api/actors").status_code == 200


def test_wrong_bearer_tokens_count_towards_the_limit(tmp_path, standin):
    with serve_in_thread(settings_for(tmp_path, standin)) as url:
        for attempt in range(10):
            wrong = {"Authorization": f"Bearer guess-{attempt}"}
            assert httpx.get(f"{url}/api/actors", headers=wrong).status_code == 401
        assert httpx.post(f"{url}/api/session", json={"token": API_TOKEN}).status_code == 429


def test_the_salt_is_created_once_and_rotated(store):
    found: list[bytes] = []
    threads = [threading.Thread(target=lambda: found.append(load_salt(store))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1
    rotate_salt(store)
    assert load_salt(store) != found[0]

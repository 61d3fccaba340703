"""Settings: one validated object, read once at the edge and passed in.

Names follow the environment the old system used (``MAX_CONCURRENT_REQUESTS``,
the standard AWS and Replicate variables); everything else is
``ACTOR_MAKER_*``. A ``.env`` file in the working directory is read too.
Every field is documented in docs/configuration.md (a test keeps them in step).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from actor_maker.errors import ConfigError

#: Shorter API tokens are refused when a server starts.
MIN_API_TOKEN_LENGTH = 16

DEFAULT_MODEL = "black-forest-labs/flux-kontext-pro"

#: US dollars per image; ACTOR_MAKER_PRICES='{"owner/name": 0.05}' adds or overrides entries.
DEFAULT_PRICES: dict[str, float] = {
    "black-forest-labs/flux-kontext-pro": 0.04,
    "black-forest-labs/flux-kontext-max": 0.08,
    "black-forest-labs/flux-kontext-dev": 0.025,
    "preview": 0.0,
}

#: Replicate's FLUX LoRA trainer and one published version of it (see docs/configuration.md).
DEFAULT_TRAINER_MODEL = "ostris/flux-dev-lora-trainer"
DEFAULT_TRAINER_VERSION = "e440909d3512c31646ee2e0c7d6f6f4923224863a6a10c494606e79fb5844497"
DEFAULT_LORA_MODEL = "black-forest-labs/flux-dev-lora"
#: Replicate's list price of one Nvidia H100 GPU-second (gpu-h100, $5.49/hr) from
#: https://replicate.com/pricing, where "Flux fine-tunes run on H100s".
DEFAULT_TRAINING_PRICE_PER_SECOND = 0.001525

#: The trainers ``actor-maker train --trainer`` accepts.
TrainerName = Literal["replicate", "ai-toolkit", "preview"]


#: Seconds, more than zero (timeouts, intervals, leases).
Seconds = Annotated[float, Field(gt=0)]
#: US dollars, zero or more.
Usd = Annotated[float, Field(ge=0)]
#: A size or a count, more than zero.
Positive = Annotated[int, Field(gt=0)]


def env(*names: str, **field: Any) -> Any:
    """A setting read from the first of the environment variables ``names`` that is set
    (``Settings(field_name=...)`` works too). ``field``: ``default`` or ``default_factory``
    and constraints, as for ``pydantic.Field``; the attribute's docstring describes it."""
    return Field(validation_alias=AliasChoices(*names), **field)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    # --- where things are stored -------------------------------------------------
    store: str | None = env("ACTOR_MAKER_STORE", default=None)
    """A directory, or s3://bucket[/prefix]. Default: ./data/store, or
    s3://$AWS_SYSTEM_ACTORS_BUCKET when that is set."""
    system_actors_bucket: str | None = env("AWS_SYSTEM_ACTORS_BUCKET", default=None)
    """The old system's bucket variable; used when ACTOR_MAKER_STORE is unset."""
    aws_access_key_id: str | None = env("AWS_ACCESS_KEY_ID", default=None)
    aws_secret_access_key: SecretStr | None = env("AWS_SECRET_ACCESS_KEY", default=None)
    aws_session_token: SecretStr | None = env("AWS_SESSION_TOKEN", default=None)
    """For temporary credentials (STS, SSO)."""
    aws_region: str = env("AWS_DEFAULT_REGION", "AWS_REGION", default="us-west-1")
    aws_endpoint_url: str | None = env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", default=None)
    """For S3-compatible servers (MinIO, moto, R2)."""

    # --- the image provider --------------------------------------------------------
    replicate_api_token: SecretStr | None = env("REPLICATE_API_TOKEN", default=None)
    replicate_base_url: str = env("REPLICATE_BASE_URL", default="https://api.replicate.com")
    provider: Literal["replicate", "preview"] | None = env("ACTOR_MAKER_PROVIDER", default=None)
    """Default: replicate when REPLICATE_API_TOKEN is set, else preview."""
    model: str = env("ACTOR_MAKER_MODEL", default=DEFAULT_MODEL)
    prices: dict[str, float] = env(
        "ACTOR_MAKER_PRICES", default_factory=lambda: dict(DEFAULT_PRICES)
    )
    max_job_cost: Usd = env("ACTOR_MAKER_MAX_JOB_COST", default=5.0)
    """Default cost ceiling in USD for one job; --max-cost overrides it."""
    image_deadline_s: Seconds = env("ACTOR_MAKER_IMAGE_DEADLINE", default=300.0)
    """Overall seconds allowed for one image, retries and polling included."""
    create_wait_s: int = env("ACTOR_MAKER_CREATE_WAIT", default=10, ge=1, le=60)
    """Seconds a create request blocks (Prefer: wait) before we poll instead."""
    max_retries: int = env("ACTOR_MAKER_MAX_RETRIES", default=5, ge=0, le=20)
    poll_interval_s: Seconds = env("ACTOR_MAKER_POLL_INTERVAL", default=1.0)
    safety_tolerance: int = env("ACTOR_MAKER_SAFETY_TOLERANCE", default=2, ge=0, le=2)
    output_format: Literal["jpg", "png"] = env("ACTOR_MAKER_OUTPUT_FORMAT", default="jpg")

    # --- quality checks ----------------------------------------------------------------
    checks: bool = env("ACTOR_MAKER_CHECKS", default=True)
    """Check every generated image (technical, near-duplicates, identity)."""
    identity_check: bool = env("ACTOR_MAKER_IDENTITY", default=True)
    """Compare faces with the base image when the [quality] extra is installed."""
    identity_threshold: float | None = env(
        "ACTOR_MAKER_IDENTITY_THRESHOLD", default=None, gt=0, lt=2
    )
    """Largest face distance still counted as the same person (default: calibrated)."""

    # --- concurrency and safety ----------------------------------------------------
    max_concurrent_requests: int = env(
        "MAX_CONCURRENT_REQUESTS", "ACTOR_MAKER_MAX_CONCURRENT_REQUESTS", default=4, ge=1, le=256
    )
    slot_dir: Path | None = env("ACTOR_MAKER_SLOT_DIR", default=None)
    """Where the request-slot lock files live (shared by processes on one machine).
    Default: the user's cache directory."""
    slot_timeout_s: Seconds = env("ACTOR_MAKER_SLOT_TIMEOUT", default=600.0)
    allow_private_urls: bool = env("ACTOR_MAKER_ALLOW_PRIVATE_URLS", default=False)
    fetch_timeout_s: Seconds = env("ACTOR_MAKER_FETCH_TIMEOUT", default=30.0)
    max_image_bytes: Positive = env("ACTOR_MAKER_MAX_IMAGE_BYTES", default=25 * 1024 * 1024)
    max_image_pixels: Positive = env("ACTOR_MAKER_MAX_IMAGE_PIXELS", default=50_000_000)
    max_concurrent_decodes: Positive = env("ACTOR_MAKER_MAX_CONCURRENT_DECODES", default=2)
    """Full-size image decodes one process runs at once (each up to 4 bytes a pixel:
    200 MB for 50 megapixels); more wait."""
    redis_url: str | None = env("ACTOR_MAKER_QUEUE", default=None)
    """redis:// URL of the task queue (distributed mode). Checked by doctor."""

    # --- the HTTP API (actor-maker serve) -------------------------------------------------
    api_token: SecretStr | None = env("ACTOR_MAKER_API_TOKEN", default=None)
    """Bearer token for every route but /healthz; required off loopback. At least 16
    characters; empty or blank counts as unset."""
    allowed_hosts: list[str] = env("ACTOR_MAKER_ALLOWED_HOSTS", default_factory=list)
    """Host names the server answers to besides localhost, 127.0.0.1, [::1] and the --host
    address, JSON list: ["studio.example"]; ["*"] turns the check off."""
    cors_origins: list[str] = env("ACTOR_MAKER_CORS_ORIGINS", default_factory=list)
    """Origins allowed to call the API from a browser, JSON list: ["https://x"]."""
    state_dir: Path = env("ACTOR_MAKER_STATE_DIR", default=Path("./data/state"))
    """Where the embedded job records live (SQLite)."""
    job_lease_s: Seconds = env("ACTOR_MAKER_JOB_LEASE", default=15.0)
    """Seconds a job runner's lease lasts without a heartbeat."""
    max_body_bytes: Positive = env("ACTOR_MAKER_MAX_BODY_BYTES", default=1024 * 1024)
    """Largest JSON request body; uploads are bounded by MAX_IMAGE_BYTES."""
    index_max_age_s: float = env("ACTOR_MAKER_INDEX_MAX_AGE", default=1.0, ge=0, le=3600)
    """Seconds the API reuses its listing of the actors (changes made through the same
    server show at once; other processes' within this time)."""

    # --- distributed mode (ACTOR_MAKER_QUEUE) ------------------------------------------------
    queue_prefix: str = env(
        "ACTOR_MAKER_QUEUE_PREFIX", default="actor-maker", min_length=1, max_length=64
    )
    """Prefix of every Redis key (queues, job records, limits): one per deployment."""
    create_rate_per_minute: int = env("ACTOR_MAKER_CREATE_RATE", default=600, ge=1)
    """Global ceiling on prediction creates per minute across all workers."""
    worker_heartbeat_s: Seconds = env("ACTOR_MAKER_WORKER_HEARTBEAT", default=60.0)
    """Seconds without a heartbeat after which a worker counts as dead and its
    unacknowledged items are delivered to another worker."""
    slot_ttl_s: Seconds = env("ACTOR_MAKER_SLOT_TTL", default=30.0)
    """Seconds after which a crashed worker's request slot is freed."""
    base_cache_size: int = env("ACTOR_MAKER_BASE_CACHE", default=32, ge=1)
    """Base images a worker keeps in memory (one per actor; least recent out)."""

    # --- LoRA training (issue 13) ---------------------------------------------------------
    trainer_model: str = env(
        "ACTOR_MAKER_TRAINER_MODEL", default=DEFAULT_TRAINER_MODEL, pattern=r"^[\w.-]+/[\w.-]+$"
    )
    """Replicate trainer model, owner/name."""
    trainer_version: str = env(
        "ACTOR_MAKER_TRAINER_VERSION", default=DEFAULT_TRAINER_VERSION, pattern=r"^[0-9a-f]{8,64}$"
    )
    """Version id of the trainer model (Replicate trains a version, not a model)."""
    lora_model: str = env("ACTOR_MAKER_LORA_MODEL", default=DEFAULT_LORA_MODEL)
    """Replicate model that renders samples with lora_weights."""
    training_price_per_second: Usd = env(
        "ACTOR_MAKER_TRAINING_PRICE_PER_SECOND", default=DEFAULT_TRAINING_PRICE_PER_SECOND
    )
    """US dollars per GPU-second of training (Replicate: H100 list price)."""
    replicate_webhook_secret: SecretStr | None = env(
        "ACTOR_MAKER_WEBHOOK_SECRET", "REPLICATE_WEBHOOK_SECRET", default=None
    )
    """whsec_ secret of Replicate webhooks (GET /v1/webhooks/default/secret)."""
    ai_toolkit_dir: Path | None = env("ACTOR_MAKER_AI_TOOLKIT_DIR", default=None)
    """Checkout of ostris/ai-toolkit (its run.py) for --trainer ai-toolkit."""
    ai_toolkit_command: str = env(
        "ACTOR_MAKER_AI_TOOLKIT_COMMAND", default="python run.py", min_length=1
    )
    """Command run in ACTOR_MAKER_AI_TOOLKIT_DIR; the config path is appended."""

    trainer: TrainerName | None = env("ACTOR_MAKER_TRAINER", default=None)
    """Default trainer: replicate when REPLICATE_API_TOKEN is set, else preview (offline,
    learns nothing)."""
    training_owner: str | None = env(
        "ACTOR_MAKER_TRAINING_OWNER", default=None, pattern=r"^[a-z0-9_.-]+$"
    )
    """Replicate account that owns the trained models (destination
    {owner}/actor-{id}-lora)."""
    training_webhook_url: str | None = env(
        "ACTOR_MAKER_TRAINING_WEBHOOK_URL", default=None, pattern=r"^https://\S+$"
    )
    """Public https URL of this server's /api/webhooks/replicate; Replicate calls it when a
    training ends (polling is the fallback)."""
    training_seconds_per_step: Seconds = env("ACTOR_MAKER_TRAINING_SECONDS_PER_STEP", default=1.2)
    """Estimated GPU seconds per training step (cost and time estimates)."""
    sample_price: Usd = env("ACTOR_MAKER_SAMPLE_PRICE", default=0.032)
    """US dollars per validation sample image (Replicate flux-dev-lora)."""
    training_samples: int = env("ACTOR_MAKER_TRAINING_SAMPLES", default=6, ge=1, le=20)
    """Validation images made with a trained LoRA."""
    training_min_pass: float = env("ACTOR_MAKER_TRAINING_MIN_PASS", default=0.8, ge=0, le=1)
    """Share of samples that must pass the identity check; below it a model is
    needs_review."""
    training_finish_lease_s: Seconds = env("ACTOR_MAKER_TRAINING_FINISH_LEASE", default=180.0)
    """How long a claim to finish a training (weights, samples, score) holds without being
    renewed; another process waits for it, then takes over."""
    preview_training_s: Seconds = env("ACTOR_MAKER_PREVIEW_TRAINING_S", default=3.0)
    """How long a preview-trainer training takes (seconds)."""

    @field_validator("prices")
    @classmethod
    def _merge_prices(cls, v: dict[str, float]) -> dict[str, float]:
        """ACTOR_MAKER_PRICES adds to and overrides the built-in table; it does not replace it."""
        return {**DEFAULT_PRICES, **v}

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        """An empty or whitespace-only token is no token: it must not switch auth off
        while the bind check believes one is set. Surrounding whitespace is dropped."""
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, str):
            return v.strip() or None
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; expected {JSON_FORMS['cors_origins']}"
                )
        return v

    @field_validator("replicate_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @property
    def store_location(self) -> str:
        if self.store:
            return self.store
        if self.system_actors_bucket:
            return f"s3://{self.system_actors_bucket}"
        return "./data/store"

    @property
    def provider_name(self) -> Literal["replicate", "preview"]:
        if self.provider:
            return self.provider
        return "replicate" if self.replicate_api_token else "preview"

    def checked_api_token(self) -> str | None:
        """The API token, or ``None``; ``ConfigError`` when it is too short to resist
        guessing. Checked where a server starts, so other commands don't care."""
        if self.api_token is None:
            return None
        token = self.api_token.get_secret_value()
        if len(token) < MIN_API_TOKEN_LENGTH:
            raise ConfigError(
                f"ACTOR_MAKER_API_TOKEN is {len(token)} characters long; use at least "
                f"{MIN_API_TOKEN_LENGTH} (e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return token

    @property
    def trainer_name(self) -> TrainerName:
        if self.trainer:
            return self.trainer
        return "replicate" if self.replicate_api_token else "preview"

    def price_of(self, model: str) -> float | None:
        return self.prices.get(model)


#: A browser origin: scheme, host and optional port; no path, query or trailing slash.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")

#: The form of each setting whose value is JSON, for the one-line error about it.
JSON_FORMS = {
    "cors_origins": "a JSON list of origins (scheme://host[:port]), "
    'e.g. \'["https://studio.example", "http://localhost:5173"]\'',
    "prices": "a JSON object of model to USD per image, e.g. '{\"owner/model\": 0.04}'",
}


def env_name(field: str) -> str:
    """The environment variable of a settings field (or the alias itself)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field


def setting_error(exc: SettingsError | ValidationError) -> str:
    """One line naming the variable that is wrong and, for a JSON setting, its form."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        name = where.split(".", 1)[0]
        field = next((f for f in JSON_FORMS if env_name(f) == name), None)
        message = str(first.get("msg"))
        if field and "expected" not in message:
            message += f"; expected {JSON_FORMS[field]}"
        return f"invalid setting {where}: {message}"
    found = re.search(r'field "(\w+)"', str(exc))
    if not found:
        return f"invalid setting: {str(exc).splitlines()[0]}"
    field = found.group(1)
    form = JSON_FORMS.get(field, "a valid value (see docs/configuration.md)")
    return f"invalid setting {env_name(field)}: not valid JSON; expected {form}"

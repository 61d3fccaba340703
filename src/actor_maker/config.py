"""Settings: one validated object, read once at the edge and passed in.

Names follow the environment the old system used (``MAX_CONCURRENT_REQUESTS``,
the standard AWS and Replicate variables); everything else is
``ACTOR_MAKER_*``. A ``.env`` file in the working directory is read too.
Every field is documented in docs/configuration.md (a test keeps them in step).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- where things are stored -------------------------------------------------
    store: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_STORE"),
        description="A directory, or s3://bucket[/prefix]. Default: ./data/store, "
        "or s3://$AWS_SYSTEM_ACTORS_BUCKET when that is set.",
    )
    system_actors_bucket: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SYSTEM_ACTORS_BUCKET"),
        description="The old system's bucket variable; used when ACTOR_MAKER_STORE is unset.",
    )
    aws_access_key_id: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SESSION_TOKEN"),
        description="For temporary credentials (STS, SSO).",
    )
    aws_region: str = Field(
        default="us-west-1",
        validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION"),
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="For S3-compatible servers (MinIO, moto, R2).",
    )

    # --- the image provider --------------------------------------------------------
    replicate_api_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REPLICATE_API_TOKEN")
    )
    replicate_base_url: str = Field(
        default="https://api.replicate.com",
        validation_alias=AliasChoices("REPLICATE_BASE_URL"),
    )
    provider: Literal["replicate", "preview"] | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_PROVIDER"),
        description="Default: replicate when REPLICATE_API_TOKEN is set, else preview.",
    )
    model: str = Field(default=DEFAULT_MODEL, validation_alias=AliasChoices("ACTOR_MAKER_MODEL"))
    prices: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        validation_alias=AliasChoices("ACTOR_MAKER_PRICES"),
    )
    max_job_cost: float = Field(
        default=5.0,
        ge=0,
        validation_alias=AliasChoices("ACTOR_MAKER_MAX_JOB_COST"),
        description="Default cost ceiling in USD for one job; --max-cost overrides it.",
    )
    image_deadline_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_IMAGE_DEADLINE"),
        description="Overall seconds allowed for one image, retries and polling included.",
    )
    create_wait_s: int = Field(
        default=10,
        ge=1,
        le=60,
        validation_alias=AliasChoices("ACTOR_MAKER_CREATE_WAIT"),
        description="Seconds a create request blocks (Prefer: wait) before we poll instead.",
    )
    max_retries: int = Field(
        default=5, ge=0, le=20, validation_alias=AliasChoices("ACTOR_MAKER_MAX_RETRIES")
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, validation_alias=AliasChoices("ACTOR_MAKER_POLL_INTERVAL")
    )
    safety_tolerance: int = Field(
        default=2, ge=0, le=2, validation_alias=AliasChoices("ACTOR_MAKER_SAFETY_TOLERANCE")
    )
    output_format: Literal["jpg", "png"] = Field(
        default="jpg", validation_alias=AliasChoices("ACTOR_MAKER_OUTPUT_FORMAT")
    )

    # --- quality checks ----------------------------------------------------------------
    checks: bool = Field(
        default=True,
        validation_alias=AliasChoices("ACTOR_MAKER_CHECKS"),
        description="Check every generated image (technical, near-duplicates, identity).",
    )
    identity_check: bool = Field(
        default=True,
        validation_alias=AliasChoices("ACTOR_MAKER_IDENTITY"),
        description="Compare faces with the base image when the [quality] extra is installed.",
    )
    identity_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=2,
        validation_alias=AliasChoices("ACTOR_MAKER_IDENTITY_THRESHOLD"),
        description="Largest face distance still counted as the same person (default: calibrated).",
    )

    # --- concurrency and safety ----------------------------------------------------
    max_concurrent_requests: int = Field(
        default=4,
        ge=1,
        le=256,
        validation_alias=AliasChoices(
            "MAX_CONCURRENT_REQUESTS", "ACTOR_MAKER_MAX_CONCURRENT_REQUESTS"
        ),
    )
    slot_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_SLOT_DIR"),
        description="Where the request-slot lock files live (shared by processes on one "
        "machine). Default: the user's cache directory.",
    )
    slot_timeout_s: float = Field(
        default=600.0, gt=0, validation_alias=AliasChoices("ACTOR_MAKER_SLOT_TIMEOUT")
    )
    allow_private_urls: bool = Field(
        default=False, validation_alias=AliasChoices("ACTOR_MAKER_ALLOW_PRIVATE_URLS")
    )
    fetch_timeout_s: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("ACTOR_MAKER_FETCH_TIMEOUT")
    )
    max_image_bytes: int = Field(
        default=25 * 1024 * 1024, gt=0, validation_alias=AliasChoices("ACTOR_MAKER_MAX_IMAGE_BYTES")
    )
    max_image_pixels: int = Field(
        default=50_000_000, gt=0, validation_alias=AliasChoices("ACTOR_MAKER_MAX_IMAGE_PIXELS")
    )
    max_concurrent_decodes: int = Field(
        default=2,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_MAX_CONCURRENT_DECODES"),
        description="Full-size image decodes one process runs at once (each up to "
        "4 bytes a pixel: 200 MB for 50 megapixels); more wait.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_QUEUE"),
        description="redis:// URL of the task queue (distributed mode). Checked by doctor.",
    )

    # --- the HTTP API (actor-maker serve) -------------------------------------------------
    api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_API_TOKEN"),
        description="Bearer token for every route but /healthz; required off loopback. At "
        "least 16 characters; empty or blank counts as unset.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("ACTOR_MAKER_ALLOWED_HOSTS"),
        description="Host names the server answers to besides localhost, 127.0.0.1, [::1] "
        'and the --host address, JSON list: ["studio.example"]; ["*"] turns the check off.',
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        validation_alias=AliasChoices("ACTOR_MAKER_CORS_ORIGINS"),
        description='Origins allowed to call the API from a browser, JSON list: ["https://x"].',
    )
    state_dir: Path = Field(
        default=Path("./data/state"),
        validation_alias=AliasChoices("ACTOR_MAKER_STATE_DIR"),
        description="Where the embedded job records live (SQLite).",
    )
    job_lease_s: float = Field(
        default=15.0,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_JOB_LEASE"),
        description="Seconds a job runner's lease lasts without a heartbeat.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_MAX_BODY_BYTES"),
        description="Largest JSON request body; uploads are bounded by MAX_IMAGE_BYTES.",
    )

    index_max_age_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        validation_alias=AliasChoices("ACTOR_MAKER_INDEX_MAX_AGE"),
        description="Seconds the API reuses its listing of the actors (changes made through "
        "the same server show at once; other processes' within this time).",
    )

    # --- distributed mode (ACTOR_MAKER_QUEUE) ------------------------------------------------
    queue_prefix: str = Field(
        default="actor-maker",
        min_length=1,
        max_length=64,
        validation_alias=AliasChoices("ACTOR_MAKER_QUEUE_PREFIX"),
        description="Prefix of every Redis key (queues, job records, limits): one per deployment.",
    )
    create_rate_per_minute: int = Field(
        default=600,
        ge=1,
        validation_alias=AliasChoices("ACTOR_MAKER_CREATE_RATE"),
        description="Global ceiling on prediction creates per minute across all workers.",
    )
    worker_heartbeat_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_WORKER_HEARTBEAT"),
        description="Seconds without a heartbeat after which a worker counts as dead and "
        "its unacknowledged items are delivered to another worker.",
    )
    slot_ttl_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_SLOT_TTL"),
        description="Seconds after which a crashed worker's request slot is freed.",
    )
    base_cache_size: int = Field(
        default=32,
        ge=1,
        validation_alias=AliasChoices("ACTOR_MAKER_BASE_CACHE"),
        description="Base images a worker keeps in memory (one per actor; least recent out).",
    )

    # --- LoRA training (issue 13) ---------------------------------------------------------
    trainer_model: str = Field(
        default=DEFAULT_TRAINER_MODEL,
        pattern=r"^[\w.-]+/[\w.-]+$",
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINER_MODEL"),
        description="Replicate trainer model, owner/name.",
    )
    trainer_version: str = Field(
        default=DEFAULT_TRAINER_VERSION,
        pattern=r"^[0-9a-f]{8,64}$",
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINER_VERSION"),
        description="Version id of the trainer model (Replicate trains a version, not a model).",
    )
    lora_model: str = Field(
        default=DEFAULT_LORA_MODEL,
        validation_alias=AliasChoices("ACTOR_MAKER_LORA_MODEL"),
        description="Replicate model that renders samples with lora_weights.",
    )
    training_price_per_second: float = Field(
        default=DEFAULT_TRAINING_PRICE_PER_SECOND,
        ge=0,
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_PRICE_PER_SECOND"),
        description="US dollars per GPU-second of training (Replicate: H100 list price).",
    )
    replicate_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_WEBHOOK_SECRET", "REPLICATE_WEBHOOK_SECRET"),
        description="whsec_ secret of Replicate webhooks (GET /v1/webhooks/default/secret).",
    )
    ai_toolkit_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_AI_TOOLKIT_DIR"),
        description="Checkout of ostris/ai-toolkit (its run.py) for --trainer ai-toolkit.",
    )
    ai_toolkit_command: str = Field(
        default="python run.py",
        min_length=1,
        validation_alias=AliasChoices("ACTOR_MAKER_AI_TOOLKIT_COMMAND"),
        description="Command run in ACTOR_MAKER_AI_TOOLKIT_DIR; the config path is appended.",
    )

    trainer: TrainerName | None = Field(
        default=None,
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINER"),
        description="Default trainer: replicate when REPLICATE_API_TOKEN is set, else preview "
        "(offline, learns nothing).",
    )
    training_owner: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_.-]+$",
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_OWNER"),
        description="Replicate account that owns the trained models "
        "(destination {owner}/actor-{id}-lora).",
    )
    training_webhook_url: str | None = Field(
        default=None,
        pattern=r"^https://\S+$",
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_WEBHOOK_URL"),
        description="Public https URL of this server's /api/webhooks/replicate; Replicate "
        "calls it when a training ends (polling is the fallback).",
    )
    training_seconds_per_step: float = Field(
        default=1.2,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_SECONDS_PER_STEP"),
        description="Estimated GPU seconds per training step (cost and time estimates).",
    )
    sample_price: float = Field(
        default=0.032,
        ge=0,
        validation_alias=AliasChoices("ACTOR_MAKER_SAMPLE_PRICE"),
        description="US dollars per validation sample image (Replicate flux-dev-lora).",
    )
    training_samples: int = Field(
        default=6,
        ge=1,
        le=20,
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_SAMPLES"),
        description="Validation images made with a trained LoRA.",
    )
    training_min_pass: float = Field(
        default=0.8,
        ge=0,
        le=1,
        validation_alias=AliasChoices("ACTOR_MAKER_TRAINING_MIN_PASS"),
        description="Share of samples that must pass the identity check; below it a model "
        "is needs_review.",
    )
    preview_training_s: float = Field(
        default=3.0,
        gt=0,
        validation_alias=AliasChoices("ACTOR_MAKER_PREVIEW_TRAINING_S"),
        description="How long a preview-trainer training takes (seconds).",
    )

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

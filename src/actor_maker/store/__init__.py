"""Object stores: a local directory (embedded mode) or an S3 bucket."""

from __future__ import annotations

from pydantic import SecretStr

from actor_maker.config import Settings
from actor_maker.errors import ConfigError
from actor_maker.store.base import ObjectInfo, ObjectStore, StoredObject, check_key

__all__ = ["ObjectInfo", "ObjectStore", "StoredObject", "check_key", "open_s3_store", "open_store"]


def open_store(settings: Settings) -> ObjectStore:
    """The store named by ``settings.store_location``."""
    location = settings.store_location
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if len(bucket) < 3:
            raise ConfigError(f"ACTOR_MAKER_STORE={location!r}: bucket name is too short")
        return open_s3_store(settings, bucket, prefix)
    if "://" in location:
        raise ConfigError(
            f"ACTOR_MAKER_STORE={location!r}: use a directory path or s3://bucket[/prefix]"
        )
    from actor_maker.store.local import LocalStore

    return LocalStore(location)


def open_s3_store(settings: Settings, bucket: str, prefix: str = "") -> ObjectStore:
    """A store on ``bucket``/``prefix`` with the settings' credentials, region and endpoint
    (the configured store, or another bucket such as an export's destination)."""
    from actor_maker.store.s3 import S3Store

    return S3Store(
        bucket,
        prefix.strip("/"),
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=_secret(settings.aws_secret_access_key),
        # a session token means nothing without the keys it belongs to
        session_token=_secret(settings.aws_session_token) if settings.aws_access_key_id else None,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None

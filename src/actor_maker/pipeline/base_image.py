"""The base image of a job: fetched or read once, checked, stored, the actor created."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from actor_maker.config import Settings
from actor_maker.errors import PreconditionFailed
from actor_maker.fetch import AddressPolicy, fetch_url, redact_url
from actor_maker.images import ImageInfo, inspect_image, md5_hex
from actor_maker.manifest import Manifest, base_image_key, new_manifest, update_manifest
from actor_maker.pipeline.model import Actor, BaseImage, StoredBase
from actor_maker.store.base import ObjectStore


class BaseImages:
    """The base-image half of ``Pipeline`` (which supplies these attributes)."""

    settings: Settings
    store: ObjectStore
    policy: AddressPolicy
    _http: httpx.AsyncClient | None

    async def load_base_image(self, ref: BaseImage) -> tuple[bytes, ImageInfo, str | None]:
        """Bytes, decoded info, and the store key when the image came from the store."""
        key: str | None = None
        if isinstance(ref, StoredBase):
            key = ref.key
            data = (
                ref.data
                if ref.data is not None
                else (await asyncio.to_thread(self.store.get, key)).data
            )
        elif isinstance(ref, bytes):
            data = ref
        elif (key := self.store.key_for_url(ref)) is not None:
            obj = await asyncio.to_thread(self.store.get, key)
            data = obj.data
        else:
            client = self._http or httpx.AsyncClient(timeout=self.settings.fetch_timeout_s)
            try:
                data, _ = await fetch_url(
                    ref,
                    policy=self.policy,
                    client=client,
                    max_bytes=self.settings.max_image_bytes,
                    timeout=self.settings.fetch_timeout_s,
                )
            finally:
                if self._http is None:
                    await client.aclose()
        what = f"base image {redact_url(ref)}" if isinstance(ref, str) else "base image"
        info = await asyncio.to_thread(
            inspect_image,
            data,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            what=what,
        )
        return data, info, key

    def _ensure_actor(self, actor: Actor, data: bytes, info: ImageInfo, key: str | None) -> str:
        """Create the manifest when missing and make sure the base image is in the store.

        Returns the key holding exactly these bytes (never overwriting another image).
        """
        if key is None:
            key = base_image_key(actor.actor_name, info.extension)
            try:
                self.store.put_if_absent(
                    key,
                    data,
                    content_type=info.content_type,
                    metadata={"actor-id": actor.actor_id, "md5": md5_hex(data)},
                )
            except PreconditionFailed:
                head = self.store.head(key)
                if head is None or head.metadata.get("md5") != md5_hex(data):
                    # A different base image is stored there: keep it, store ours beside it.
                    key = base_image_key(f"{actor.actor_name}_{md5_hex(data)[:8]}", info.extension)
                    with contextlib.suppress(PreconditionFailed):
                        self.store.put_if_absent(
                            key,
                            data,
                            content_type=info.content_type,
                            metadata={"actor-id": actor.actor_id, "md5": md5_hex(data)},
                        )
        stored_key = key
        base_entry = {
            "filename": stored_key.rsplit("/", 1)[-1],
            "s3_url": self.store.public_url(stored_key),
            "status": "synced",
            "format": {"jpg": "jpeg"}.get(info.extension, info.extension),
            "key": stored_key,
        }

        def change(manifest: Manifest) -> bool:
            changed = False
            if not manifest.base_images:
                manifest.base_images.append(dict(base_entry))
                changed = True
            for field_name, value in (
                ("actor_type", actor.actor_type),
                ("actor_sex", actor.actor_sex),
            ):
                if field_name not in manifest.data and value:
                    manifest.data[field_name] = value
                    changed = True
            return changed

        update_manifest(
            self.store,
            actor.actor_id,
            change,
            create=lambda: new_manifest(
                actor_id=actor.actor_id,
                actor_name=actor.actor_name,
                actor_type=actor.type,
                actor_sex=actor.actor_sex,
            ),
        )
        return key

    async def prepare_base(self, actor: Actor, ref: BaseImage) -> str:
        """Fetch and check the base image, create the actor's manifest if it has none, and
        return the store key of the base image (what a job keeps to run or resume)."""
        data, info, key = await self.load_base_image(ref)
        return await asyncio.to_thread(self._ensure_actor, actor, data, info, key)

"""The base image of a job: fetched or read once, checked, stored, the actor created."""

from __future__ import annotations

import asyncio

import httpx

from actor_maker.actors import ensure_actor
from actor_maker.config import Settings
from actor_maker.fetch import AddressPolicy, fetch_url, redact_url
from actor_maker.images import ImageInfo, inspect_image
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
            data = (await asyncio.to_thread(self.store.get, key)).data
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
        """Create the manifest when missing (the name must be free) and make sure the base
        image is in the store. Returns the key holding exactly these bytes (never
        overwriting another image)."""
        return ensure_actor(
            self.store,
            actor_id=actor.actor_id,
            actor_name=actor.actor_name,
            actor_type=actor.actor_type,
            actor_sex=actor.actor_sex,
            data=data,
            info=info,
            key=key,
        )

    async def prepare_base(self, actor: Actor, ref: BaseImage) -> str:
        """Fetch and check the base image, create the actor's manifest if it has none, and
        return the store key of the base image (what a job keeps to run or resume)."""
        data, info, key = await self.load_base_image(ref)
        return await asyncio.to_thread(self._ensure_actor, actor, data, info, key)

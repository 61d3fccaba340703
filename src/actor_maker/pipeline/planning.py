"""Planning: validate a request and work out what it would generate and cost.

Nothing is fetched, written or spent here; bad input is refused before a job exists.
"""

from __future__ import annotations

from collections.abc import Sequence

from actor_maker import prompts as prompt_lib
from actor_maker.config import Settings
from actor_maker.errors import BudgetError, ConfigError, InputError
from actor_maker.fetch import AddressPolicy
from actor_maker.jobs.models import JobItem
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.pipeline.model import Actor, BaseImage, JobPlan, custom_prompt_id
from actor_maker.providers.base import ImageProvider
from actor_maker.store.base import ObjectStore
from actor_maker.validation import check_aspect_ratio, check_prompt


class Planning:
    """The planning half of ``Pipeline`` (which supplies these attributes)."""

    settings: Settings
    store: ObjectStore
    provider: ImageProvider
    policy: AddressPolicy
    library: list[prompt_lib.PromptTemplate]

    def _price(self) -> float:
        if self.provider.free:
            return 0.0
        price = self.settings.price_of(self.provider.model)
        if price is None:
            raise ConfigError(
                f"no price known for model {self.provider.model}; add it to ACTOR_MAKER_PRICES "
                'as JSON, e.g. {"owner/name": 0.05}'
            )
        return price

    def _plan(
        self,
        actor: Actor,
        items: Sequence[JobItem],
        aspect_ratio: str,
        already_done: tuple[str, ...] = (),
    ) -> JobPlan:
        return JobPlan(
            actor, tuple(items), self.provider.model, self._price(), aspect_ratio, already_done
        )

    def _prepare(
        self, actor: Actor, manifest: Manifest | None = None
    ) -> tuple[Actor, Manifest | None]:
        """Validate ``actor`` and complete it from its manifest (read here unless given)."""
        actor.validated()  # ids are checked before they are used in a key
        if manifest is None:
            manifest = read_manifest(self.store, actor.actor_id)
        if manifest is not None and manifest.actor_name and manifest.actor_name != actor.actor_name:
            raise InputError(
                f"actor {actor.actor_id} is named {manifest.actor_name!r} in its manifest, "
                f"not {actor.actor_name!r}"
            )
        return actor.completed_by(manifest).validated(), manifest

    def plan_all(
        self,
        actor: Actor,
        *,
        only: list[str] | None = None,
        force: bool = False,
        aspect_ratio: str = "1:1",
        manifest: Manifest | None = None,
    ) -> JobPlan:
        """Every library prompt (or ``only`` those) the manifest lacks; ``manifest`` when the
        caller has just read it (batch planning reads each manifest once)."""
        check_aspect_ratio(aspect_ratio)
        actor, manifest = self._prepare(actor, manifest)
        templates = self.library
        if only:
            known = {t.id for t in templates}
            unknown = [i for i in only if i not in known]
            if unknown:
                raise InputError(f"unknown prompt id(s): {', '.join(unknown)}")
            templates = [t for t in templates if t.id in set(only)]
        rendered = _rendered(templates, actor, manifest)
        done = manifest.prompt_ids() if manifest and not force else set()
        items = [
            JobItem(prompt_id=p.id, prompt=p.text, category=p.category, face_visible=p.face_visible)
            for p in rendered
            if p.id not in done
        ]
        skipped = tuple(p.id for p in rendered if p.id in done)
        return self._plan(actor, items, aspect_ratio, skipped)

    def plan_single(self, actor: Actor, prompt: str, *, aspect_ratio: str = "1:1") -> JobPlan:
        return self.plan_custom(actor, [prompt], aspect_ratio=aspect_ratio)

    def plan_custom(
        self, actor: Actor, prompts: Sequence[str], *, aspect_ratio: str = "1:1"
    ) -> JobPlan:
        """Free-text prompts; ``{subject}`` in them is filled in like the library's."""
        check_aspect_ratio(aspect_ratio)
        texts = [check_prompt(p) for p in prompts]
        if not texts:
            raise InputError("no prompts given")
        actor, manifest = self._prepare(actor)
        items = []
        for text in texts:
            if "{subject}" in text:
                template = prompt_lib.PromptTemplate(
                    custom_prompt_id(text), "custom", text, True, ()
                )
                text = _rendered([template], actor, manifest)[0].text
            items.append(JobItem(prompt_id=custom_prompt_id(text), prompt=text))
        return self._plan(actor, items, aspect_ratio)

    def plan_items(
        self, actor: Actor, items: Sequence[JobItem], *, aspect_ratio: str = "1:1"
    ) -> JobPlan:
        """Exactly these items (e.g. what balance found missing), checked like new input."""
        check_aspect_ratio(aspect_ratio)
        for item in items:
            check_prompt(item.prompt)
        actor, _ = self._prepare(actor)
        return self._plan(actor, items, aspect_ratio)

    @staticmethod
    def check_budget(plan: JobPlan, max_cost: float) -> None:
        if plan.estimated_cost > max_cost + 1e-9:
            raise BudgetError(
                f"estimated cost ${plan.estimated_cost:.2f} ({len(plan.items)} images × "
                f"${plan.price:.3f}) is over the ceiling ${max_cost:.2f}; raise the ceiling "
                "(max_cost in the API, --max-cost on the command line, or ACTOR_MAKER_MAX_JOB_COST)"
            )

    def check_base_image_ref(self, ref: BaseImage) -> None:
        """Syntax checks on the base image reference (no network)."""
        if not isinstance(ref, str):
            return
        if ref.startswith("s3://"):
            if self.store.key_for_url(ref) is None:
                raise InputError(
                    f"{ref.split('?', 1)[0]} is not in the configured store "
                    f"({self.store.description})"
                )
            return
        if self.store.key_for_url(ref) is None:
            self.policy.check_syntax(ref)


def _rendered(
    templates: Sequence[prompt_lib.PromptTemplate], actor: Actor, manifest: Manifest | None
) -> list[prompt_lib.ScenePrompt]:
    """``templates`` filled in for ``actor``, with its manifest's description and outfit."""
    return prompt_lib.render_all(
        templates,
        actor_type=actor.type,
        actor_sex=actor.actor_sex,
        description=manifest.description if manifest else None,
        outfit=manifest.outfit if manifest else None,
    )

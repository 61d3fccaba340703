"""``actor-maker demo``: a sample actor from a bundled public-domain portrait."""

from __future__ import annotations

from importlib import resources

from actor_maker.pipeline import Actor

DEMO_ACTOR = Actor(
    actor_id="demo", actor_name="demo_astronaut_female", actor_type="person", actor_sex="female"
)
DEMO_DESCRIPTION = "a woman in her thirties with short brown hair and a warm smile"
DEMO_OUTFIT = "an orange launch-and-entry pressure suit with mission patches"


def demo_base_image() -> bytes:
    """NASA's photograph of astronaut Eileen Collins (public domain), see assets/README.md."""
    return resources.files("actor_maker").joinpath("assets/astronaut.jpg").read_bytes()

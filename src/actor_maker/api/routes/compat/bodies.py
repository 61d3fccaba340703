"""The old frontend's request bodies, with the CLI's length limits."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator

from actor_maker.pipeline import Actor
from actor_maker.validation import MAX_NAME_LENGTH, MAX_PROMPT_LENGTH, check_actor_id

Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
Url = Annotated[str, Field(max_length=2048)]
Prompt = Annotated[str, Field(max_length=MAX_PROMPT_LENGTH)]
Ratio = Annotated[str, Field(max_length=20)]
Word = Annotated[str, Field(max_length=40)]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an actor id is a string or a number")
    return value


#: An actor id in a body: the old frontend sends "0012" or sometimes a number.
ActorRef = Annotated[
    int | Annotated[str, Field(max_length=MAX_NAME_LENGTH)], BeforeValidator(_no_bool)
]


class ForActor(BaseModel):
    actor_name: Name

    def actor(self, actor_id: str) -> Actor:
        return Actor(check_actor_id(actor_id), self.actor_name)


class GenerateAllBody(ForActor):
    #: Optional here: without it the base image recorded in the manifest is used.
    base_image_url: Url | None = None
    actor_type: Word | None = None
    actor_sex: Word | None = None

    def actor(self, actor_id: str) -> Actor:
        kind, sex = self.actor_type or None, self.actor_sex or None
        return Actor(check_actor_id(actor_id), self.actor_name, kind, sex)


class GenerateSingleBody(GenerateAllBody):
    prompt: Prompt
    aspect_ratio: Ratio = "1:1"


class RecreateBody(ForActor):
    filename: Name
    prompt: Prompt | None = None
    aspect_ratio: Ratio | None = None
    base_image_url: Url | None = None


class DeleteBody(ForActor):
    filename: Name
    #: Accepted for compatibility; the filename names the entry.
    s3_url: Url | None = None


class ActorRefBody(BaseModel):
    actor_id: ActorRef = Field(alias="actorId")


class ImageRequest(BaseModel):
    prompt: Prompt | None = None
    prompt_id: Annotated[str, Field(max_length=100)] | None = None
    aspect_ratio: Ratio | None = None

    @model_validator(mode="after")
    def _some_prompt(self) -> ImageRequest:
        if not (self.prompt or self.prompt_id):
            raise ValueError("each image needs a prompt or a prompt_id")
        return self


class GenerateSettings(BaseModel):
    """What the job uses; any other members are only recorded."""

    model_config = ConfigDict(extra="allow")

    aspect_ratio: Ratio | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    model: Annotated[str, Field(max_length=200)] | None = None


class GenerateImagesBody(BaseModel):
    images: list[ImageRequest] = Field(min_length=1, max_length=100)
    workflow: JsonValue = None
    settings: GenerateSettings | None = None
    style_id: ActorRef = Field(alias="styleId")

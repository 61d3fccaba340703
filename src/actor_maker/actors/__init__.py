"""Operations on actors, shared by the HTTP API and the CLI.

Each is a few lines over ``update_manifest`` and the store; they raise our
errors (``NotFoundError``, ``InputError``, ...) and know nothing of HTTP.
Deletions go through the trash (``actor_maker.trash``): the trash copy and its
record are written first, then the manifest changes, then the original goes.
Statistics are recomputed by ``update_manifest`` itself.

``common`` holds the shared checks and name look-ups, ``editing`` creating and
changing an actor, ``removal`` deleting and replacing, ``flags`` the ``good`` flags
and prompt usage; every public name is importable from ``actor_maker.actors``.
"""

from actor_maker.actors.common import check_filename
from actor_maker.actors.editing import create_actor, ensure_actor, ensure_manifest, update_actor
from actor_maker.actors.flags import (
    prompt_id_usage,
    prompt_usage,
    set_good,
    toggle_actor_good,
    toggle_training_data_good,
)
from actor_maker.actors.removal import (
    actor_objects,
    delete_actor,
    delete_all_images,
    delete_image,
    delete_previews,
    recreate_entry,
    replace_entry,
)
from actor_maker.names import actor_named, check_name_free

__all__ = [
    "actor_named",
    "actor_objects",
    "check_filename",
    "check_name_free",
    "create_actor",
    "delete_actor",
    "delete_all_images",
    "delete_image",
    "delete_previews",
    "ensure_actor",
    "ensure_manifest",
    "prompt_id_usage",
    "prompt_usage",
    "recreate_entry",
    "replace_entry",
    "set_good",
    "toggle_actor_good",
    "toggle_training_data_good",
    "update_actor",
]

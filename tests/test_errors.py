"""The exception tree: each error's HTTP status and CLI exit code, pinned."""

from __future__ import annotations

import pytest

from actor_maker import errors
from actor_maker.errors import ActorMakerError, ExitCode, error_class

USAGE, FAILED = ExitCode.USAGE, ExitCode.FAILED

#: name → (HTTP status, exit code), as the module docstring's tree says.
TABLE = {
    "ActorMakerError": (500, FAILED),
    "InputError": (422, USAGE),
    "UnsafeURLError": (422, USAGE),
    "InvalidImageError": (422, USAGE),
    "UnknownActorTypeError": (422, USAGE),
    "ConfigError": (500, USAGE),
    "ManifestError": (500, FAILED),
    "CorruptManifestError": (409, USAGE),
    "ManifestConflictError": (503, FAILED),
    "NotFoundError": (404, USAGE),
    "ConflictError": (409, USAGE),
    "NameTakenError": (409, USAGE),
    "StoreError": (502, USAGE),
    "PreconditionFailed": (409, USAGE),
    "ProviderError": (502, FAILED),
    "ContentFlaggedError": (502, FAILED),
    "ProviderTimeoutError": (502, FAILED),
    "RetryableProviderError": (502, FAILED),
    "SlotTimeoutError": (503, FAILED),
    "BudgetError": (422, USAGE),
    "FetchError": (422, USAGE),
}


def _tree(cls: type[ActorMakerError]) -> list[type[ActorMakerError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_status_and_exit_code(name: str) -> None:
    cls = getattr(errors, name)
    assert (cls.status, cls.exit_code) == TABLE[name]
    assert error_class(name) is cls


def test_the_table_covers_the_tree_and_every_error_is_documented() -> None:
    in_package = [c for c in _tree(ActorMakerError) if c.__module__ == errors.__name__]
    assert sorted(c.__name__ for c in in_package) == sorted(TABLE)
    assert all(c.__doc__ and c.__doc__.strip() for c in in_package)
    assert all(c.__name__ in (errors.__doc__ or "") for c in in_package)

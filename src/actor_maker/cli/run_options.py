"""The options of the commands that generate images (generate-all, generate-single,
balance --fill), declared once and handed to the command as one ``RunOptions``.

Typer builds a command's options from its function signature; ``@run_options`` adds these
to the signature and gathers them into the ``run`` parameter the command declares, the way
click commands share a stack of option decorators.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any

import typer

from actor_maker.cli.params import ProviderOpt
from actor_maker.validation import ASPECT_RATIOS

AspectOpt = Annotated[
    str, typer.Option("--aspect-ratio", help=f"One of: {', '.join(ASPECT_RATIOS)}.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Show what would be generated and its cost; spend nothing."),
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        help="Refuse the job if its estimate (USD) is higher. Default: ACTOR_MAKER_MAX_JOB_COST.",
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help="Seed for every image (default: a random one each, recorded)."),
]
ResultJsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (the old scripts' shape).")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Replicate model, e.g. black-forest-labs/flux-kontext-max."),
]


@dataclass(frozen=True)
class RunOptions:
    """How a generating command runs; a field's default is its option's default."""

    aspect_ratio: str = "1:1"
    dry_run: bool = False
    max_cost: float | None = None
    seed: int | None = None
    as_json: bool = False
    provider: str | None = None
    model: str | None = None


#: Each field's option, in the order ``--help`` lists them.
_DECLARED: dict[str, Any] = {
    "aspect_ratio": AspectOpt,
    "dry_run": DryRunOpt,
    "max_cost": MaxCostOpt,
    "seed": SeedOpt,
    "as_json": ResultJsonOpt,
    "provider": ProviderOpt,
    "model": ModelOpt,
}

Command = Callable[..., None]


def run_options(*names: str) -> Callable[[Command], Command]:
    """Give a command the options of ``RunOptions`` (every one, or only ``names``) after its
    own, and pass them to it as its keyword-only ``run`` parameter; options it is not given
    keep their defaults."""
    chosen = names or tuple(f.name for f in fields(RunOptions))
    defaults = RunOptions()

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "run"]
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=getattr(defaults, name),
                annotation=_DECLARED[name],
            )
            for name in chosen
        ]

        @functools.wraps(command)
        def with_run(*args: Any, **kwargs: Any) -> None:
            run = RunOptions(**{name: kwargs.pop(name) for name in chosen})
            command(*args, run=run, **kwargs)

        with_run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return with_run

    return decorate

"""The ``actor-maker`` command line.

Exit codes: 0 everything succeeded, 1 some items failed, 2 bad input or
configuration (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from actor_maker import __version__
from actor_maker.cli import (
    admin,
    balance,
    captions,
    export,
    generate,
    quality,
    queue,
    reconcile,
    serve,
    sessions,
    train,
    trash,
)
from actor_maker.cli.state import State
from actor_maker.config import setting_error
from actor_maker.errors import ActorMakerError, ExitCode

app = typer.Typer(
    name="actor-maker",
    help="Build LoRA training sets for storyboard actors: one base image + scene prompts "
    "→ training images in object storage, with a manifest that never loses an entry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"actor-maker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More logging (-vv for debug)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and results."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    ctx.obj = State(verbose=verbose, quiet=quiet)


generate.register(app)
admin.register(app)
serve.register(app)
sessions.register(app)
trash.register(app)
queue.register(app)
quality.register(app)
reconcile.register(app)
balance.register(app)
captions.register(app)
export.register(app)
train.register(app)


def click_command() -> typer.core.TyperGroup:
    """The click command tree of ``app``, with flags shown without a value type in
    ``--help`` (typer labels them ``<bool>``, which reads as if they took a value)."""
    command = typer.main.get_command(app)
    _untyped_flags(command)
    assert isinstance(command, typer.core.TyperGroup)
    return command


def _untyped_flags(command: Any) -> None:
    ctx = command.context_class(command, **command.context_settings)
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _untyped_flags(sub)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: maps our errors to one line and an exit code.

    Usage errors (unknown option, missing argument) are typer's to report: it prints
    them with the command's usage and exits 2. Typer turns Ctrl-C into exit 130 after
    asyncio has canceled the running job.
    """
    command = click_command()
    try:
        command.main(
            args=list(argv) if argv is not None else None,
            prog_name="actor-maker",
            standalone_mode=True,
        )
    except SystemExit as exc:
        if exc.code == ExitCode.INTERRUPTED:
            print("interrupted (anything already stored is kept)", file=sys.stderr)
        raise
    except (SettingsError, ValidationError) as exc:
        print(f"error: {setting_error(exc)}", file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    except ActorMakerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

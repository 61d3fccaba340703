"""Render every ``actor-maker`` command's usage, help and options into docs/cli-reference.md.

    python scripts/gen_cli_reference.py            # rewrite the file
    python scripts/gen_cli_reference.py --check    # exit 1 when the file is out of date

The text comes from the Typer commands themselves (their docstrings and ``help=``), so the
reference cannot drift from the code; ``tests/test_cli_reference.py`` runs the check.
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from pathlib import Path
from typing import Any

import typer.main

from actor_maker.cli import app

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli-reference.md"
HEADER = """\
# `actor-maker` command reference

Generated from the commands' own help by `scripts/gen_cli_reference.py`; do not edit by
hand (a test fails when it is out of date). Explanations, examples and exit codes are in
[cli.md](cli.md).
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# Typer ships its own copy of click: its classes are used by duck typing here.


def _param_row(param: Any) -> str | None:
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`"
        kind = "argument" + ("" if param.required else ", optional")
        help_text = getattr(param, "help", None) or ""
    elif param.param_type_name == "option":
        if param.hidden or param.name == "help":
            return None
        names = sorted(param.opts, key=len, reverse=True) + list(param.secondary_opts)
        name = ", ".join(f"`{n}`" for n in names)
        if param.is_flag or getattr(param, "count", False):
            kind = "flag, repeatable" if getattr(param, "count", False) else "flag"
        else:
            kind = _kind(param.type_descriptor.annotation)
            if param.multiple:
                kind += ", repeatable"
        if param.required:
            kind += ", required"
        elif "flag" not in kind and param.default not in (None, "", ()):
            kind += f", default `{param.default}`"
        help_text = param.help or ""
    else:  # pragma: no cover - click has no other kinds
        return None
    return f"| {name} | {kind} | {_cell(help_text)} |"


_NAMES = {str: "text", int: "integer", float: "number", bool: "flag", Path: "path"}


def _kind(annotation: Any) -> str:
    """A parameter's type for a reader: text, integer, a choice of values…"""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if origin is list and args:
        return f"{_kind(args[0])}, repeatable"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)).lower())


def _command(path: list[str], command: Any, parent: Any) -> list[str]:
    ctx = command.context_class(command, info_name=path[-1], parent=parent)
    if hasattr(command, "list_commands"):
        lines: list[str] = []
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                lines += _command([*path, name], sub, ctx)
        return lines
    usage = " ".join(command.collect_usage_pieces(ctx))
    title = " ".join(path[1:])
    help_text = (command.help or "").split("\f")[0].strip()
    lines = [f"## `{title}`", "", "```", f"{' '.join(path)} {usage}".rstrip(), "```", ""]
    if help_text:
        lines += [" ".join(help_text.split()), ""]
    rows = [row for p in command.get_params(ctx) if (row := _param_row(p))]
    if rows:
        lines += ["| Argument or option | Kind | Meaning |", "|---|---|---|", *rows, ""]
    return lines


def render() -> str:
    root: Any = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="actor-maker")
    lines = [HEADER, "## Global options", ""]
    rows = [row for p in root.get_params(ctx) if (row := _param_row(p))]
    lines += ["| Option | Kind | Meaning |", "|---|---|---|", *rows, ""]
    for name in sorted(root.list_commands(ctx)):
        command = root.get_command(ctx, name)
        if command is not None and not command.hidden:
            lines += _command(["actor-maker", name], command, ctx)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python scripts/gen_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

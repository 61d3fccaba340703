"""docs/cli-reference.md is generated from the commands' help and kept up to date."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .helpers import REPO


def generator() -> ModuleType:
    path = REPO / "scripts" / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_reference", module)
    spec.loader.exec_module(module)
    return module


def test_the_committed_reference_is_up_to_date():
    gen = generator()
    committed = (REPO / "docs" / "cli-reference.md").read_text()
    assert committed == gen.render(), "run: python scripts/gen_cli_reference.py"


def test_the_reference_covers_every_command_and_option():
    import typer.main

    from actor_maker.cli import app

    text = generator().render()
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="actor-maker")
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        command = root.get_command(ctx, name)  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        titles = [f"{name} {sub}" for sub in subs] if subs else [name]
        for title in titles:
            assert f"## `{title}`" in text
    assert "`--shuffle-caption`" in text and "## `clean-previews`" in text

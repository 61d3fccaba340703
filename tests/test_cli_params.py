"""The CLI's shared parameters and helpers (cli/params.py, cli/run_options.py)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from actor_maker.cli.params import ActorArg, chosen_actors, prompt_ids
from actor_maker.cli.run_options import RunOptions, run_options
from actor_maker.errors import InputError
from actor_maker.store.local import LocalStore


def test_prompt_ids_split_on_commas_and_drop_blanks():
    assert prompt_ids(" a, b,,c ,") == ["a", "b", "c"]
    assert prompt_ids(None) is None and prompt_ids("") is None


def test_one_actor_or_all(tmp_path):
    store = LocalStore(tmp_path)
    assert chosen_actors(store, "0012", False) == ["0012"]
    assert chosen_actors(store, None, True) == []
    for actor_id, all_actors in ((None, False), ("0012", True)):
        with pytest.raises(InputError, match="give one actor id, or --all"):
            chosen_actors(store, actor_id, all_actors)
    with pytest.raises(InputError):
        chosen_actors(store, "../x", False)


def test_run_options_adds_the_chosen_options_and_passes_them_as_one_value():
    seen: list[RunOptions] = []
    app = typer.Typer()

    @app.command()
    @run_options("dry_run", "as_json")
    def command(actor_id: ActorArg, *, run: RunOptions) -> None:
        seen.append(run)

    result = CliRunner().invoke(app, ["0012", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert seen == [RunOptions(dry_run=True)]
    usage = CliRunner().invoke(app, ["--help"]).output
    assert "--dry-run" in usage and "--json" in usage
    assert "--seed" not in usage and "--model" not in usage
    assert CliRunner().invoke(app, ["0012", "--seed", "1"]).exit_code == 2

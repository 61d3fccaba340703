"""The docs keep up with the code: every setting and command is documented."""

import re

from actor_maker.cli import app
from actor_maker.config import Settings

from .helpers import REPO

DOCS = REPO / "docs"


def env_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(getattr(alias, "choices", []) or ([alias] if isinstance(alias, str) else []))
    return names


def test_every_setting_is_documented():
    text = (DOCS / "configuration.md").read_text()
    missing = sorted(name for name in env_names() if name not in text)
    assert not missing, f"undocumented settings: {missing}"
    assert "ACTOR_MAKER_STORE" in env_names()


def test_every_command_is_documented():
    import typer.main

    command = typer.main.get_command(app)
    names = set(command.commands)  # type: ignore[attr-defined]
    for group in ("prompts", "manifest", "captions", "trash", "jobs", "sessions"):
        names |= {f"{group} {sub}" for sub in command.commands[group].commands}  # type: ignore[attr-defined]
    text = (DOCS / "cli.md").read_text()
    missing = sorted(n for n in names if n not in text)
    assert not missing, f"undocumented commands: {missing}"


def test_readme_quick_start_matches_ci():
    readme = (REPO / "README.md").read_text()
    assert "pip install -e ." in readme and "actor-maker demo" in readme
    ci = (REPO / ".ci" / "run").read_text()
    test_command = re.search(r"^python -m pytest.*$", ci, re.M)
    assert test_command and test_command.group(0) in readme


def test_changelog_has_unreleased_section():
    assert "## [Unreleased]" in (REPO / "CHANGELOG.md").read_text()

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


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_links_between_the_docs_resolve():
    pages = [*sorted(DOCS.glob("*.md")), REPO / "README.md"]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            missing_anchor = (
                linked.exists()
                and bool(fragment)
                and linked.suffix == ".md"
                and fragment not in _anchors(linked.read_text())
            )
            if not linked.exists() or missing_anchor:
                broken.append(f"{page.name}: {target}")
    assert not broken, f"broken links: {broken}"

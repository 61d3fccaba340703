"""The docs keep up with the code: every setting (and its default) and command is documented."""

import re
from pathlib import Path

from pydantic import SecretStr

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


def _documented_defaults() -> dict[str, str]:
    """Each variable of configuration.md's tables -> its Default cell."""
    cells: dict[str, str] = {}
    for line in (DOCS / "configuration.md").read_text().splitlines():
        parts = [p.strip() for p in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(parts) >= 4 and parts[0].startswith("`"):
            for name in re.findall(r"`([A-Z0-9_]+)`", parts[0]):
                cells[name] = parts[2]
    return cells


def _same(cell: str, default: object) -> bool | None:
    """Whether a Default cell states ``default``; ``None`` where the cell is prose."""
    if cell.startswith("*(unset"):
        return default is None or cell.startswith("*(unset:")
    literal = re.fullmatch(r"`([^`]*)`(?: \([^)]*\))?", cell)
    if literal is None:
        return None
    text = literal.group(1)
    if "…" in text:  # abbreviated: the two ends
        head, _, tail = text.partition("…")
        return str(default).startswith(head) and str(default).endswith(tail)
    if isinstance(default, Path):
        return Path(text) == default
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        return float(text) == float(default)
    if isinstance(default, dict | list):
        import json

        return json.loads(text) == default
    return text == str(default)


def test_documented_defaults_are_the_code_s():
    """configuration.md's Default column says what ``Settings`` really defaults to."""
    cells = _documented_defaults()
    wrong, checked = [], 0
    for field in Settings.model_fields.values():
        names = getattr(field.validation_alias, "choices", None) or []
        cell = next((cells[n] for n in names if n in cells), None)
        if cell is None:
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        same = _same(cell, default)
        if same is None:
            continue
        checked += 1
        if not same:
            wrong.append(f"{names[0]}: docs say {cell}, code {default!r}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 40, checked  # most rows state a plain default

"""The docs keep up with the code: every command, flag and config key documented, every link live."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel

from dialer.cli import app
from dialer.config_schema import CampaignFile

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
DESIGN = DOCS / "design.md"
MAX_README_LINES = 200

# Fenced code blocks hold shell lines and cron comments, not headings or links.
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_MODULE_ROW = re.compile(r"^\|\s*`dialer/([^`/]+\.py)`\s*\|([^|]*)\|", re.MULTILINE)


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]


def _prose(text: str) -> str:
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every anchor a file's headings produce, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in _HEADING.findall(_prose(path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(path: Path) -> Iterator[str]:
    text = _CODE_SPAN.sub("", _prose(path.read_text(encoding="utf-8")))
    for target in _LINK.findall(text):
        if not _SCHEME.match(target):
            yield target


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models inside an annotation: `X`, `X | None`, `list[X]`, `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted names of every key that holds a value; tables are walked, not listed themselves."""
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        nested = list(_models_in(field.annotation))
        for sub in nested:
            yield from _config_keys(sub, f"{dotted}.")
        if not nested:
            yield dotted


def _cli() -> typing.Any:
    # typer builds on its own copy of click, so the group is checked by shape, not by class.
    group = typer.main.get_command(app)
    assert hasattr(group, "commands"), "the dialer app is not a command group"
    return group


def _cli_options() -> Iterator[tuple[str, str]]:
    """(where, long option) for the global options and every option of every command."""
    group = _cli()
    commands = [("dialer", group), *((f"dialer {name}", cmd) for name, cmd in group.commands.items())]
    for where, command in commands:
        for param in command.params:
            if param.param_type_name == "option":
                for opt in [*param.opts, *param.secondary_opts]:
                    if opt.startswith("--"):
                        yield where, opt


@pytest.mark.parametrize("name", sorted(_cli().commands))
def test_every_command_is_in_the_reference(name: str) -> None:
    """Each CLI command appears in docs/reference.md as `dialer NAME`."""
    text = REFERENCE.read_text(encoding="utf-8")
    assert re.search(rf"dialer {re.escape(name)}(?![\w-])", text), f"dialer {name} is not in {REFERENCE}"


@pytest.mark.parametrize(("where", "option"), sorted(set(_cli_options())))
def test_every_option_is_in_the_reference(where: str, option: str) -> None:
    """Each long option of the CLI (global or of a command) appears in docs/reference.md."""
    text = REFERENCE.read_text(encoding="utf-8")
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
        f"{where} {option} is not in {REFERENCE}"
    )


def test_config_walk_finds_nested_tables() -> None:
    """The config walk reaches keys in sub-tables, optional tables and arrays of tables."""
    keys = set(_config_keys(CampaignFile))
    assert {"leads.columns.phone", "calling_hours.start", "tools.tool_type"} <= keys


@pytest.mark.parametrize("key", sorted(_config_keys(CampaignFile)))
def test_every_config_key_is_in_the_reference(key: str) -> None:
    """Each config key appears in docs/reference.md under its full dotted name, in backticks."""
    assert f"`{key}`" in REFERENCE.read_text(encoding="utf-8"), f"`{key}` is not in {REFERENCE}"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    """Each relative link in the README and docs names an existing file and, after #, a heading there."""
    broken = []
    for target in _relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"broken links in {path.name}: {broken}"


def test_module_table_matches_the_package() -> None:
    """docs/design.md's module table lists each dialer/*.py exactly once, with its job, and no others."""
    rows = _MODULE_ROW.findall(DESIGN.read_text(encoding="utf-8"))
    listed = [name for name, _ in rows]
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"listed more than once: {twice}"
    assert all(job.strip() for _, job in rows), "a module in the table has no job"
    actual = {path.name for path in (ROOT / "dialer").glob("*.py")}
    not_in_package = sorted(set(listed) - actual)
    not_in_table = sorted(actual - set(listed))
    assert (not_in_package, not_in_table) == ([], []), (
        f"in the table but not in dialer/: {not_in_package}; in dialer/ but not in the table: {not_in_table}"
    )


def test_readme_is_short() -> None:
    """README.md stays a short front page; the details live in docs/."""
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"

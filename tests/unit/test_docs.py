"""The README and docs/ say what exists: their links and anchors resolve, the `disco` commands and flags
they quote are in `--help`, and every test docs/reliability.md names exists (file, and function where named)."""

from __future__ import annotations

import functools
import re
import shlex
import sys
from pathlib import Path
from unittest import mock

import pytest
import typer.rich_utils
from typer.testing import CliRunner

from discovery.cli import app

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# On a command's own page, a flag quoted on its own (`--drain-grace`) is that command's.
PAGE_COMMAND = {"docs/watch.md": "watch", "docs/register.md": "register", "docs/registrator.md": "registrator"}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A command line: optional VAR=value assignments, then `disco` (or a path ending in /disco), then its arguments.
INVOCATION = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?disco(?:\s+(?P<args>.*))?$")
COMMAND_NAME = re.compile(r"^[a-z][a-z-]*$")
HELP_OPTION = re.compile(r"^│\s+(?:\*\s+)?(--[\w-]+)(?:\s+(-\w)\b)?")


def split_page(text: str) -> tuple[list[str], list[list[str]]]:
    """Prose lines and code blocks (each a list of lines) of a markdown page."""
    prose: list[str] = []
    blocks: list[list[str]] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if block is None:
                block = []
            else:
                blocks.append(block)
                block = None
        elif block is not None:
            block.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower-case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    prose, _ = split_page(page.read_text())
    for line in prose:
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def broken_links(page: Path) -> list[str]:
    prose, _ = split_page(page.read_text())
    broken = []
    for line in prose:
        for target in LINK.findall(CODE_SPAN.sub(lambda m: m.group(0) if "](" not in m.group(2) else "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)}: {target}"
            if not resolved.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
                broken.append(f"{where} (no such anchor)")
    return broken


@functools.cache
def help_flags(command: str | None) -> frozenset[str] | None:
    """The flags `disco [COMMAND] --help` lists, or None when there is no such command."""
    # Wide enough that no option name is wrapped, whatever the terminal running the tests (Typer reads
    # TERMINAL_WIDTH once at import, into MAX_WIDTH; Rich reads COLUMNS).
    with mock.patch.object(typer.rich_utils, "MAX_WIDTH", 250, create=True):
        result = CliRunner().invoke(app, [*([command] if command else []), "--help"], env={"COLUMNS": "250"})
    if result.exit_code != 0:
        return None
    flags: set[str] = set()
    for line in result.output.splitlines():
        match = HELP_OPTION.match(line)
        if match:
            flags.update(name for name in match.groups() if name)
    assert "--help" in flags, result.output
    return frozenset(flags)


def words(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


def invocation(text: str) -> tuple[str | None, list[str]] | None:
    """(command, flags) of a `disco ...` command line; None when the text is not one (output, prose)."""
    match = INVOCATION.match(text.strip().removeprefix("$ ").strip())
    if not match:
        return None
    args = re.split(r"\s#|\||;|&&", match.group("args") or "")[0]
    tokens = words(args)
    leading = []
    while tokens and tokens[0].startswith("-"):
        leading.append(tokens.pop(0))
    if not tokens:
        return None, leading
    if not COMMAND_NAME.match(tokens[0]):
        return None
    return tokens[0], [token for token in tokens[1:] if re.match(r"^--?[A-Za-z]", token)]


def quoted_commands(page: Path) -> list[tuple[str | None, list[str], str]]:
    """Every `disco` command line in code blocks and code spans, and every flag quoted on its own
    (command None: any disco command's), with the text it came from."""
    prose, blocks = split_page(page.read_text())
    found: list[tuple[str | None, list[str], str]] = []
    own = PAGE_COMMAND.get(str(page.relative_to(REPO)))
    for block in blocks:
        for line in re.sub(r"\s*\\\n\s*", " ", "\n".join(block)).splitlines():
            parsed = invocation(line)
            if parsed:
                found.append((*parsed, line.strip()))
    for line in prose:
        for _, span in CODE_SPAN.findall(line):
            parsed = invocation(span)
            if parsed:
                found.append((*parsed, span))
            elif span.startswith("--"):
                flags = [token for token in words(span) if token.startswith("--")]
                found.append(("?" + own if own else "?", flags, span))
    return found


def unknown_commands_and_flags(page: Path) -> list[str]:
    wrong = []
    every_flag: frozenset[str] = frozenset().union(*(help_flags(name) or frozenset() for name in commands()))
    for command, flags, text in quoted_commands(page):
        where = f"{page.relative_to(REPO)}: `{text}`"
        known: frozenset[str] | None = every_flag
        if command != "?":
            name = command[1:] if command and command.startswith("?") else command
            known = help_flags(name)
        if known is None:
            wrong.append(f"{where}: no command {command!r}")
            continue
        wrong.extend(f"{where}: no flag {flag.split('=')[0]}" for flag in flags if flag.split("=")[0] not in known)
    return wrong


@functools.cache
def commands() -> tuple[str, ...]:
    with mock.patch.object(typer.rich_utils, "MAX_WIDTH", 250, create=True):
        result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"})
    panel = result.output.split("Commands")[1]
    return tuple(re.findall(r"^│ ([a-z][a-z-]*)\s", panel, re.M))


def test_the_help_parser_sees_the_commands_and_their_flags() -> None:
    assert {"watch", "register", "registrator", "plan", "status", "explain", "demo"} <= set(commands())
    assert {"--service", "-s", "--master-socket", "--dry-run", "--help"} <= (help_flags("watch") or set())
    assert {"--version", "--install-completion"} <= (help_flags(None) or set())
    assert help_flags("no-such-command") is None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_quoted_disco_command_and_flag_exists(page: Path) -> None:
    assert unknown_commands_and_flags(page) == []


def test_the_checks_catch_a_broken_link_a_made_up_flag_and_a_made_up_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "watch.md").write_text("# `disco watch`\n\n## Flags\n\nSee [flags](#flags) and `--once`.\n")
    page = docs / "page.md"
    page.write_text(
        "# Page\n\n[ok](watch.md#flags) [gone](missing.md) [bad anchor](watch.md#nope) [self](#page)\n\n"
        "`disco watch --once --no-such-flag` and `disco frobnicate`, `--made-up`, `haproxy -c --whatever`\n\n"
        "```sh\n$ disco register --service web \\\n    --port 8080 --colour red   # --in-a-comment\n"
        "curl --fail http://127.0.0.1/\ndisco demo: 3 of 3 webapps answering through HAProxy\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert broken_links(page) == [
        "docs/page.md: missing.md (no such file)",
        "docs/page.md: watch.md#nope (no such anchor)",
    ]
    assert broken_links(docs / "watch.md") == []
    assert unknown_commands_and_flags(page) == [
        "docs/page.md: `$ disco register --service web --port 8080 --colour red   # --in-a-comment`: no flag --colour",
        "docs/page.md: `disco watch --once --no-such-flag`: no flag --no-such-flag",
        "docs/page.md: `disco frobnicate`: no command 'frobnicate'",
        "docs/page.md: `--made-up`: no flag --made-up",
    ]


def test_every_test_named_in_reliability_md_exists() -> None:
    doc = (REPO / "docs/reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+(?:\[\w+\])?)?)`", doc)
    assert named
    missing = []
    for path, func in named:
        source = REPO / path
        if not source.is_file():
            missing.append(path)
        elif func and f"def {func[2:].split('[')[0]}(" not in source.read_text():
            missing.append(path + func)
    # "`::name`" after a file in the same cell refers to that file.
    for cell in re.findall(r"\| ([^|]*tests/[^|]*) \|\s*$", doc, re.M):
        current = None
        for token in re.findall(r"`([^`]+)`", cell):
            if token.startswith("tests/"):
                current = REPO / token.split("::")[0]
            elif (
                token.startswith("::")
                and current is not None
                and f"def {token[2:].split('[')[0]}(" not in current.read_text()
            ):
                missing.append(f"{current.name}{token}")
    assert missing == []

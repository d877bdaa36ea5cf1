"""The README's shell commands run as written: valid shell, no placeholders, wallet numbers
that pass their own check digit, CLI verbs that exist, API routes that the OpenAPI serves, and
links that stay inside the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer

from coffer.__main__ import app as cli
from coffer.app import create_app
from coffer.wallets.numbers import is_valid_wallet_number

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
ROUTE = re.compile(r"\$API(/[^\s\"'?]*)")


def _commands(block: str) -> list[str]:
    """The block's commands with comments dropped and continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (line.split("  #")[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


COMMANDS = [command for block in BLOCKS for command in _commands(block)]


def test_the_readme_has_shell_blocks() -> None:
    assert len(BLOCKS) >= 5
    assert any("curl" in command for command in COMMANDS)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_is_valid_shell(block: str) -> None:
    result = subprocess.run(
        ["bash", "-n"], input=block, text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_no_command_has_a_placeholder() -> None:
    for command in COMMANDS:
        assert not re.search(r"<[a-z ]+>|…", command), command


def test_every_wallet_number_passes_its_check_digit() -> None:
    numbers = re.findall(r"\b\d{13}\b", README)
    assert numbers
    assert all(is_valid_wallet_number(number) for number in numbers), numbers


def test_every_cli_verb_exists() -> None:
    root = typer.main.get_command(cli)
    for command in COMMANDS:
        for invocation in re.findall(r"\.venv/bin/coffer ([a-z -]+?)(?= --|$|\))", command):
            group: object = root
            for word in invocation.split():
                commands = getattr(group, "commands", {})
                assert word in commands, (invocation, command)
                group = commands[word]


def _method(command: str) -> str:
    words = shlex.split(command.replace("$(", " ").replace(")", " "), posix=True)
    return words[words.index("-X") + 1].lower() if "-X" in words else "get"


def test_every_documented_route_is_served() -> None:
    paths = create_app().openapi()["paths"]
    patterns = {
        re.compile("^/api/v1" + re.sub(r"\{[^}]+\}", "[^/]+", path[len("/api/v1") :]) + "$"): ops
        for path, ops in paths.items()
        if path.startswith("/api/v1")
    }
    seen = 0
    for command in COMMANDS:
        for route in ROUTE.findall(command):
            path = "/api/v1" + re.sub(r"\$[A-Z_]+", "x", route)
            methods = [ops for pattern, ops in patterns.items() if pattern.match(path)]
            assert methods, (route, command)
            assert any(_method(command) in ops for ops in methods), (route, command)
            seen += 1
    assert seen >= 10


def test_links_stay_inside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).is_file(), target
    assert "../" not in README

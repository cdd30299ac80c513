"""docs/cli.md names every command and every exit code the CLI uses."""

from pathlib import Path

import gpubill.cli as cli

DOC = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()


def test_every_command_is_documented():
    missing = [name for name in cli.COMMANDS if f"`gpubill {name}" not in DOC]
    assert not missing, f"undocumented commands: {missing}"


def test_every_exit_code_is_documented():
    codes = {v for k, v in vars(cli).items() if k.startswith("EXIT_")}
    missing = [c for c in codes if f"| {c} |" not in DOC]
    assert not missing, f"undocumented exit codes: {missing}"

"""``citygate completion``: the script a real bash runs completes the CLI's own commands,
options, choices and files, and the tree it is made from is the parser's (every path in it
is a command the CLI takes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.cli.completion import bash_script, command_tree

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What <Tab> offers after *words* (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    prog = (
        f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
        '_citygate; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, cwd=cwd,
                         check=True)  # fmt: skip
    assert out.stderr == ""
    return [line for line in out.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script as the user gets it: from the installed command."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "completion", "bash"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("completion") / "citygate.bash"
    path.write_text(out.stdout)
    return path


def test_commands_subcommands_options_and_choices(script: Path) -> None:
    top = complete(script, "citygate", "")
    assert {"run", "demo", "devices", "chargers", "drones", "import", "completion"} <= set(top)
    assert complete(script, "citygate", "dro") == ["drones"]
    assert {"list", "add"} <= set(complete(script, "citygate", "devices", ""))
    assert "--json" in complete(script, "citygate", "devices", "list", "--")
    assert complete(script, "citygate", "completion", "") == ["bash", "zsh"]
    assert complete(script, "citygate", "import", "x.csv", "--kind", "") == [
        "sensor", "camera", "charger", "bodycam",
    ]  # fmt: skip


def test_json_is_completed_wherever_a_command_takes_it(script: Path) -> None:
    """``--json`` comes from build_parser, not the groups: completion offers it all the same,
    and not where it is not (docs/cli.md's exemptions)."""
    for words in (("token", "list"), ("config", "which"), ("db", "upgrade"), ("audit",),
                  ("tariffs", "quote"), ("drones", "show", "drone-1")):  # fmt: skip
        assert complete(script, "citygate", *words, "--j") == ["--json"], words
    for words in (("run",), ("demo",), ("simulate",), ("completion",)):
        assert "--json" not in complete(script, "citygate", *words, "--"), words


def test_a_global_option_and_its_value_are_skipped(script: Path) -> None:
    assert complete(script, "citygate", "--log-level", "DEBUG", "dro") == ["drones"]
    assert complete(script, "citygate", "--as", "li", "drones", "show", "--j") == ["--json"]


def test_a_file_option_completes_files(script: Path, tmp_path: Path) -> None:
    (tmp_path / "town.toml").write_text("")
    got = complete(script, "citygate", "devices", "list", "--config", "to", cwd=tmp_path)
    assert got == ["town.toml"]


def test_every_path_in_the_tree_is_a_command_the_cli_takes() -> None:
    tree = command_tree(build_parser())
    assert len(tree) > 40
    for path in tree:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*path, "--help"])
        assert done.value.code == 0, path


def test_the_script_is_valid_bash_and_zsh_gets_the_same_function() -> None:
    from gateway.cli.completion import zsh_script

    tree = command_tree(build_parser())
    text = bash_script(tree)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    assert zsh_script(tree).endswith(text) and "bashcompinit" in zsh_script(tree)

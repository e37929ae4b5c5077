"""``citygate import`` in-process on a SQLite file: exit codes (0 imported, 1 rows rejected,
2 usage), the text summary naming row and field, plain progress lines off a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "citygate.toml"
    path.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "cg.db"}"\n', "utf-8")
    return path


def test_exit_codes_and_the_summary(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,site_id\nCP-CLI-2,no-such-site\nCP-CLI-3,cp-dongguan\n", "utf-8")
    assert main(["import", "-c", str(config), str(bad), "--kind", "charger"]) == 1
    out = capsys.readouterr().out
    assert "1 error(s): nothing imported" in out
    assert "error: line 2: site_id: unknown site 'no-such-site'" in out
    assert " added" not in out  # nothing was: what the file would have done is "to add"
    good = tmp_path / "good.csv"
    good.write_text("kind,id,site_id\ncharger,CP-CLI-3,cp-dongguan\n", "utf-8")
    assert main(["import", "-c", str(config), str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing written") and "+ CP-CLI-3" in out
    assert "charger: 1 to add, 0 to change, 0 to retire, 0 unchanged" in out
    assert "password" not in out
    assert main(["import", "-c", str(config), str(good)]) == 0
    captured = capsys.readouterr()
    assert "charger: 1 added" in captured.out and "writing: 1/1 rows (100%)" in captured.err
    assert "password=" in captured.out and "password=" not in captured.err


def test_usage_errors_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "-c", str(config), str(tmp_path / "x.txt")]) == 2
    assert "cannot tell CSV from TOML" in capsys.readouterr().err
    assert main(["import", "-c", str(config), str(tmp_path / "missing.csv")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["import", "-c", str(config), "x.csv", "--kind", "drone"])
    assert exc.value.code == 2

"""Bulk import files, pure: CSV (BOM, Chinese text, empty cells), TOML, the API's own
validation per kind, errors naming the row and the field, duplicates, bounds."""

from __future__ import annotations

import io

import pytest

from gateway.cli.import_cmd import ProgressOut, summary_lines
from gateway.directory.bulk.parse import ImportFileError, Limits, detect_format, parse

LIMITS = Limits(max_bytes=100_000, max_rows=100)


def test_a_csv_with_a_bom_and_chinese_text_reads_typed_rows() -> None:
    data = (
        "\ufeffdev_eui,model,berth_id,heartbeat_s,notes\n"
        "A84041000181AAAA,nwave-nps405,b-1,600,东门 第三排\n"
        "a84041000181aaab,bosch-tps110,,,\n"
    ).encode()
    parsed = parse(data, "csv", LIMITS, "sensor")
    assert parsed.errors == []
    first, second = parsed.rows["sensor"]
    assert first.id == "a84041000181aaaa" and first.where == "line 2"
    assert first.values == {
        "model": "nwave-nps405", "berth_id": "b-1", "heartbeat_s": 600, "notes": "东门 第三排"
    }  # fmt: skip
    assert second.values["berth_id"] is None and second.values["heartbeat_s"] is None
    assert first.given == {"model", "berth_id", "heartbeat_s", "notes"}


def test_errors_name_the_line_and_the_field() -> None:
    data = (
        b"dev_eui,model,heartbeat_s\n"
        b"a84041000181aaaa,nwave-nps405,600\n"
        b"not-hex,nwave-nps405,600\n"
        b"a84041000181aaac,no-such-codec,-5\n"
    )
    parsed = parse(data, "csv", LIMITS, "sensor")
    got = {(e.row, e.field) for e in parsed.errors}
    assert got == {("line 3", "dev_eui"), ("line 4", "heartbeat_s")}
    # the codec is checked only once the model's own rules pass; then it is an error too
    parsed = parse(b"dev_eui,model\na84041000181aaac,no-such-codec\n", "csv", LIMITS, "sensor")
    assert [(e.row, e.field) for e in parsed.errors] == [("line 2", "model")]


def test_an_unknown_column_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ImportFileError, match="unknown column 'colour'; the columns are: b"):
        parse(b"dev_eui,model,colour\na84041000181aaaa,nwave-nps405,red\n", "csv", LIMITS,
              "sensor")  # fmt: skip
    with pytest.raises(ImportFileError, match=r"unknown column '\{\}'"):
        parse(b"{}", "csv", LIMITS, "sensor")  # a JSON body sent as CSV


def test_a_toml_key_that_is_no_field_is_an_error_of_that_table() -> None:
    parsed = parse(b"[[sensors]]\ndev_eui = 'a84041000181aaaa'\nmodel = 'nwave-nps405'\n"
                   b"colour = 'red'\n", "toml", LIMITS)  # fmt: skip
    assert [(e.row, e.field) for e in parsed.errors] == [("sensors[1]", "colour")]


def test_a_duplicate_id_in_the_file_names_both_rows() -> None:
    data = b"dev_eui,model\na84041000181aaaa,nwave-nps405\nA84041000181AAAA,bosch-tps110\n"
    parsed = parse(data, "csv", LIMITS, "sensor")
    assert [(e.row, e.field) for e in parsed.errors] == [("line 3", "dev_eui")]
    assert "line 2" in parsed.errors[0].message


def test_a_kind_column_mixes_kinds_and_a_line_with_too_few_cells_is_named() -> None:
    data = (
        b"kind,id,site_id,vendor,dev_eui,model\n"
        b"camera,cam-1,cp-a,hikvision,,\n"
        b"sensor,,,,a84041000181aaaa,nwave-nps405\n"
        b"sensor,x\n"
        b"drone,,,,,\n"
    )
    parsed = parse(data, "csv", LIMITS)
    # the camera row gives empty dev_eui/model columns: those are not the camera's fields
    assert {(e.row, e.field) for e in parsed.errors} >= {("line 4", "row"), ("line 5", "kind")}


def test_toml_tables_per_kind_index_their_rows() -> None:
    data = b"""
[[chargers]]
id = "CP-1"
site_id = "cp-a"
power_kw = 60
current = "DC"
password = "a-password-of-twenty"

[[chargers]]
id = "CP-2"
power_kw = "lots"

[[bodycams]]
id = "62072500081380000601"
officer_id = "of-001"
password = "typed-on-cam"
"""
    parsed = parse(data, "toml", LIMITS)
    assert [(e.row, e.field) for e in parsed.errors][:1] == [("chargers[2]", "power_kw")]
    assert {e.row for e in parsed.errors} == {"chargers[2]"}
    (charger,) = parsed.rows["charger"]
    assert charger.values["power_kw"] == 60 and charger.secret == "a-password-of-twenty"
    assert "password" not in charger.values
    (cam,) = parsed.rows["bodycam"]
    assert cam.secret == "typed-on-cam" and "password" not in cam.values


def test_a_bad_secret_is_named_without_its_value() -> None:
    data = b"id,site_id,password\nCP-1,cp-a,short\n"
    parsed = parse(data, "csv", LIMITS, "charger")
    assert [(e.row, e.field) for e in parsed.errors] == [("line 2", "password")]
    assert "short" not in parsed.errors[0].message


@pytest.mark.parametrize(
    ("data", "fmt", "match"),
    [
        (b"\xff\xfe\x00garbage", "csv", "not UTF-8"),
        (b"a,b\x00\n", "csv", "NUL"),
        (b'a,"b\n', "csv", "not CSV"),
        (b"[[sensors]\n", "toml", "not valid TOML"),
        (b"[[drones]]\nid = 1\n", "toml", "unknown table"),
        (b"sensors = 3\n", "toml", "array of tables"),
        (b"dev_eui,model\n", "csv", "no rows of kind sensor"),
        (b"", "toml", "no rows"),
    ],
)
def test_files_that_cannot_be_read_are_refused_whole(data: bytes, fmt: str, match: str) -> None:
    with pytest.raises(ImportFileError, match=match):
        parse(data, fmt, LIMITS, "sensor")  # type: ignore[arg-type]


def test_bounds_on_bytes_and_rows() -> None:
    rows = "".join(f"a84041000181{n:04x},nwave-nps405\n" for n in range(101))
    data = ("dev_eui,model\n" + rows).encode()
    with pytest.raises(ImportFileError, match="more than 100 rows"):
        parse(data, "csv", LIMITS, "sensor")
    with pytest.raises(ImportFileError, match="bytes"):
        parse(data, "csv", Limits(max_bytes=100, max_rows=1000), "sensor")


def test_a_csv_without_a_kind_is_refused() -> None:
    with pytest.raises(ImportFileError, match="which kind"):
        parse(b"dev_eui,model\n", "csv", LIMITS)


def test_formats_by_content_type_or_name() -> None:
    assert detect_format("", "text/csv; charset=utf-8") == "csv"
    assert detect_format("", "application/toml") == "toml"
    assert detect_format("x.TOML") == "toml"
    with pytest.raises(ImportFileError):
        detect_format("", "application/json")
    with pytest.raises(ImportFileError):
        detect_format("x.txt")


def test_a_bar_on_a_terminal_and_plain_lines_elsewhere() -> None:
    tty = io.StringIO()
    bar = ProgressOut(tty, tty=True)
    for n in range(0, 101, 10):
        bar(n, 100)
    assert tty.getvalue().startswith("\rwriting [") and tty.getvalue().endswith("100/100\n")
    plain = io.StringIO()
    lines = ProgressOut(plain, tty=False)
    for n in range(1001):
        lines(n, 1000)
    assert plain.getvalue().splitlines()[-1] == "writing: 1000/1000 rows (100%)"
    assert len(plain.getvalue().splitlines()) == 11 and "\r" not in plain.getvalue()


def test_the_summary_never_shows_a_hidden_field() -> None:
    doc = {"errors": [], "dry_run": True, "rows": 1, "summary": {"camera": {
        "added": 0, "changed": 1, "retired": 0, "unchanged": 0}}, "added": {},
        "changed": {"camera": [{"id": "c", "fields": {"secret": ["(hidden)", "(hidden)"]}}]},
        "retired": {}, "notes": [], "secrets": []}  # fmt: skip
    assert "  ~ c: secret: '(hidden)' -> '(hidden)'" in summary_lines(doc)

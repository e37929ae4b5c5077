"""The web page's pure parts: the map's geometry, the form parser, CSRF and where a login may
send a person on; and the posted tariff narrowed to one site."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gateway.services.parking.quotes import load_book
from gateway.web import assets, geo
from gateway.web.session import (
    HOME,
    MAX_FORM_BYTES,
    FormError,
    csrf_ok,
    new_csrf,
    parse_form,
    safe_next,
    token_shaped,
)
from parking.tariffs import summary

FORM = "application/x-www-form-urlencoded"


def test_frame_keeps_north_up_and_the_ground_shape() -> None:
    pts = [(101.07, 38.77), (101.09, 38.79)]
    f = geo.frame_of(pts)
    west, north = f.xy(f.west, f.north)
    east, south = f.xy(f.east, f.south)
    assert (west, north) == (0, 0) and east == geo.WIDTH and south == f.height
    x1, y1 = f.xy(*pts[0])
    x2, y2 = f.xy(*pts[1])
    assert x2 > x1 and y2 < y1  # east is right, north is up
    # 0.02 deg of longitude at 38.78 N is ~0.78 of 0.02 deg of latitude on the ground
    assert (x2 - x1) / (y1 - y2) == pytest.approx(0.7792, rel=0.01)
    assert all(f.contains(*p) for p in pts) and not f.contains(101.2, 38.78)


def test_frame_of_one_point_and_of_none() -> None:
    f = geo.frame_of([(101.0, 38.0)])
    assert f.east > f.west and f.north > f.south and f.height > 0
    with pytest.raises(ValueError, match="at least one point"):
        geo.frame_of([])


def test_paths_and_street_lines() -> None:
    f = geo.frame_of([(0.0, 0.0), (0.01, 0.01)])
    d = geo.path_d(f, [(0.0, 0.0), (0.01, 0.0), (0.01, 0.01)], closed=True)
    assert d.startswith("M") and d.count("L") == 2 and d.endswith(" Z")
    assert geo.path_d(f, []) == ""
    # berths along an east-west street, given out of order
    berths = [(0.003, 0.001), (0.001, 0.0011), (0.002, 0.0009)]
    assert geo.street_line(berths) == sorted(berths)
    north_south = [(0.0, 0.3), (0.0001, 0.1), (0.0, 0.2)]
    assert [p[1] for p in geo.street_line(north_south)] == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("free", "capacity", "unknown", "level"),
    [(5, 10, 0, "free"), (0, 10, 0, "full"), (0, 10, 10, "unknown"), (1, 20, 0, "low"),
     (2, 20, 0, "free"), (0, 0, 0, "unknown"), (0, 10, 9, "full")],
)  # fmt: skip
def test_fill_level(free: int, capacity: int, unknown: int, level: str) -> None:
    assert geo.fill_level(free, capacity, unknown) == level


def test_parse_form() -> None:
    assert parse_form(b"a=1&b=%E5%81%9C+x&c=", FORM) == {"a": "1", "b": "停 x", "c": ""}
    assert parse_form(b"", f"{FORM}; charset=utf-8") == {}


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"a=1", "application/json", 415),
        (b"a=1", None, 415),
        (b"a=" + b"x" * MAX_FORM_BYTES, FORM, 413),
        (b"&".join(b"f%d=1" % i for i in range(17)), FORM, 413),
        (b"a=%FF", FORM, 400),
        ("a=停".encode(), FORM, 400),
        (b"a=1&a=2", FORM, 400),
        (b"a=%00", FORM, 422),
        (b"a\x00=1", FORM, 422),
        (b"%00=1", FORM, 422),
    ],
)
def test_parse_form_refuses(body: bytes, ctype: str | None, status: int) -> None:
    with pytest.raises(FormError) as err:
        parse_form(body, ctype)
    assert err.value.status == status and err.value.message


def test_csrf() -> None:
    a, b = new_csrf(), new_csrf()
    assert a != b and len(a) >= 43
    assert csrf_ok(a, a) and not csrf_ok(a, b)
    for cookie, field in ((None, a), (a, None), ("", ""), ("short", "short"), (a + "!", a + "!")):
        assert not csrf_ok(cookie, field)


@pytest.mark.parametrize(
    ("target", "to"),
    [
        ("/web/tariffs", "/web/tariffs"),
        ("/web/map", "/web/map"),
        (None, HOME),
        ("", HOME),
        ("https://evil.example/web/", HOME),
        ("//evil.example/web/", HOME),
        ("/web/\\evil", HOME),
        ("/api/v1/sites", HOME),
        ("/web/static/x/y", HOME),
        ("/web/map\r\nSet-Cookie: x", HOME),
        ("/web/" + "a" * 300, HOME),
    ],
)
def test_safe_next(target: str | None, to: str) -> None:
    assert safe_next(target) == to


def test_token_shaped() -> None:
    assert token_shaped("cg_abc_def")
    assert not token_shaped(None) and not token_shaped("garbage") and not token_shaped("cg__x")


def test_assets_are_hashed_and_versioned() -> None:
    for name, asset in assets.ASSETS.items():
        assert asset.url == f"/web/static/{asset.digest}/{name}" and len(asset.digest) == 16
        assert assets.find(asset.digest, name) is asset
        assert assets.find("0" * 16, name) is None
    assert assets.ASSETS["htmx.min.js"].body.startswith(b"var htmx=")
    vendored = assets.ASSETS["VENDORED.txt"].body.decode()
    assert "htmx.org          2.0.11" in vendored and "htmx-ext-sse      2.2.4" in vendored


def test_a_sites_posted_tariff_is_its_class_and_its_own_rules() -> None:
    v = load_book(None, ZoneInfo("Asia/Shanghai")).versions[-1]
    whole = summary(v, "zh")
    mine = summary(v, "zh", "A", "cp-shiminting")
    other = summary(v, "zh", "B", "st-nowhere")
    assert "A类：" in mine and "B类：" not in mine and "C类：" not in mine
    assert "市民大厅停车场：" in mine and "浙宁商厦停车场：" not in mine
    assert "B类：" in other and "停车场：每次停车前" not in other
    assert len(mine) < len(whole) and mine.splitlines()[0] == whole.splitlines()[0]
    en = summary(v, "en", "A", "cp-zhening")
    assert "Class A:" in en and "浙宁商厦停车场: the first" in en and "市民大厅停车场:" not in en


def test_every_asset_and_template_ships_in_the_wheel() -> None:
    """pyproject's package-data for gateway.web names every file the page serves or renders."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["gateway.web"]
    base = root / "gateway" / "web"
    files = [
        p.relative_to(base).as_posix()
        for d in ("static", "templates")
        for p in (base / d).iterdir()
    ]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files
    assert set(assets.FILES.values()) <= {f.removeprefix("static/") for f in files}


def test_the_stylesheet_is_well_formed() -> None:
    """Every block closes where it should: a lost ``}`` once put every rule after a phone-width
    ``@media`` block inside it (the cases' stepper lost its layout on a desktop)."""
    from importlib import resources

    css = resources.files("gateway.web").joinpath("static", "web.css").read_text("utf-8")
    depth, media_opened_at = 0, None
    for n, line in enumerate(css.splitlines(), 1):
        code = line.split("/*")[0]
        if code.lstrip().startswith("@media"):
            assert depth == 0, f"line {n}: @media inside a block"
            media_opened_at = n
        depth += code.count("{") - code.count("}")
        assert 0 <= depth <= (2 if media_opened_at else 1), f"line {n}: nesting {depth}"
        if depth == 0:
            media_opened_at = None
        if code.startswith(("/*", ".", "table", "form", "h", "#")) and media_opened_at:
            raise AssertionError(
                f"line {n}: a top-level rule inside the @media of line {media_opened_at}"
            )
    assert depth == 0

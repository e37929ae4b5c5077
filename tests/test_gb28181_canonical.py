"""The canonical MANSCDP reading means what ``parse_manscdp`` means: over generated canonical
Keepalive and MobilePosition bodies and perturbations of them (attributes, whitespace,
entities, comments, a DOCTYPE, other encodings, fields missing, repeated, reordered or
renamed), whatever ``canonical_manscdp`` accepts the general way reads to the very same
message; what it does not accept falls through to ``quick_manscdp`` / ``parse_manscdp``, which
still refuse XML bombs. And the bodies cams send do take it (else it would be dead code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gb28181.canonical import canonical_manscdp
from drivers.gb28181.device import Fix, keepalive_body, mobile_position_body
from drivers.gb28181.manscdp import parse_manscdp
from drivers.gb28181.quick import quick_manscdp
from drivers.gb28181.xmlsafe import ManscdpError, XmlLimits

TZ = ZoneInfo("Asia/Shanghai")
CAM = "62072500081380000001"
T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DECLS = [
    '<?xml version="1.0" encoding="GB2312"?>\r\n',
    '<?xml version="1.0" encoding="GB18030"?>\r\n',
    '<?xml version="1.0" encoding="UTF-8"?>\r\n',
    "",
    '<?xml version="1.0" encoding="gb2312"?>\r\n',
    '<?xml version="1.0"?>\r\n',
    "<?xml version='1.0' encoding='GB2312'?>\r\n",
    '<?xml version="1.0" encoding="UTF-16"?>\r\n',
    '<?xml version="1.0" encoding="ISO-8859-1"?>\r\n',
    '<?xml version="1.0" encoding="x-unknown"?>\r\n',
    '<?xml version="1.0" encoding="GB2312"?>',
    '<?xml version="1.0" encoding="GB2312" standalone="yes"?>\r\n',
]
VALID_NUMBERS = st.one_of(
    st.sampled_from(  # around every bound
        [
            "90",
            "90.000001",
            "-90",
            "-90.5",
            "180",
            "180.5",
            "-180.000001",
            "1000",
            "1000.5",
            "360",
            "360.1",
            "-1000",
            "-1000.1",
            "20000",
            "20000.1",
            "-0.5",
            "0",
            "-0.0",
        ]
    ),
    st.floats(-90, 90, allow_nan=False).map(lambda f: f"{f:.6f}"),
    st.floats(0, 360, allow_nan=False).map(lambda f: f"{f:.1f}"),
    st.integers(0, 90).map(str),
)
ANY_NUMBERS = st.one_of(
    st.sampled_from(
        [
            "101.07",
            "38.770000",
            "0",
            "0.0",
            "-0",
            "-1",
            "12.5",
            "400",
            "1e3",
            "nan",
            "inf",
            "",
            " 7",
            "7 ",
            "+1",
            ".5",
            "5.",
            "1000",
            "1000.0000001",
            "360",
            "-1000",
            "20000",
            "180",
            "-180.000000",
            "90",
            "90.1",
            "00012",
            "1234567",
            "1.1234567890123",
        ]
    ),
    st.floats(-200, 200, allow_nan=False).map(lambda f: f"{f:.6f}"),
    st.floats(-2000, 21000, allow_nan=False).map(lambda f: f"{f:.1f}"),
    st.integers(-2000, 21000).map(str),
)
VALID_TIME = st.datetimes(datetime(2001, 1, 1), datetime(2098, 1, 1)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")
)
ANY_TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-12-02T16:00:05",
            "2026-12-02 16:00:05",
            "2026-12-02T16:00:05.123",
            "1999-12-31T23:59:59",
            "2000-01-01T07:59:59",
            "2000-01-01T08:00:00",
            "2099-12-31T23:59:59",
            "2100-01-01T08:00:00",
            "2026-13-40T00:00:00",
            "2026-02-30T00:00:00",
            "2026-12-02T24:00:00",
            "2026-12-02T16:00:05+08:00",
            "2026-12-02T08:00:05Z",
            "",
            "0000-01-01T00:00:00",
        ]
    ),
    st.datetimes(datetime(1990, 1, 1), datetime(2110, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")
    ),
)
PERTURBATIONS = [
    " ", "\t", "\r\n", "\n", ' a="1"', "&amp;", "&#49;", "&lt;", "<!-- c -->",
    "<![CDATA[1]]>", "<!DOCTYPE Notify>", "<X>1</X>\r\n", "<Status>OK</Status>\r\n",
    "<SN>3</SN>\r\n", "<Speed>1</Speed>\r\n", "\x00", "\x7f", "\xe9", "\u4e2d", "<", ">",
    "/", "0", "9", "-", ".", "e", "T", "</Notify>", "<Notify>", "<?pi x?>", "\ufeff",
]  # fmt: skip


def _mostly(valid: st.SearchStrategy[str], other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """*valid* four times in five (so that whole bodies are often valid), else *other*."""
    return st.integers(0, 4).flatmap(lambda i: other if i == 0 else valid)


NUMBERS = _mostly(VALID_NUMBERS, ANY_NUMBERS)
TIMES = _mostly(VALID_TIME, ANY_TIMES)


@st.composite
def canonical_bodies(draw: st.DrawFn) -> str:
    """A body in the canonical shape (values anything plausible or not)."""
    sn = draw(
        _mostly(
            st.integers(0, 10**18 - 1).map(str),
            st.sampled_from(["007", "9" * 18, "9" * 19, "1" + "0" * 18, "x", "", "-1"]),
        )
    )
    dev = draw(_mostly(st.just(CAM), st.sampled_from(["6207250008138000000", CAM + "1", ""])))
    if draw(st.booleans()):
        cmd = _mostly(st.just("Keepalive"), st.sampled_from(["keepalive", "KeepAlive"]))
        fields = [("CmdType", draw(cmd))]
        fields += [("SN", sn), ("DeviceID", dev)]
        if draw(st.booleans()):
            fields.append(("Status", draw(st.sampled_from(["OK", "ok", "Error", "", "O K"]))))
    else:
        cmd = _mostly(st.just("MobilePosition"), st.just("mobileposition"))
        fields = [("CmdType", draw(cmd))]
        fields += [("SN", sn), ("DeviceID", dev), ("Time", draw(TIMES))]
        fields += [("Longitude", draw(NUMBERS)), ("Latitude", draw(NUMBERS))]
        for name in ("Speed", "Direction", "Altitude"):
            if draw(st.booleans()):
                fields.append((name, draw(NUMBERS)))
    inner = "".join(f"<{k}>{v}</{k}>\r\n" for k, v in fields)
    decl = draw(_mostly(st.sampled_from(DECLS[:4]), st.sampled_from(DECLS)))
    end = draw(st.sampled_from(["\r\n", "", "\n", "\r\n\r\n"]))
    return f"{decl}<Notify>\r\n{inner}</Notify>{end}"


@st.composite
def perturbed_bodies(draw: st.DrawFn) -> bytes:
    text = draw(canonical_bodies())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "swap_lines", "case", "dup_line"]))
        if how == "insert":
            text = text[:at] + draw(st.sampled_from(PERTURBATIONS)) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif how == "case":
            text = text[:at] + text[at : at + 8].swapcase() + text[at + 8 :]
        else:
            lines = text.split("\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if how == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            text = "\r\n".join(lines)
    encoding = draw(st.sampled_from(["ascii", "ascii", "utf-8", "gb18030", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


def _agrees(body: bytes) -> bool:
    """Whether the canonical reading took *body*; when it did, ``parse_manscdp`` (under any
    charset the Content-Type might declare) reads the very same message."""
    fast = canonical_manscdp(body, TZ)
    if fast is None:
        return False
    for charset in (None, "GB2312", "utf-8"):
        try:
            general = parse_manscdp(body, charset, tz=TZ)
        except ManscdpError as exc:
            pytest.fail(f"the canonical reading took a body the general way refuses: {exc}")
        assert fast == general
    assert quick_manscdp(body, TZ) == fast  # the lane's entry takes it the same way
    return True


@given(body=canonical_bodies())
@settings(max_examples=1500, deadline=None)
def test_canonical_bodies_read_as_the_general_way_reads_them(body: str) -> None:
    _agrees(body.encode("ascii", errors="replace"))


@given(body=perturbed_bodies())
@settings(max_examples=1500, deadline=None)
def test_perturbed_bodies_are_left_to_the_general_way_or_read_the_same(body: bytes) -> None:
    _agrees(body)


@given(data=st.binary(max_size=400), cut=st.integers(0, 420), junk=st.binary(max_size=6))
@settings(max_examples=400, deadline=None)
def test_mutated_bytes_never_raise_and_still_agree(data: bytes, cut: int, junk: bytes) -> None:
    base = _BODIES[cut % len(_BODIES)]
    for sample in (data, base[:cut] + junk + base[cut + len(junk) :]):
        _agrees(sample)


def _fix(i: int, lon: float = 101.07, lat: float = 38.77) -> Fix:
    return Fix(T0 + timedelta(seconds=i), lon, lat, 12.5, 90.0, 1500.0)


_BODIES = [
    keepalive_body(1, CAM),
    keepalive_body(2, CAM, status="ERROR"),
    mobile_position_body(3, CAM, _fix(1), TZ),
    mobile_position_body(4, CAM, _fix(2, -179.999999, -89.5), TZ),
    mobile_position_body(5, CAM, _fix(3, 0.0, 0.0), TZ),  # no fix: no position
]


def test_the_bodies_cams_send_take_the_canonical_reading() -> None:
    for body in _BODIES:
        assert _agrees(body), body
    assert canonical_manscdp(_BODIES[2], TZ) == canonical_manscdp(_BODIES[2], TZ)  # remembered
    big = XmlLimits(max_bytes=len(_BODIES[0]) - 1)
    assert canonical_manscdp(_BODIES[0], TZ, big) is None  # the size limit holds here too


BILLION_LAUGHS = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<!DOCTYPE Notify [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\r\n'
    "<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>1</SN>\r\n"
    f"<DeviceID>{CAM}</DeviceID>\r\n<Status>&lol3;</Status>\r\n</Notify>\r\n"
).encode()
EXTERNAL = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n'
    '<!DOCTYPE Notify [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\r\n'
    "<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>1</SN>\r\n"
    f"<DeviceID>{CAM}</DeviceID>\r\n<Status>&xxe;</Status>\r\n</Notify>\r\n"
).encode()


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL], ids=["billion_laughs", "external"])
def test_bombs_in_the_canonical_shape_fall_through_and_are_refused(bomb: bytes) -> None:
    assert canonical_manscdp(bomb, TZ) is None
    assert quick_manscdp(bomb, TZ) is None
    with pytest.raises(ManscdpError):
        parse_manscdp(bomb, tz=TZ)

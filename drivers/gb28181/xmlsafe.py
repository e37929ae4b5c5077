"""MANSCDP bytes to an element tree, safely, and case-insensitive lookups in it.

Why the stdlib parser is safe here (no defusedxml): every XML bomb needs a DTD. Billion
laughs and quadratic blow-up declare internal entities; XXE declares an external one. A
document carrying ``<!DOCTYPE`` or ``<!ENTITY`` anywhere in its decoded text is refused
before parsing (``dtd_refused``), and the expat parser built here refuses a doctype and any
entity declaration again from its handlers, never parses parameter entities and fetches
nothing. Without a DTD only the five predefined entities and character references exist, so
the text cannot grow past the input. Size is bounded before decoding, depth and element count
while parsing (a deep document is stopped at the first element too deep, not after).

A plain document (no DTD, comment, CDATA, PI or namespace declaration, and fewer possible
elements than the depth limit: every Keepalive and position) cannot break either bound, and is
built by the C parser and tree builder without the counting callbacks; anything else goes the
careful way above, and so does a plain document the C parser refuses.

Encoding: devices declare GB2312, GBK or GB18030 (in Content-Type or the XML declaration)
and send whatever their firmware has; GB18030 is a superset of both, so all three are decoded
as gb18030. The declaration is then removed, because expat accepts no multi-byte encoding
of its own and the text handed to it is already decoded.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from xml.parsers import expat

__all__ = [
    "DEFAULT_LIMITS",
    "ManscdpError",
    "XmlLimits",
    "child",
    "children",
    "decode_body",
    "find",
    "local",
    "parse_xml",
    "text",
]


class ManscdpError(ValueError):
    """A MANSCDP body refused; ``reason`` is short and machine-readable (a metric label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class XmlLimits:
    """Bounds on one body. A Catalog part carries a few items of ~20 fields each."""

    max_bytes: int = 64 * 1024
    max_depth: int = 16
    max_elements: int = 8192


DEFAULT_LIMITS = XmlLimits()

_GB = {"gb2312", "gbk", "gb18030", "cp936", "ms936", "windows936", "euccn", "xeuccn"}
_GB |= {"xgbk", "csgb2312", "gb231280", "csgbk", "chinese"}
_UTF8 = {"utf8", "unicode11utf8"}
_DECL = re.compile(rb"\A\s*<\?xml\s[^>]{0,300}?\?>")
_DECL_ENC = re.compile(rb"""encoding\s*=\s*["']([^"']{0,40})["']""")
_DTD = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DECL_TEXT = re.compile(r"\A\s*<\?xml\s[^>]{0,300}?\?>")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _norm_charset(name: str | bytes | None) -> str | None:
    if name is None:
        return None
    s = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    if "charset=" in s.lower():  # a whole Content-Type was passed
        s = s[s.lower().index("charset=") + 8 :].split(";", 1)[0]
    s = re.sub(r"[^a-z0-9]", "", s.strip().strip("\"'").lower())
    return s or None


def _codec_for(name: str | None) -> str | None:
    """The codec to try first for a declared charset; None for undeclared or unknown."""
    if name is None:
        return None
    if name in _GB:
        return "gb18030"
    if name in _UTF8:
        return "utf-8"
    if name in {"usascii", "ascii"}:
        return "ascii"
    if name in {"iso88591", "latin1"}:
        return "latin-1"
    return None


def decode_body(body: bytes, charset: str | None = None) -> str:
    """The body as text: the declared charset (header first, then the XML declaration)
    decides, GB2312/GBK/GB18030 all as gb18030; undeclared or unknown tries UTF-8 then
    gb18030 (Chinese firmware often declares nothing and sends GBK)."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            try:
                return body[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                raise ManscdpError("bad_encoding", codec) from None
    declared: str | None = None
    m = _DECL.match(body)
    if m is not None:
        e = _DECL_ENC.search(m.group(0))
        declared = _norm_charset(e.group(1)) if e else None
    first = _codec_for(_norm_charset(charset)) or _codec_for(declared)
    order = [first] if first else []
    order += [c for c in ("utf-8", "gb18030") if c not in order]
    for codec in order:
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            continue
    raise ManscdpError("bad_encoding", "neither the declared charset, UTF-8 nor GB18030")


class _Element(ET.Element):
    """An element of a parsed body: its children are indexed by local name the first time
    one is looked up (a message's fields are read by name a dozen times; a scan of every
    child per lookup was most of the parse)."""

    __slots__ = ("by_name",)
    by_name: dict[str, list[ET.Element]]


def _index(el: ET.Element) -> dict[str, list[ET.Element]] | None:
    """The children of *el* by local name (first come first), for parsed elements."""
    if not isinstance(el, _Element):
        return None  # built elsewhere: scanned
    try:
        return el.by_name
    except AttributeError:
        index: dict[str, list[ET.Element]] = {}
        for c in el:
            index.setdefault(local(c.tag), []).append(c)
        el.by_name = index
        return index


class _Builder:
    """Expat callbacks into a TreeBuilder, counting depth and elements as they arrive."""

    def __init__(self, limits: XmlLimits) -> None:
        self.tb = ET.TreeBuilder(element_factory=_Element)
        self.limits = limits
        self.depth = 0
        self.count = 0

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        self.count += 1
        if self.depth > self.limits.max_depth:
            raise ManscdpError("too_deep", f"more than {self.limits.max_depth} levels")
        if self.count > self.limits.max_elements:
            raise ManscdpError("too_many_elements", f"more than {self.limits.max_elements}")
        self.tb.start(tag, attrs)

    def end(self, tag: str) -> None:
        self.depth -= 1
        self.tb.end(tag)


def _plain(doc: str, limits: XmlLimits) -> bool:
    """True when *doc* cannot break the depth or element limits, whatever it holds: no
    ``<!`` or ``<?`` (a DTD, comment, CDATA or PI: the only places a ``<`` can be other than
    a tag), so every ``<`` that does not start ``</`` may start an element, and there are
    no more of those than the depth limit; and no namespace declaration (read as the
    careful parser reads it, below). A Keepalive or a position is such a document."""
    if "<!" in doc or "<?" in doc or "xmlns" in doc:
        return False
    return doc.count("<") - doc.count("</") <= min(limits.max_depth, limits.max_elements)


def _parse_plain(data: bytes) -> ET.Element | None:
    """A plain document (``_plain``) by the C parser and tree builder, which need no
    counting there; None when it refuses it (the careful parser then says why: the same
    refusal, counted the same)."""
    try:
        # safe without defusedxml: no DTD got here (refused above), so no entity either
        target = ET.TreeBuilder(element_factory=_Element)
        p = ET.XMLParser(target=target, encoding="utf-8")  # noqa: S314
        p.feed(data)
        root: ET.Element = p.close()
    except Exception:  # ParseError, an unbound prefix, bad bytes: the careful path decides
        return None
    return root


def _refuse(*_: object) -> None:
    raise ManscdpError("dtd_refused", "DTD or entity declaration")


def parse_xml(
    body: bytes, charset: str | None = None, *, limits: XmlLimits = DEFAULT_LIMITS
) -> ET.Element:
    """The root element of a MANSCDP body; ``ManscdpError`` for anything refused."""
    if len(body) > limits.max_bytes:
        raise ManscdpError("too_large", f"{len(body)} bytes > {limits.max_bytes}")
    doc = decode_body(body, charset)
    if _DTD.search(doc):
        raise ManscdpError("dtd_refused", "DTD or entity declaration")
    doc = _DECL_TEXT.sub("", doc, count=1)
    data = doc.encode("utf-8", "surrogatepass")
    if _plain(doc, limits):
        root = _parse_plain(data)
        if root is not None:
            return root
    b = _Builder(limits)
    p = expat.ParserCreate(encoding="utf-8")
    p.StartElementHandler = b.start
    p.EndElementHandler = b.end
    p.CharacterDataHandler = b.tb.data
    p.buffer_text = True
    p.StartDoctypeDeclHandler = _refuse
    p.EntityDeclHandler = _refuse
    p.UnparsedEntityDeclHandler = _refuse
    p.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        p.Parse(data, True)
        root = b.tb.close()
    except expat.ExpatError as exc:
        raise ManscdpError("bad_xml", str(exc)[:120]) from None
    except (UnicodeError, ValueError, AssertionError) as exc:
        if isinstance(exc, ManscdpError):
            raise
        raise ManscdpError("bad_xml", type(exc).__name__) from None
    return root


@lru_cache(maxsize=2048)  # few distinct names in practice; bounded for the rest
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def local(tag: object) -> str:
    """An element's name without namespace or prefix, lower-cased (tags arrive in any case)."""
    return _local(tag) if isinstance(tag, str) else ""


def children(el: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """The children of *el* named *name*, in any case."""
    if el is None:
        return
    want = name.lower()
    index = _index(el)
    if index is not None:
        yield from index.get(want, ())
        return
    for c in el:
        if local(c.tag) == want:
            yield c


def child(el: ET.Element | None, *names: str) -> ET.Element | None:
    """The first child of *el* named any of *names* (in that order of preference)."""
    if el is None:
        return None
    index = _index(el)
    if index is not None:
        for name in names:
            named = index.get(name.lower())
            if named:
                return named[0]
        return None
    for name in names:
        found = next(children(el, name), None)
        if found is not None:
            return found
    return None


def find(el: ET.Element | None, path: str) -> ET.Element | None:
    """A descendant by a slash path of names (``"Info/AlarmType"``), in any case."""
    for part in path.split("/"):
        el = child(el, part)
    return el


def text(el: ET.Element | None, *names: str, limit: int = 256) -> str | None:
    """The stripped text of the first child named any of *names*; None if absent or empty.
    Longer than *limit* is cut (bounded strings downstream)."""
    c = child(el, *names) if names else el
    if c is None or c.text is None:
        return None
    t = c.text.strip()
    return t[:limit] if t else None

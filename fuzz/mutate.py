"""Strategies that turn real valid samples into near-valid hostile input.

Bytes: flips, cuts, splices with another sample, duplicated or removed spans, inserted
tokens (protocol punctuation, huge lengths, invalid UTF-8, deep nesting) and long repeats.
JSON: fields removed, duplicated, renamed or given a value of the wrong type (huge numbers,
NaN text, deep nesting, long strings), then optionally damaged as bytes. XML: the same byte
damage plus DTDs with entity expansion, external entities, CDATA and deep nesting.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "BYTE_TOKENS",
    "JSON_TOKENS",
    "TOML_TOKENS",
    "XML_TOKENS",
    "hostile_bytes",
    "hostile_json",
    "hostile_text",
    "mostly",
    "mutated_bytes",
    "mutated_json",
    "mutated_lines",
]

# Tokens every format gets: separators, NUL, invalid UTF-8, BOMs, huge and negative numbers.
BYTE_TOKENS: tuple[bytes, ...] = (
    b"\r\n", b"\n", b"\r", b" ", b"\t", b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf",
    b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b":", b";", b",", b"=", b'"',
    b"'", b"\\", b"/", b"<", b">", b"&", b"%", b"0", b"-1", b"4294967296",
    b"18446744073709551616", b"99999999999999999999999999999999", b"1e999", b"-0", b"NaN",
    b"\xe7\x94\xb2",  # 甲
)  # fmt: skip
JSON_TOKENS: tuple[bytes, ...] = (
    b"{", b"}", b"[", b"]", b'":', b"null", b"true", b"false", b"Infinity", b"-Infinity",
    b"1.7976931348623157e309", b'"\\ud800"', b'"\\u0000"', b"[" * 2000, b'{"a":' * 1500,
    b"[" * 100_000,
)  # fmt: skip
XML_TOKENS: tuple[bytes, ...] = (
    b"<?xml version=\"1.0\"?>", b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.0" encoding="bogus"?>', b'<?xml version="1.0" encoding="GB2312"?>',
    b"<!DOCTYPE a [<!ENTITY e \"x\">]>",
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>',
    b'<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', b"&lol3;", b"&xxe;", b"&amp;",
    b"&#0;", b"&#x110000;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"</", b"/>", b"<a>" * 3000,
    b"<a>" * 200_000, b' xmlns="urn:x"', b' xmlns:p="urn:y"', b"<p:a>",
)  # fmt: skip
TOML_TOKENS: tuple[bytes, ...] = (
    b"[", b"]", b"[[", b"]]", b"{", b"}", b" = ", b'"""', b"'''", b"\n[[version]]\n",
    b"\n[x]\n", b"a.b.c = 1\n", b"inf", b"nan", b"-inf", b"1979-05-27T07:32:00Z", b"00:00",
    b"24:00", b"25:61", b"2026-02-30", b"9223372036854775808", b"true", b"0x7FFFFFFF",
    b"a = [" + b"[" * 5000, b"a = " + b"{b=" * 5000,
)  # fmt: skip

_OPS = ("flip", "byte", "cut", "drop", "dup", "insert", "splice", "repeat")
_EDIT = st.integers(0, 2**64 - 1)  # one draw per edit: cheap to generate, still shrinkable
_REPEATS = (2, 50, 5000)


def _edit(data: bytearray, x: int, samples: Sequence[bytes], tokens: Sequence[bytes]) -> None:
    """Apply the edit coded by *x* (operation, position, span, value) to *data*."""
    op = _OPS[x % len(_OPS)]
    x //= len(_OPS)
    pos, x = x % (len(data) + 1), x >> 20
    span, x = 1 + x % 64, x >> 6
    value, x = x & 0xFF, x >> 8
    if op == "flip" and data:
        data[min(pos, len(data) - 1)] ^= 1 << (value & 7)
    elif op == "byte" and data:
        data[min(pos, len(data) - 1)] = value
    elif op == "cut":
        del data[pos:]
    elif op == "drop":
        del data[pos : pos + span]
    elif op == "dup":
        data[pos:pos] = data[pos : pos + span]
    elif op == "insert":
        data[pos:pos] = tokens[x % len(tokens)] if value < 192 else bytes([value, span])
    elif op == "splice":
        other = samples[x % len(samples)]
        data[pos:] = other[(x >> 8) % (len(other) + 1) :]
    elif op == "repeat":
        data[pos:pos] = bytes(data[pos : pos + span]) * _REPEATS[value % len(_REPEATS)]


@st.composite
def mutated_bytes(
    draw: st.DrawFn, samples: Sequence[bytes], tokens: Sequence[bytes] = BYTE_TOKENS
) -> bytes:
    """One of *samples*, damaged by one to six edits."""
    data = bytearray(draw(st.sampled_from(samples)))
    for x in draw(st.lists(_EDIT, min_size=1, max_size=6)):
        _edit(data, x, samples, tokens)
    return bytes(data)


_LINE_OPS = ("delete", "duplicate", "value", "value", "move", "swap_key", "blank")
_VALUES: tuple[bytes, ...] = (
    b"", b"0", b"-1", b"99999999999999999999", b"1e999", b"nan", b"inf", b"true", b'""', b"[]",
    b"{}", b'"x"', b"\xff", b"A" * 3000, b'"\\u0000"', b"2026-02-30", b"25:61",
    b"[" * 3000, b"<>", b"sip:", b";;;", b",,,", b"-", b"\t",
)  # fmt: skip


@st.composite
def mutated_lines(
    draw: st.DrawFn, samples: Sequence[bytes], separators: Sequence[bytes] = (b" = ", b": ")
) -> bytes:
    """One of *samples* (a line-oriented text: TOML, SIP headers), with lines removed,
    duplicated, moved, their keys swapped or their values replaced by hostile ones."""
    sample = draw(st.sampled_from(samples))
    ending = b"\r\n" if b"\r\n" in sample else b"\n"
    lines = sample.split(ending)
    for x in draw(st.lists(_EDIT, min_size=1, max_size=4)):
        i = x % len(lines)
        j = (x >> 16) % len(lines)
        op = _LINE_OPS[(x >> 32) % len(_LINE_OPS)]
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(j, lines[i])
        elif op == "move":
            lines.insert(j, lines.pop(i))
        elif op == "blank":
            lines.insert(j, b"")
        else:
            sep = next((s for s in separators if s in lines[i]), None)
            if sep is None:
                continue
            key, _, value = lines[i].partition(sep)
            if op == "value":
                lines[i] = key + sep + _VALUES[(x >> 40) % len(_VALUES)]
            else:
                other = lines[j].partition(sep)[0] if sep in lines[j] else key
                lines[i] = other + sep + value
    return ending.join(lines)


@st.composite
def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """*usual* four times in five, else *rare* (``usual | rare`` would not weigh them so:
    hypothesis flattens a union of unions into its branches)."""
    return draw(usual) if draw(st.integers(0, 4)) else draw(rare)


def hostile_bytes(
    samples: Sequence[bytes], tokens: Sequence[bytes] = BYTE_TOKENS, max_random: int = 512
) -> st.SearchStrategy[bytes]:
    """Mostly damaged samples; some samples as they are, some random bytes."""
    return st.one_of(
        mutated_bytes(samples, tokens),
        mutated_bytes(samples, tokens),
        mutated_bytes(samples, tokens),
        st.sampled_from(samples),
        st.binary(max_size=max_random),
    )


def hostile_text(
    samples: Sequence[str], tokens: Sequence[bytes] = BYTE_TOKENS
) -> st.SearchStrategy[bytes]:
    """As :func:`hostile_bytes` over UTF-8 text samples (the damage may break the UTF-8)."""
    return hostile_bytes([s.encode() for s in samples], tokens) | st.text(max_size=200).map(
        str.encode
    )


# Values of the wrong type or out of every range, for a field of a JSON document.
_WEIRD: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**63, 2**64, -(2**63) - 1, 10**40, 1e308,
    -1e308, 5e-324, "", " ", "x", "0", "-1", "1e999", "NaN", "\x00", "\ud7ff", "甲" * 3,
    "A" * 5000, [], {}, [None], {"": None}, [[[[[[]]]]]], {"a": {"b": {"c": {}}}},
)  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of *doc* (the root is ``()``)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


_DOC_OPS = ("replace", "replace", "delete", "rename", "wrap", "nest", "number", "text")
_DEPTHS = (10, 100, 400)
_NAMES = ("", "x", "data", "ID", "\u00e9", "a" * 300)


def _doc_edit(doc: Any, x: int) -> Any:
    """Apply the edit coded by *x* to *doc* (in place where it can); the new root."""
    paths = _paths(doc)
    path = paths[x % len(paths)]
    x //= len(paths)
    op = _DOC_OPS[x % len(_DOC_OPS)]
    x //= len(_DOC_OPS)
    weird = copy.deepcopy(_WEIRD[x % len(_WEIRD)])
    if not path:
        return [doc] if op == "wrap" else weird if op == "replace" else doc
    parent, key = _get(doc, path[:-1]), path[-1]
    if op == "replace":
        parent[key] = weird
    elif op == "delete":
        del parent[key]
    elif op == "rename" and isinstance(parent, dict):
        parent[_NAMES[x % len(_NAMES)]] = parent.pop(key)
    elif op == "wrap":
        parent[key] = [parent[key]]
    elif op == "nest":
        parent[key] = _nested(_DEPTHS[x % len(_DEPTHS)])
    elif op == "number":
        parent[key] = (x % 2**40) - 2**39 if x % 3 else (x % 10**6) / 7
    elif op == "text":
        parent[key] = chr(x % 0xD7FF + 1) * (1 + x % 40)
    return doc


@st.composite
def _edited(draw: st.DrawFn, docs: Sequence[Any]) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for x in draw(st.lists(_EDIT, min_size=1, max_size=4)):
        doc = _doc_edit(doc, x)
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, docs: Sequence[Any]) -> bytes:
    """A sample document with fields removed, renamed, retyped or nested deep; sometimes with
    a key duplicated in the text, sometimes damaged as bytes too."""
    doc = draw(_edited(docs))
    x = draw(_EDIT)
    text = json.dumps(doc, ensure_ascii=bool(x & 1)).encode()
    if x & 2 and isinstance(doc, dict) and doc:
        keys = sorted(doc, key=str)
        key = json.dumps(str(keys[(x >> 4) % len(keys)])).encode()
        value = json.dumps(_WEIRD[(x >> 12) % len(_WEIRD)]).encode()
        text = b"{" + key + b":" + value + b"," + text[1:]
    if (x >> 2) & 3 == 0:
        data = bytearray(text)
        _edit(data, x >> 20, [text], BYTE_TOKENS + JSON_TOKENS)
        text = bytes(data)
    return text


def hostile_json(docs: Sequence[Any]) -> st.SearchStrategy[bytes]:
    """Mostly structurally damaged samples, then byte-damaged ones, samples and random bytes."""
    texts = [json.dumps(d).encode() for d in docs]
    return st.one_of(
        mutated_json(docs),
        mutated_json(docs),
        mutated_json(docs),
        mutated_bytes(texts, BYTE_TOKENS + JSON_TOKENS),
        st.sampled_from(texts),
        st.binary(max_size=256),
    )

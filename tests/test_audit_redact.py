"""The audit log's redaction (pure): no secret survives, at any depth; nothing else changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.directory.audit import REDACTED, Actor, is_secret_name, redact

SECRET_NAMES = [
    "password", "password_hash", "passwd", "ha1", "secret", "secret_hash", "token_hash",
    "token", "auth_token", "api_key", "apiKey", "key", "ssh_key", "private_key", "privateKey",
    "basicAuthPassword", "AuthorizationKey", "authorization", "client-secret", "pin", "salt",
    "signature", "credentials", "digest", "psk", "Password", "SECRET", "jwt",
]  # fmt: skip
PUBLIC_NAMES = [
    "id", "token_id", "label", "role", "berth_id", "site_id", "name", "lifecycle", "vendor",
    "password_set_at", "password_set", "created_at", "revoked_at", "kind", "keyboard",
    "monkey", "key_id", "model", "place", "officer_id", "realm", "sha256", "notes", "lat",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_names_are_not(name: str) -> None:
    assert not is_secret_name(name)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
json_scalars |= st.text().filter(lambda s: "cg_" not in s)  # a token-like text is hidden
public_keys = st.sampled_from(PUBLIC_NAMES) | st.from_regex(r"\A[a-z]{1,8}\Z").filter(
    lambda k: not is_secret_name(k)
)
SECRET_VALUE = "s3cr3t-VALUE-never-stored"


def documents(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=20,
    )


@st.composite
def with_secrets(draw: st.DrawFn) -> Any:
    """A public document with secrets planted at random depths (a secret's value may itself
    be a document)."""

    def plant(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: plant(v) for k, v in value.items()}
            if draw(st.booleans()):
                out[draw(st.sampled_from(SECRET_NAMES))] = draw(
                    st.sampled_from([SECRET_VALUE, {"nested": SECRET_VALUE}, [SECRET_VALUE]])
                )
            return out
        if isinstance(value, list):
            return [plant(v) for v in value]
        return value

    return plant({"root": draw(documents(public_keys))})


@given(with_secrets())
def test_no_planted_secret_survives(doc: Any) -> None:
    out = redact(doc)
    assert SECRET_VALUE not in json.dumps(out)


@given(documents(public_keys))
def test_public_documents_pass_unchanged(doc: Any) -> None:
    assert redact(doc) == doc


@given(with_secrets())
def test_redaction_is_idempotent_and_json(doc: Any) -> None:
    once = redact(doc)
    assert redact(once) == once
    assert json.loads(json.dumps(once)) == once


def test_shape_and_what_a_secret_becomes() -> None:
    class Colour(Enum):
        RED = "red"

    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    doc = {
        "password_hash": "abc",
        "ha1": None,  # unset stays null: the log says whether one was set
        "nested": [{"secret": {"deep": 1}}, ("a", 2)],
        "at": at,
        "colour": Colour.RED,
        "tags": {"b", "a"},
        3: "three",
        "note": "gave cg_0123abcd_AbC-d3F_x9 to the van",
    }
    assert redact(doc) == {
        "password_hash": REDACTED,
        "ha1": None,
        "nested": [{"secret": REDACTED}, ["a", 2]],
        "at": "2026-12-03T08:00:00+00:00",
        "colour": "red",
        "tags": ["a", "b"],
        "3": "three",
        "note": f"gave {REDACTED} to the van",
    }
    assert redact(None) is None
    assert redact("cg_ab12_secret") == REDACTED


def test_actors() -> None:
    a = Actor.of_token("ab12", "technician", "van 3")
    assert (a.label, a.token_id, a.role, a.source) == ("van 3", "ab12", "technician", "api")
    assert Actor.of_token("ab12", "admin", "").label == "token:ab12"
    assert Actor.cli("li").label == "cli:li"
    assert Actor.cli("li", "van 3").label == "van 3 (cli:li)"
    assert Actor.cli("li", source="import").via("cli").source == "cli"
    assert a.request_id and a.request_id != Actor.of_token("ab12", "technician", "").request_id


FLAT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(),
    st.sampled_from(["cg_0123abcd_SECRETvalue", "see cg_0a_b", "东大街 1 号", "cg_"]),
)  # fmt: skip
FLAT_NAMES = st.one_of(st.sampled_from(SECRET_NAMES + PUBLIC_NAMES), st.text(max_size=12))


@given(st.dictionaries(FLAT_NAMES, FLAT_VALUES, max_size=8))
def test_the_stored_json_of_a_flat_edit_is_its_redacted_value(value: dict[str, Any]) -> None:
    """The audit rows' fast path (orjson over a flat mapping) stores what ``redact`` gives."""
    from gateway.directory.audit import _json

    assert json.loads(_json(value, json.dumps)) == redact(value)


@pytest.mark.parametrize(
    "value",
    [
        {"password": "x", "nested": {"token": "t", "ok": 1}},  # not flat: walked
        {1: "a", "secret": "s"},  # a key that is not text
        {"n": 1 << 70, "key": "k"},  # beyond orjson's integers
        {"at": datetime(2026, 12, 3, tzinfo=UTC), "lat": 38.5, "salt": None},
        {"notes": "a token cg_0123abcd_SECRETvalue in text"},
    ],
)
def test_the_stored_json_of_any_edit_is_its_redacted_value(value: dict[Any, Any]) -> None:
    from gateway.directory.audit import _json

    assert json.loads(_json(value, json.dumps)) == redact(value)
    assert "SECRETvalue" not in _json(value, json.dumps)

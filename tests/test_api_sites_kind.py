"""``GET /api/v1/sites?kind=`` read by hand (gateway.api.public.kind_of) is what a declared
FastAPI query parameter gives: the same value, the same 422 Problem, the same OpenAPI text."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry

from gateway.api.public import KIND_OPENAPI, KindQuery, kind_of
from gateway.api.rejections import RejectionLog, validation_handler
from gateway.metrics import FastCounter

QUERIES = [
    "", "kind=car_park", "kind=on_street", "kind=", "kind=bogus", "kind=car_park&kind=x",
    "kind=x&kind=on_street", "other=1", "kind=car_park&other=1", "KIND=car_park",
    "kind=car%5Fpark", "kind=%E4%B8%9C", "kind", "&&", "kind=on_street%0A", "kind=" + "x" * 300,
]  # fmt: skip


def app() -> FastAPI:
    a = FastAPI()
    counter = FastCounter("t_rejected", "rejections", ["reason"], CollectorRegistry())
    a.add_exception_handler(RequestValidationError, validation_handler(RejectionLog(counter)))

    @a.get("/declared")
    async def declared(kind: KindQuery = None) -> dict[str, Any]:
        return {"kind": kind}

    @a.get("/by-hand")
    async def by_hand(request: Request) -> dict[str, Any]:
        return {"kind": kind_of(request)}

    return a


@pytest.mark.parametrize("query", QUERIES)
async def test_the_same_answer_as_a_declared_parameter(query: str) -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        want = await c.get(f"/declared?{query}")
        got = await c.get(f"/by-hand?{query}")
    assert (got.status_code, got.headers["content-type"]) == (
        want.status_code,
        want.headers["content-type"],
    )
    assert got.json() == want.json()


async def test_a_bad_kind_is_a_422_problem_naming_the_field() -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/by-hand?kind=bogus")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["query", "kind"]


def test_the_openapi_parameter_is_the_declared_one() -> None:
    spec = app().openapi()
    assert spec["paths"]["/declared"]["get"]["parameters"] == [KIND_OPENAPI]

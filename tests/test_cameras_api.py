"""Plate cameras pushing to a running gateway over HTTP in each vendor's shape: the read is
in the database before the camera has its answer, sessions open at the car park, bad input
is refused clearly and counted, resends are de-duplicated; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.demo.cameras import (
    DahuaCamera,
    HikvisionCamera,
    VzenithCamera,
    tiny_jpeg,
)
from gateway.directory.registry import Registry
from gateway.infra.storage.schema import CameraReadRow
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai
MAX_IMAGE = 50_000
MAX_BODY = 400_000
CLIENT_SIDE = ("httpx", "httpcore", "uvicorn.access")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(
        module_db_url,
        mosquitto,
        cameras={"max_image_bytes": MAX_IMAGE, "max_body_bytes": MAX_BODY},
    )
    async with running_gateway(settings, Clock()) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def reader(gw: Any) -> AsyncIterator[AsyncEngine]:
    """A second engine on the same database: what it sees is committed."""
    engine = create_async_engine(gw.settings.database.url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


async def add_camera(
    http: httpx.AsyncClient, tokens: dict[str, str], cam: str, vendor: str, site: str, **kw: Any
) -> dict[str, Any]:
    body = {"id": cam, "vendor": vendor, "site_id": site, **kw}
    r = await http.post(
        "/api/v1/devices/cameras",
        json=body,
        headers={"Authorization": f"Bearer {tokens['technician']}"},
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    assert out["push_path"].startswith(f"/cameras/{cam}/{out['secret']}")
    assert "secret_hash" not in out["device"] and out["device"]["kind"] == "camera"
    return out


async def rows(reader: AsyncEngine, camera: str) -> list[CameraReadRow]:
    async with reader.connect() as conn:
        result = await conn.execute(select(CameraReadRow).where(CameraReadRow.camera_id == camera))
        return list(result.all())  # type: ignore[arg-type]


async def open_session(
    http: httpx.AsyncClient, tokens: dict[str, str], plate: str, site: str
) -> dict[str, Any] | None:
    """The plate's open stay at *site* (the full view: an operator's token shows the site)."""
    r = await http.get(
        "/api/v1/sessions",
        params={"plate": plate},
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert r.status_code == 200, r.text
    found = [s for s in r.json()["sessions"] if s["site_id"] == site and s["state"] == "open"]
    return found[0] if found else None


def pushes(gw: Any, vendor: str, outcome: str) -> float:
    value: float = gw.services.metrics.camera_pushes.labels(vendor, outcome).value
    return value


async def test_each_vendor_push_is_stored_before_the_answer_and_opens_a_session(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], reader: AsyncEngine
) -> None:
    base = str(http.base_url)
    hik_c = await add_camera(
        http,
        tokens,
        "cam-hik-1",
        "hikvision",
        "cp-shiminting",
        lane_id="shiminting-in",
        direction="in",
    )
    vz_c = await add_camera(http, tokens, "cam-vz-1", "vzenith", "cp-zhening", direction="in")
    dh_c = await add_camera(http, tokens, "cam-dh-1", "dahua", "cp-tonghe", direction="in")
    evidence = Path(gw.settings.cameras.evidence_dir)
    cases = [
        (
            HikvisionCamera(base, "cam-hik-1", hik_c["secret"]),
            "粤B12345",
            "cp-shiminting",
            {"ok": True},
        ),
        (VzenithCamera(base, "cam-vz-1", vz_c["secret"]), "甘G·12345", "cp-zhening", None),
        (DahuaCamera(base, "cam-dh-1", dh_c["secret"]), "川A12345", "cp-tonghe", {"Result": True}),
    ]
    for cam, plate, site, reply in cases:
        r = await cam.push(plate, T0 - timedelta(seconds=3))
        assert r.status_code == 200, r.text
        # durable before the answer: a second connection sees the committed row at once
        stored = await rows(reader, cam.camera_id)
        assert len(stored) == 1 and stored[0].status == "read", stored
        row = stored[0]
        normal = plate.replace("·", "")
        assert (row.plate, row.raw_plate, row.site_id) == (normal, plate, site)
        assert row.read_at == T0 - timedelta(seconds=3) and row.clock_off is None
        assert row.images and all(
            (evidence / p).read_bytes()[:3] == b"\xff\xd8\xff" for p in row.images
        )
        if reply is None:  # Vzenith: the answer is the command channel
            answer = r.json()["Response_AlarmInfoPlate"]
            assert answer["info"] == "no" and "ContinuePushOffline" not in answer
            assert answer["serialData"][0]["dataLen"] > 0  # the plate shown on the display
        else:
            assert r.json() == reply
        session = await open_session(http, tokens, normal, site)
        assert session is not None and session["entry"] == (T0 - timedelta(seconds=3)).isoformat()
        await cam.aclose()
    assert pushes(gw, "hikvision", "read") == 1
    assert pushes(gw, "vzenith", "read") == 1 and pushes(gw, "dahua", "read") == 1


async def test_unknown_camera_wrong_secret_or_vendor_refused_alike_and_counted(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cam = await add_camera(http, tokens, "cam-hik-2", "hikvision", "cp-shiminting")
    refused = gw.services.metrics.camera_refused
    before = {k: refused.labels(k).value for k in ("unknown", "secret", "vendor")}
    base = str(http.base_url)
    wrong = "w" * len(cam["secret"])
    answers = [
        await HikvisionCamera(base, "cam-nobody", cam["secret"]).push("粤B12345", T0),
        await HikvisionCamera(base, "cam-hik-2", wrong).push("粤B12345", T0),
        await VzenithCamera(base, "cam-hik-2", cam["secret"]).push("粤B12345", T0),
    ]
    for r in answers:
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "camera_refused"
    assert len({r.text for r in answers}) == 1  # no hint which
    after = {k: refused.labels(k).value for k in before}
    assert after == {k: v + 1 for k, v in before.items()}
    r = await http.post(f"/cameras/cam-hik-2/{cam['secret']}/hikvision", content=b"<x")
    assert r.status_code == 422  # a push that the gateway logs (once a minute)
    # the gateway's own log lines (not the test client's, nor uvicorn's access log, which
    # the gateway turns off and only pytest's capture handler revives)
    ours = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE)]
    assert any(r.name == "gateway.api.cameras" for r in ours)
    text = "\n".join(r.getMessage() for r in ours)
    assert cam["secret"] not in text and wrong not in text
    assert await rows_count(gw, "cam-hik-2") == 0
    scraper = {"Authorization": f"Bearer {tokens['inspector']}"}
    metrics = (await http.get("/metrics", headers=scraper)).text
    assert 'citygate_camera_refused_total{reason="secret"}' in metrics


async def rows_count(gw: Any, camera: str) -> int:
    async with gw.services.sessions() as db:
        found = await db.execute(select(CameraReadRow.id).where(CameraReadRow.camera_id == camera))
        return len(found.all())


async def test_vzenith_offline_resend_with_a_duplicate_is_stored_once_and_continued(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], reader: AsyncEngine
) -> None:
    cam_c = await add_camera(http, tokens, "cam-vz-2", "vzenith", "cp-renminyiyuan", direction="in")
    cam = VzenithCamera(str(http.base_url), "cam-vz-2", cam_c["secret"])
    plates = ["甘G10001", "甘G10002", "甘G10003"]
    for n, plate in enumerate(plates):
        cam.read_offline(plate, T0 - timedelta(hours=3, minutes=-n))
    dup_before = pushes(gw, "vzenith", "duplicate")
    replies = await cam.resend_offline(duplicate_every=2)
    assert len(replies) == 4 and cam.stored == []  # every read continued, the 2nd sent twice
    for r in replies:
        cont = r.json()["Response_AlarmInfoPlate"]["ContinuePushOffline"]
        assert cont["continue"] == 1 and isinstance(cont["plateid"], int)
    assert replies[1].json() == replies[2].json()  # the duplicate answered like the original
    assert "serialData" not in replies[0].json()["Response_AlarmInfoPlate"]  # old: not shown
    assert pushes(gw, "vzenith", "duplicate") == dup_before + 1
    stored = await rows(reader, "cam-vz-2")
    assert sorted(r.plate for r in stored) == plates and all(r.offline for r in stored)
    for n, plate in enumerate(plates):  # each stay opened at the camera's own time
        session = await open_session(http, tokens, plate, "cp-renminyiyuan")
        assert session is not None
        assert session["entry"] == (T0 - timedelta(hours=3, minutes=-n)).isoformat()
    await cam.aclose()


async def test_bad_input_is_refused_clearly_counted_and_nothing_is_lost(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], reader: AsyncEngine
) -> None:
    hik_c = await add_camera(
        http, tokens, "cam-hik-3", "hikvision", "cp-keyunzhan", direction="out"
    )
    vz_c = await add_camera(http, tokens, "cam-vz-3", "vzenith", "cp-keyunzhan", direction="in")
    base = str(http.base_url)
    hik = HikvisionCamera(base, "cam-hik-3", hik_c["secret"])
    vz = VzenithCamera(base, "cam-vz-3", vz_c["secret"])
    url = f"/cameras/cam-hik-3/{hik_c['secret']}/hikvision"
    evidence = Path(gw.settings.cameras.evidence_dir)
    counted = {
        k: pushes(gw, *k)
        for k in [
            ("hikvision", "malformed_xml"),
            ("vzenith", "malformed_json"),
            ("vzenith", "bad_plate"),
        ]
    }

    r = await http.post(
        url, content=b"<EventNotificationAlert><ANPR>", headers={"Content-Type": "text/xml"}
    )
    assert r.status_code == 422 and r.json()["code"] == "malformed_xml"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert pushes(gw, "hikvision", "malformed_xml") == counted["hikvision", "malformed_xml"] + 1
    kept = list((evidence / "rejected" / "cam-hik-3").rglob("*malformed_xml.bin"))
    assert [p.read_bytes() for p in kept] == [b"<EventNotificationAlert><ANPR>"]
    r = await http.post(
        f"/cameras/cam-vz-3/{vz_c['secret']}/vzenith", content=b'{"AlarmInfoPlate": '
    )
    assert r.status_code == 422 and r.json()["code"] == "malformed_json"
    assert pushes(gw, "vzenith", "malformed_json") == counted["vzenith", "malformed_json"] + 1

    # an oversized picture is not kept; the read is
    r = await hik.push("京A54321", T0, image=tiny_jpeg(MAX_IMAGE + 1))
    assert r.status_code == 200
    (row,) = await rows(reader, "cam-hik-3")
    assert row.plate == "京A54321" and row.images == []
    assert row.dropped_images == ["detectionPicture.jpg: too_large"]
    assert gw.services.metrics.camera_images.labels("too_large").value >= 1
    # a body over [cameras] max_body_bytes is refused before parsing
    r = await hik.push("京A54321", T0, image=tiny_jpeg(MAX_BODY + 1))
    assert r.status_code == 413
    # an impossible plate: kept with the camera's words, answered, no session
    r = await vz.push("粤X?1234", T0)
    assert r.status_code == 200 and r.json()["Response_AlarmInfoPlate"]["info"] == "no"
    (bad,) = await rows(reader, "cam-vz-3")
    assert (bad.status, bad.plate, bad.raw_plate) == ("bad_plate", None, "粤X?1234")
    assert pushes(gw, "vzenith", "bad_plate") == counted["vzenith", "bad_plate"] + 1
    # a camera clock far ahead, and one absurdly old: kept at the receive time, flagged
    now = gw.services.clock()
    ahead = gw.services.metrics.camera_clock_off.labels("hikvision", "ahead").value
    r = await hik.push("京A77777", now + timedelta(hours=2))
    assert r.status_code == 200
    r = await hik.push("京A88888", datetime(2001, 1, 1, tzinfo=UTC))
    assert r.status_code == 200
    by_plate = {x.plate: x for x in await rows(reader, "cam-hik-3")}
    assert by_plate["京A77777"].clock_off == "ahead" and by_plate["京A77777"].read_at == now
    assert by_plate["京A77777"].camera_ts == now + timedelta(hours=2)
    assert by_plate["京A88888"].clock_off == "old" and by_plate["京A88888"].read_at == now
    assert gw.services.metrics.camera_clock_off.labels("hikvision", "ahead").value == ahead + 1
    assert await (await hik.heartbeat()).aread()  # still answering: nothing wedged
    await hik.aclose()
    await vz.aclose()


async def test_heartbeats_are_answered_and_mark_the_camera_seen(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    base = str(http.base_url)
    cams = [
        (HikvisionCamera, await add_camera(http, tokens, "cam-hb-h", "hikvision", "cp-tonghe")),
        (VzenithCamera, await add_camera(http, tokens, "cam-hb-v", "vzenith", "cp-tonghe")),
        (DahuaCamera, await add_camera(http, tokens, "cam-hb-d", "dahua", "cp-tonghe")),
    ]
    for cls, c in cams:
        cam = cls(base, c["device"]["id"], c["secret"])
        beat = cam.keepalive if isinstance(cam, DahuaCamera) else cam.heartbeat
        r = await beat()
        assert r.status_code == 200, r.text
        assert gw.services.live.directory.get(c["device"]["id"]).last_seen == gw.services.clock()
        await cam.aclose()
    assert await rows_count(gw, "cam-hb-v") == 0


async def test_a_camera_provisioned_elsewhere_is_live_without_restart_and_secrets_rotate(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # as the CLI does it: another process's registry, no access to this one's directory
    _, secret = await Registry(gw.services.sessions).provision_camera(
        "cam-cli-1", "dahua", "cp-shiminting", gw.services.clock(), direction="out"
    )
    cam = DahuaCamera(str(http.base_url), "cam-cli-1", secret)

    async def accepted() -> bool:
        return (await cam.keepalive()).status_code == 200

    await wait_for(accepted, 10, what="the change feed brings the camera")
    r = await http.post(
        "/api/v1/devices/cam-cli-1/secret",
        headers={"Authorization": f"Bearer {tokens['technician']}"},
    )
    assert r.status_code == 200
    assert (await cam.keepalive()).status_code == 403  # the old secret stops at once
    cam.secret = r.json()["secret"]
    assert (await cam.keepalive()).status_code == 200
    await cam.aclose()


async def test_a_record_id_reused_for_another_read_is_stored_not_taken_for_a_duplicate(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], reader: AsyncEngine
) -> None:
    cam_c = await add_camera(http, tokens, "cam-vz-4", "vzenith", "cp-tonghe", direction="out")
    cam = VzenithCamera(str(http.base_url), "cam-vz-4", cam_c["secret"])
    first = await cam.push("甘G20001", T0 - timedelta(days=2), plateid=7)
    assert first.status_code == 200
    reused = gw.services.metrics.camera_pushes.labels("vzenith", "record_id_reused").value
    # the camera was reset: its counter starts again, an offline read comes with plateid 7
    again = await cam.push("甘G20002", T0 - timedelta(hours=1), plateid=7, offline=True)
    assert again.json()["Response_AlarmInfoPlate"]["ContinuePushOffline"]["plateid"] == 7
    stored = {r.plate: r for r in await rows(reader, "cam-vz-4")}
    assert set(stored) == {"甘G20001", "甘G20002"}
    assert stored["甘G20001"].record_id == "7" and stored["甘G20002"].record_id is None
    assert (
        gw.services.metrics.camera_pushes.labels("vzenith", "record_id_reused").value == reused + 1
    )
    await cam.aclose()


HOSTILE: list[tuple[bytes, str]] = [
    (b"", "application/json"),
    (b"\xff\xfe\x00garbage\x80", "text/xml"),
    (b"[" * 100_000, "application/json"),
    (b"<a>" * 50_000, "application/xml"),
    (b"--x\r\n\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    (b"--x--", 'multipart/form-data; boundary="' + "b" * 300 + '"'),
    (
        b'{"AlarmInfoPlate": {"result": {"PlateResult": '
        b'{"license": "\\ud800", "plateid": 1e400}}}}',
        "application/json",
    ),
    (
        b'{"Picture": {"Plate": {"PlateNumber": "\\u0000"}, '
        b'"SnapInfo": {"AccurateTime": "9999-99"}}}',
        "application/json",
    ),
]


async def test_hostile_bodies_never_get_a_5xx(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    paths = []
    for vendor, tail in (
        ("hikvision", "/hikvision"),
        ("vzenith", "/vzenith"),
        ("dahua", "/NotificationInfo/TollgateInfo"),
        ("dahua", "/NotificationInfo/KeepAlive"),
    ):
        c = await add_camera(http, tokens, f"cam-hostile-{len(paths)}", vendor, "cp-tonghe")
        paths.append(f"/cameras/{c['device']['id']}/{c['secret']}{tail}")
    for path in paths:
        for body, ctype in HOSTILE:
            r = await http.post(path, content=body, headers={"Content-Type": ctype})
            assert r.status_code in (200, 413, 422), (path, body[:40], r.status_code, r.text)
    assert (await http.get("/healthz")).status_code == 200


async def test_a_dahua_digest_header_with_empty_realm_and_nonce_is_no_credential(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Dahua firmware configured for digest on its push sends an Authorization header with an
    empty realm and nonce (it cannot answer a challenge): the camera is known by its URL
    secret, so the header is neither required nor trusted, and a wrong secret with a
    well-formed header is still refused."""
    c = await add_camera(http, tokens, "cam-dh-dg", "dahua", "cp-tonghe", direction="in")
    cam = DahuaCamera(str(http.base_url), "cam-dh-dg", c["secret"])
    digest = (
        'Digest username="admin", realm="", nonce="", uri="/NotificationInfo/TollgateInfo", '
        'response="", algorithm="MD5"'
    )
    cam.client.headers["Authorization"] = digest
    try:
        r = await cam.push("川A54321", gw.services.clock())
        assert r.status_code == 200 and r.json() == {"Result": True}, r.text
        assert await rows_count(gw, "cam-dh-dg") == 1
        wrong = DahuaCamera(str(http.base_url), "cam-dh-dg", "x" * len(c["secret"]))
        wrong.client.headers["Authorization"] = digest
        r = await wrong.push("川A54322", gw.services.clock())
        assert r.status_code in (401, 403, 404), r.text
        await wrong.aclose()
        assert await rows_count(gw, "cam-dh-dg") == 1
    finally:
        await cam.aclose()
    assert c["secret"] not in caplog.text

"""The town's 72 body cams for ``citygate demo``: demo passwords set through the platform's
own registry code (HA1 stored, as a technician's would be), then the cams simulated over
SIP/UDP against the running gateway's platform (``gw.sip_port``), walking between the sample
town's sites. Nothing runs when ``[bodycams] enabled = false``.

Demo only: the gateway under demonstration provisions the passwords itself (like the demo's
charger passwords); they live in this process's memory only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from drivers.sip.digest import ha1
from events import now_utc
from gateway.demo.bodycam_options import SimStats
from gateway.demo.bodycams import BodyCamOptions, BodyCamSimulator, CamSpec, cam_id
from gateway.directory.town import Town

log = logging.getLogger(__name__)

TOWN_CAMS = 72  # 57 officers + 15 assistants, cam n for officer n


def _platform_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


async def _registrar_knows(
    gw: Any, passwords: Mapping[str, str], realm: str, timeout_s: float = 30.0
) -> None:
    """Wait until the change feed brought the new passwords to the registrar, so no cam is
    refused for an old HA1 at start (one that still is simply tries again later)."""
    want = {k: ha1(k, realm, v) for k, v in passwords.items()}
    creds: Mapping[str, Any] = gw.services.bodycams.credentials
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any(getattr(creds.get(k), "ha1", None) != h for k, h in want.items()):
        if loop.time() > deadline:
            log.warning("demo: the registrar has not seen the body cams' passwords yet")
            return
        await asyncio.sleep(0.1)


async def simulate_town_bodycams(
    gw: Any,
    town: Town,
    stop: asyncio.Event,
    *,
    cams: int = TOWN_CAMS,
    seed: int = 28181,
    alarm_rate_per_h: float = 0.05,
    overrides: Mapping[str, Any] | None = None,
) -> SimStats | None:
    """Set the demo passwords of the town's cams and run them until *stop*; None when the
    platform is disabled or the directory holds none of the cams. *overrides* replace
    :class:`BodyCamOptions` fields (tests: short intervals)."""
    from gateway.directory.bodycams import credentials, set_passwords

    cfg = gw.settings.bodycams
    if not cfg.enabled:
        return None
    wanted = {cam_id(n): secrets.token_urlsafe(12) for n in range(1, cams + 1)}
    async with gw.services.sessions.begin() as db:
        known = set(await credentials(db)) & set(wanted)
        passwords = {k: v for k, v in wanted.items() if k in known}
        await set_passwords(db, passwords, cfg.effective_realm, now_utc())
    if not passwords:
        log.warning("demo: no body cams of the town in the directory: none simulated")
        return None
    options = BodyCamOptions(
        (_platform_host(cfg.host), gw.sip_port),
        platform_id=cfg.platform_id,
        realm=cfg.effective_realm,
        bind_host=_platform_host(cfg.host),
        own_loopback_address=_platform_host(cfg.host).startswith("127."),
        keepalive_interval_s=cfg.keepalive_interval_s,
        position_interval_s=float(cfg.position_interval_s),
        register_expires_s=cfg.register_expires_max_s,
        alarm_rate_per_h=alarm_rate_per_h,
        seed=seed,
    )
    options = dataclasses.replace(options, **(overrides or {}))
    sites = [(s.lat, s.lon) for s in town.sites]
    specs = [CamSpec(k, v) for k, v in sorted(passwords.items())]
    log.info("demo: %d body cams registering with %s:%d", len(specs), *options.platform)
    await _registrar_knows(gw, passwords, cfg.effective_realm)
    return await BodyCamSimulator(specs, options, sites).run(stop)

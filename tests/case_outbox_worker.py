"""A gateway-like process for the crash tests of the case outbox (killed with SIGKILL).

``record DB URL SECRET``: files one case, commits, prints ``recorded <id>``, then runs the
delivery (against a case system that is down), prints ``attempted`` once the failed attempt
is persisted, and waits to be killed.

``deliver DB URL SECRET TIMEOUT LEASE``: runs the delivery until killed.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from events import CaseRaised
from gateway.cases.delivery import CaseDelivery, DeliverySettings
from gateway.cases.outbox import record_case
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import CaseReportRow


async def main(mode: str, db: str, url: str, secret: str, *args: str) -> None:
    engine = create_engine(db)
    await migrate(engine)
    sessions = sessionmaker_for(engine)
    timeout, lease = (float(args[0]), float(args[1])) if args else (2.0, 5.0)
    settings = DeliverySettings(
        url=url,
        secret=secret.encode(),
        timeout_s=timeout,
        lease_s=lease,
        base_backoff_s=0.1,
        max_backoff_s=0.3,
        poll_s=0.2,
    )
    delivery = CaseDelivery(settings, sessions, rng=random.Random(7))
    if mode == "record":
        now = datetime.now(UTC)
        event = CaseRaised(
            device_id="cam-01",
            ts=now,
            category="0505",
            rule_id="fire-lane",
            title="消防通道占用",
            dedup_key="0505:crash",
            dedup_window_s=600,
            plate="粤B12345",
        )
        async with sessions.begin() as session:
            row = await record_case(session, event, now)
            assert row is not None
            case_id = row.id
        print("recorded", case_id, flush=True)
        task = asyncio.create_task(delivery.run())
        while True:
            async with sessions() as session:
                attempts = await session.scalar(
                    select(CaseReportRow.attempts).where(CaseReportRow.id == case_id)
                )
            if attempts:
                break
            await asyncio.sleep(0.02)
        print("attempted", flush=True)
        await task  # runs until killed
    else:
        print("delivering", flush=True)
        await delivery.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

"""Payments and refunds of parking sessions, recorded here; the money moves at a provider.

The provider is behind a small interface (``providers.PaymentProvider``). Every request
carries an idempotency key: the same key with the same request records one payment and
answers the same again; the same key with a different request is refused. The provider is
called with the same key, so a retry after a crash between the provider's confirmation and
our commit cannot charge twice at a provider that honours keys.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.infra.locks import KeyedLocks
from gateway.infra.storage.schema import ParkingSessionRow, PaymentRow
from gateway.metrics import Metrics
from gateway.services.parking.providers import (
    PaymentProvider,
    ProviderDeclined,
    ProviderRefused,
    ProviderUnavailable,
)
from gateway.services.parking.sessions import SessionStore


class PaymentError(Exception):
    """A refused payment request: ``status`` is the HTTP status the API answers with, ``code``
    the stable token of its Problem, ``extra`` its extension members (e.g. ``due_fen``)."""

    def __init__(self, status: int, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: str
    session_id: str
    kind: str
    amount_fen: int
    method: str
    provider: str
    provider_ref: str
    refund_of: str | None
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, row: PaymentRow) -> PaymentRecord:
        return cls(
            row.id,
            row.session_id,
            row.kind,
            row.amount_fen,
            row.method,
            row.provider,
            row.provider_ref,
            row.refund_of,
            row.reason,
            row.created_at,
        )


def request_hash_of(payment_id: str, amount_fen: int, reason: str) -> str:
    """The request hash of a refund (what a replay with the same key must match)."""
    return _hash("refund", payment_id, amount_fen, reason)


def _lock_key(session_id: str) -> int:
    """The advisory lock of one session's payments: a signed 64-bit hash in its own
    namespace (the cluster's small fixed keys cannot collide with it but by 1 in 2^48)."""
    digest = hashlib.blake2b(f"payments:{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _serialise(db: AsyncSession, session_id: str) -> None:
    """Hold *db*'s transaction as the one paying or refunding *session_id* (PostgreSQL: an
    advisory lock freed at commit, so instances take turns; SQLite is one instance, whose
    ``KeyedLocks`` already do). Not a row lock: the parking session's row stays free for
    the berth changes that close it while a provider answers."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(session_id)})


async def _replay_in(db: AsyncSession, key: str, request_hash: str) -> PaymentRecord | None:
    row = await db.scalar(select(PaymentRow).where(PaymentRow.idempotency_key == key))
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise PaymentError(
            422,
            "this Idempotency-Key was already used for a different request",
            "idempotency_conflict",
        )
    return PaymentRecord.of(row)


def _hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


class PaymentService:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        store: SessionStore,
        provider: PaymentProvider,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._provider = provider
        self._metrics = metrics
        self._clock = clock
        self._locks = KeyedLocks()  # per parking session
        self._on_paid: list[Callable[[str], None]] = []

    def on_paid(self, hook: Callable[[str], None]) -> None:
        """Call *hook* with the session id after each payment is committed (a lane waiting at
        the exit opens at once instead of at its next recheck)."""
        self._on_paid.append(hook)

    async def _replay(self, key: str, request_hash: str) -> PaymentRecord | None:
        async with self._sessions() as db:
            row = await db.scalar(select(PaymentRow).where(PaymentRow.idempotency_key == key))
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise PaymentError(
                422,
                "this Idempotency-Key was already used for a different request",
                "idempotency_conflict",
            )
        return PaymentRecord.of(row)

    async def pay(
        self,
        *,
        session_id: str,
        amount_fen: int,
        method: str,
        key: str,
        actor: str,
        provider_ref: str | None = None,
    ) -> tuple[PaymentRecord, bool]:
        """Record a payment of ``amount_fen`` (at most what is due now). Returns the payment
        and whether it is a replay of an earlier request with the same key."""
        try:
            return await self._pay(session_id, amount_fen, method, key, actor, provider_ref)
        except PaymentError as exc:
            self._metrics.payments.labels("payment", f"refused_{exc.status}").inc()
            raise

    async def _pay(
        self,
        session_id: str,
        amount_fen: int,
        method: str,
        key: str,
        actor: str,
        provider_ref: str | None,
    ) -> tuple[PaymentRecord, bool]:
        request_hash = _hash("pay", session_id, amount_fen, method, provider_ref or "")
        async with self._locks[session_id]:
            found = await self._replay(key, request_hash)
            if found is not None:
                self._metrics.payments.labels("payment", "replayed").inc()
                return found, True
            try:
                async with self._sessions.begin() as db:
                    # What is due, the charge and its record, one session at a time on every
                    # instance: two payments of one session through two instances must not
                    # both see the whole amount due.
                    await _serialise(db, session_id)
                    found = await _replay_in(db, key, request_hash)
                    if found is not None:
                        self._metrics.payments.labels("payment", "replayed").inc()
                        return found, True
                    now = self._clock()
                    row = await db.get(ParkingSessionRow, session_id, populate_existing=True)
                    if row is None:
                        raise PaymentError(404, f"no session {session_id!r}", "no_session")
                    payment = await self._charge(
                        row, amount_fen, method, key, actor, provider_ref, request_hash, now
                    )
                    db.add(payment)
                    fresh = await db.get(ParkingSessionRow, session_id, with_for_update=True)
                    assert fresh is not None
                    fresh.paid_fen += amount_fen
                    fresh.paid_at = now
                    fresh.updated_at = now
            except IntegrityError:
                found = await self._replay(key, request_hash)
                if found is None:
                    raise
                return found, True
        self._metrics.payments.labels("payment", "recorded").inc()
        for hook in self._on_paid:
            hook(session_id)
        return PaymentRecord.of(payment), False

    async def _charge(
        self,
        row: ParkingSessionRow,
        amount_fen: int,
        method: str,
        key: str,
        actor: str,
        provider_ref: str | None,
        request_hash: str,
        now: datetime,
    ) -> PaymentRow:
        """Check *amount_fen* against what *row* has due now, charge it, and return the
        payment's row (the caller records it)."""
        settlement, error = self._store.price(row, now)
        if settlement is None:
            raise PaymentError(409, f"the session cannot be priced: {error}", "not_priced")
        if settlement.due_fen == 0:
            raise PaymentError(409, "nothing is due on this session", "nothing_due", due_fen=0)
        if amount_fen > settlement.due_fen:
            raise PaymentError(
                422,
                f"amount_fen {amount_fen} exceeds what is due ({settlement.due_fen})",
                "over_due",
                due_fen=settlement.due_fen,
            )
        try:
            receipt = await self._provider.charge(
                session_id=row.id,
                amount_fen=amount_fen,
                idempotency_key=key,
                method=method,
                provider_ref=provider_ref,
            )
        except ProviderRefused as exc:
            raise PaymentError(422, str(exc), "refused_by_provider") from None
        except ProviderDeclined as exc:
            raise PaymentError(
                402, f"declined by the payment provider: {exc}", "declined"
            ) from None
        except ProviderUnavailable as exc:
            raise PaymentError(
                503,
                f"payment provider unavailable, retry with the same key: {exc}",
                "provider_unavailable",
            ) from None
        return PaymentRow(
            id="pay_" + secrets.token_hex(12),
            session_id=row.id,
            kind="payment",
            amount_fen=amount_fen,
            idempotency_key=key,
            refund_of=None,
            request_hash=request_hash,
            provider=receipt.provider,
            provider_ref=receipt.ref,
            method=method,
            actor=actor,
            reason="",
            created_at=now,
        )

    async def refund(
        self, *, payment_id: str, amount_fen: int, reason: str, key: str, actor: str
    ) -> tuple[PaymentRecord, bool]:
        """An operator refunds (part of) a payment; never more than was paid and not yet
        refunded."""
        try:
            return await self._refund(payment_id, amount_fen, reason, key, actor)
        except PaymentError as exc:
            self._metrics.payments.labels("refund", f"refused_{exc.status}").inc()
            raise

    async def _refund(
        self, payment_id: str, amount_fen: int, reason: str, key: str, actor: str
    ) -> tuple[PaymentRecord, bool]:
        request_hash = request_hash_of(payment_id, amount_fen, reason)
        async with self._sessions() as db:
            original = await db.get(PaymentRow, payment_id)
        if original is None or original.kind != "payment":
            raise PaymentError(404, f"no payment {payment_id!r}", "no_payment")
        try:
            async with self._locks[original.session_id], self._sessions.begin() as db:
                # What is left to refund, the refund and its record, one at a time on every
                # instance (as payments).
                await _serialise(db, original.session_id)
                found = await _replay_in(db, key, request_hash)
                if found is not None:
                    self._metrics.payments.labels("refund", "replayed").inc()
                    return found, True
                row = await self._refund_one(db, original, amount_fen, reason, key, actor)
                db.add(row)
                session = await db.get(ParkingSessionRow, original.session_id, with_for_update=True)
                assert session is not None
                session.paid_fen -= amount_fen
                session.updated_at = row.created_at
        except IntegrityError:
            found = await self._replay(key, request_hash)
            if found is None:
                raise
            return found, True
        self._metrics.payments.labels("refund", "recorded").inc()
        return PaymentRecord.of(row), False

    async def _refund_one(
        self,
        db: AsyncSession,
        original: PaymentRow,
        amount_fen: int,
        reason: str,
        key: str,
        actor: str,
    ) -> PaymentRow:
        """Check *amount_fen* against what is left of *original*, refund it, and return the
        refund's row (the caller records it)."""
        refunded = (
            await db.scalar(
                select(func.coalesce(func.sum(PaymentRow.amount_fen), 0)).where(
                    PaymentRow.refund_of == original.id
                )
            )
        ) or 0
        left = original.amount_fen - int(refunded)
        if amount_fen > left:
            raise PaymentError(
                422,
                f"amount_fen {amount_fen} exceeds what is left to refund ({left})",
                "over_refundable",
                refundable_fen=left,
            )
        try:
            receipt = await self._provider.refund(
                payment_ref=original.provider_ref, amount_fen=amount_fen, idempotency_key=key
            )
        except ProviderDeclined as exc:
            raise PaymentError(
                402, f"refund declined by the payment provider: {exc}", "declined"
            ) from None
        except ProviderUnavailable as exc:
            raise PaymentError(
                503,
                f"payment provider unavailable, retry with the same key: {exc}",
                "provider_unavailable",
            ) from None
        return PaymentRow(
            id="ref_" + secrets.token_hex(12),
            session_id=original.session_id,
            kind="refund",
            amount_fen=amount_fen,
            idempotency_key=key,
            refund_of=original.id,
            request_hash=request_hash_of(original.id, amount_fen, reason),
            provider=receipt.provider,
            provider_ref=receipt.ref,
            method=original.method,
            actor=actor,
            reason=reason,
            created_at=self._clock(),
        )

    async def of_session(self, session_id: str) -> list[PaymentRecord]:
        async with self._sessions() as db:
            rows = (
                await db.execute(
                    select(PaymentRow)
                    .where(PaymentRow.session_id == session_id)
                    .order_by(PaymentRow.created_at, PaymentRow.id)
                )
            ).scalars()
            return [PaymentRecord.of(r) for r in rows]

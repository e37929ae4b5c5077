"""Payment providers: where the money moves (``PaymentService`` records it).

``PaymentProvider`` is the interface; ``ExternalProvider`` (the default) records what the app's
payment backend already collected; ``FakeProvider`` is for tests and the demo. Every call
carries the payment's idempotency key, so a retry cannot charge twice at a provider that
honours keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Receipt:
    provider: str
    ref: str


class ProviderDeclined(Exception):
    """The provider refused (insufficient funds, cancelled by the payer...)."""


class ProviderUnavailable(Exception):
    """The provider could not be reached; the request may be retried with the same key."""


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self,
        *,
        session_id: str,
        amount_fen: int,
        idempotency_key: str,
        method: str,
        provider_ref: str | None,
    ) -> Receipt: ...

    async def refund(
        self, *, payment_ref: str, amount_fen: int, idempotency_key: str
    ) -> Receipt: ...


@dataclass
class FakeProvider:
    """An in-memory provider honouring idempotency keys. Set ``decline`` or ``down`` to make
    the next calls fail the way a real provider does."""

    name: str = "fake"
    decline: str | None = None
    down: bool = False
    charges: dict[str, tuple[str, int]] = field(default_factory=dict)
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)

    def _fail_if_told(self) -> None:
        if self.down:
            raise ProviderUnavailable("fake provider is down")
        if self.decline is not None:
            raise ProviderDeclined(self.decline)

    async def charge(
        self,
        *,
        session_id: str,
        amount_fen: int,
        idempotency_key: str,
        method: str,
        provider_ref: str | None = None,
    ) -> Receipt:
        self._fail_if_told()
        self.charges.setdefault(idempotency_key, (session_id, amount_fen))
        return Receipt(
            self.name, "fake-ch-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        )

    async def refund(self, *, payment_ref: str, amount_fen: int, idempotency_key: str) -> Receipt:
        self._fail_if_told()
        self.refunds.setdefault(idempotency_key, (payment_ref, amount_fen))
        return Receipt(
            self.name, "fake-rf-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        )


class ProviderRefused(Exception):
    """The request lacks what the provider needs (a 422 for the caller, nothing recorded)."""


@dataclass
class ExternalProvider:
    """Money is collected outside the gateway (the app's payment backend with WeChat Pay,
    Alipay, UnionPay...), which records each confirmed payment here with its transaction
    reference. Refunds are recorded here and carried out by that backend."""

    name: str = "external"

    async def charge(
        self,
        *,
        session_id: str,
        amount_fen: int,
        idempotency_key: str,
        method: str,
        provider_ref: str | None = None,
    ) -> Receipt:
        if not provider_ref:
            raise ProviderRefused("provider_ref (the payment backend's transaction id) is required")
        return Receipt(self.name, provider_ref)

    async def refund(self, *, payment_ref: str, amount_fen: int, idempotency_key: str) -> Receipt:
        return Receipt(self.name, f"refund-of:{payment_ref}:{idempotency_key}"[:128])

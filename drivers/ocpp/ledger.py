"""What the central system remembers of one charger's transactions across its reconnections.

A charger that lost its connection re-sends the transaction messages whose answers it did not
get, and later messages of a transaction do not always say which connector it is on (1.6
StopTransaction never does). This small, bounded memory lets the handlers give the same
transaction id to a re-sent StartTransaction, drop a re-sent StopTransaction or 2.0.1
TransactionEvent (same seqNo), and name the connector of a transaction. It lives as long as
the process; the database stays the authority (after a restart, connector 0 means "look the
transaction up").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["TransactionLedger"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Bounded(Generic[K, V]):
    """An insertion-ordered map that forgets its oldest entries beyond *limit*."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)


class TransactionLedger:
    """Per charger: connectors of open transactions, 1.6 starts already answered, ended
    transactions and 2.0.1 sequence numbers already seen."""

    def __init__(self, limit: int = 512) -> None:
        self._connectors: _Bounded[str, int] = _Bounded(limit)
        self._starts: _Bounded[Hashable, str] = _Bounded(limit)
        self._ended: _Bounded[str, bool] = _Bounded(limit)
        self._seqs: _Bounded[tuple[str, int], bool] = _Bounded(limit * 8)

    def start_answered(self, fingerprint: Hashable) -> str | None:
        """The transaction id already given to an identical 1.6 StartTransaction, if any."""
        return self._starts.get(fingerprint)

    def started(self, transaction_id: str, connector_id: int, fingerprint: Hashable = None) -> None:
        self._connectors.put(transaction_id, connector_id)
        if fingerprint is not None:
            self._starts.put(fingerprint, transaction_id)

    def connector(self, transaction_id: str) -> int | None:
        return self._connectors.get(transaction_id)

    def place(self, transaction_id: str, connector_id: int) -> None:
        """Note where a transaction is (a MeterValues or TransactionEvent said so)."""
        self._connectors.put(transaction_id, connector_id)

    def end(self, transaction_id: str) -> bool:
        """Mark the transaction ended; ``False`` if it already was (a re-sent stop)."""
        if transaction_id in self._ended:
            return False
        self._ended.put(transaction_id, True)
        return True

    def seen(self, transaction_id: str, seq_no: int) -> bool:
        """Whether this 2.0.1 (transaction, seqNo) was handled before; records it if not."""
        key = (transaction_id, seq_no)
        if key in self._seqs:
            return True
        self._seqs.put(key, True)
        return False

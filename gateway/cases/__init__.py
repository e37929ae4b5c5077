"""Case reports to the town's digital urban-management case system, and its status mirror.

- ``signing``: HMAC-SHA256 signatures, the same both ways (pure).
- ``report``: the exact JSON bytes of a report (pure).
- ``outbox``: reports recorded atomically with the state change that raised them (DB).
- ``delivery``: the task that sends them, at least once, with an idempotency key.
- ``mirror``: the seven-step status fed back by the case system's signed callbacks (DB).

- ``runtime``: what the runtime hands to the API (:class:`CasesRuntime`); ``metrics``: the figures.
"""

"""Berth-sensor payload codecs, one target per model of ``drivers.sensors.registry.CODECS``
(the NB-IoT frame codec among them): (f_port, payload) into ``registry.decode``."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from drivers.sensors import bosch, nbiot, nwave
from drivers.sensors.messages import CodecError
from drivers.sensors.registry import decode
from fuzz.core import Reasons, Target
from fuzz.mutate import hostile_bytes, mostly

Frame = tuple[int | None, bytes]

# Valid uplinks per model, made by the codecs' own encoders (as the devices send them).
SAMPLES: dict[str, list[Frame]] = {
    nwave.MODEL: [
        nwave.encode_status(True, 3600),
        nwave.encode_status(False, 5),
        nwave.encode_heartbeat(True, 3300, -5.5, 3),
        nwave.encode_startup("2.4.9", "power_on", True),
        nwave.encode_tag_registration("1A2B3C4D", True, 600),
        nwave.encode_tag_registration("ff"),
    ],
    bosch.MODEL: [
        bosch.encode_status(True),
        bosch.encode_heartbeat(False, -20),
        bosch.encode_heartbeat(True, None),
        bosch.encode_startup("0.29.2", "power_on", True, bytes(range(12))),
    ],
    nbiot.MODEL: [
        (None, nbiot.encode_frame("0123456789abcdef", 7, (10, -20, 300), (5, -5, 250))),
        (None, nbiot.encode_frame("fedcba9876543210", 65535, (0, 0, 0), (0, 0, 0), 0, -128, True)),
        (None, nbiot.encode_frame("00000000000000ff", 1, (-32768, 32767, 1), (1, 2, 3),
                                  event=True)),
    ],
}  # fmt: skip


def _strategy(frames: list[Frame]) -> st.SearchStrategy[Frame]:
    """A damaged payload on the sample's own ports four times in five, else on any port; or a
    sample as it is."""
    ports = sorted({p for p, _ in frames if p is not None})
    anywhere = st.integers(-1, 300) | st.none()
    port = mostly(st.sampled_from(ports), anywhere) if ports else mostly(st.none(), anywhere)
    data = hostile_bytes([d for _, d in frames], max_random=64)
    return mostly(st.tuples(port, data), st.sampled_from(frames))


def _check(model: str) -> Callable[[Frame], Reasons]:
    def check(case: Frame) -> Reasons:
        try:
            decode(model, *case)
        except CodecError as exc:
            return (exc.reason,)
        return ()

    return check


TARGETS = tuple(
    Target(
        f"sensor.{model}",
        f"drivers.sensors.registry.decode({model!r}, ...)",
        _strategy(f),
        _check(model),
    )
    for model, f in SAMPLES.items()
)

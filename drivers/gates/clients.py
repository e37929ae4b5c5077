"""The pymodbus client of a bus: Modbus TCP, or Modbus RTU on a serial line, both without
pymodbus's own retries and reconnects (the hub owns that policy).

RTU transport. pymodbus 3.16 carries its own asyncio serial transport
(``pymodbus.transport.serialtransport``: pyserial plus ``add_reader``) and has no public way to
take another. We plug pyserial-asyncio-fast (the maintained fork of pyserial-asyncio that the
issue asks for) in at the one seam pymodbus has, the client's connection factory
(``client.ctx.call_create``, the same ``create_serial_connection(loop, factory, url, **kw)``
signature): its transport opens and closes the port in an executor thread where pymodbus's
opens and closes it on the event loop (blocking calls, seconds on a wedged USB adapter), and
it implements the whole ``asyncio.Transport`` contract (``is_closing``, write
flow control, ``connection_lost`` once after an error) where pymodbus's stubs them. The seam is
private to pymodbus: ``_serial_client`` checks it is there and fails loudly if an upgrade
removes it, and tests/test_gates_modbus.py runs RTU over a real pty pair (socat) through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import serial_asyncio_fast
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerType

from drivers.gates.bus import BusSpec, SerialBus

__all__ = ["Client", "client_for"]

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


def client_for(spec: BusSpec, timeout: float, traced: Callable[[bool], None]) -> Client:
    """A client for the bus *spec* (not connected yet); *traced* hears connects and losses."""
    if isinstance(spec, SerialBus):
        return _serial_client(spec, timeout, traced)
    return AsyncModbusTcpClient(
        spec.host,
        port=spec.port,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
        trace_connect=traced,
    )


def _serial_client(spec: SerialBus, timeout: float, traced: Callable[[bool], None]) -> Client:
    """A pymodbus RTU client whose transport is pyserial-asyncio-fast (see the docstring)."""
    client = AsyncModbusSerialClient(
        spec.device,
        framer=FramerType.RTU,
        baudrate=spec.baudrate,
        bytesize=spec.bytesize,
        parity=spec.parity,
        stopbits=spec.stopbits,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
        trace_connect=traced,
    )
    ctx: Any = client.ctx
    if not callable(getattr(ctx, "call_create", None)):
        raise RuntimeError("pymodbus changed: no connection factory to give the serial transport")
    ctx.call_create = partial(
        serial_asyncio_fast.create_serial_connection,
        asyncio.get_running_loop(),
        ctx.handle_new_connection,
        spec.device,
        baudrate=spec.baudrate,
        bytesize=spec.bytesize,
        parity=spec.parity,
        stopbits=spec.stopbits,
        exclusive=True,
    )
    return client

"""Catalog reassembly: parts by (device, SN) until SumNum items, once, bounded, expiring."""

from __future__ import annotations

import pytest

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.manscdp import CatalogItem, CatalogPart, parse_manscdp
from drivers.gb28181.xmlsafe import ManscdpError

NVR = "62072500081181000001"
NVR2 = "62072500081181000002"


def item(n: int) -> CatalogItem:
    return CatalogItem(device_id=f"620725000813810{n:05d}", name=f"执法记录仪{n:02d}")


def part(sn: int, total: int, *ns: int, device: str = NVR, skipped: int = 0) -> CatalogPart:
    return CatalogPart(device, sn, total, tuple(item(n) for n in ns), skipped)


def test_two_messages_make_one_catalog() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 3, 1, 2), now=0.0) is None
    assert a.in_flight == 1
    c = a.add(part(7, 3, 3), now=0.4)
    assert c is not None
    assert (c.device_id, c.sn, c.sum_num) == (NVR, 7, 3)
    assert [i.name for i in c.items] == ["执法记录仪01", "执法记录仪02", "执法记录仪03"]
    assert a.in_flight == 0


def test_parsed_parts_from_the_wire() -> None:
    def body(*ns: int) -> bytes:
        items = "".join(
            f"<Item><DeviceID>620725000813810{n:05d}</DeviceID><Name>记录仪{n}</Name></Item>"
            for n in ns
        )
        xml = (
            f"<Response><CmdType>Catalog</CmdType><SN>17</SN><DeviceID>{NVR}</DeviceID>"
            f'<SumNum>3</SumNum><DeviceList Num="{len(ns)}">{items}</DeviceList></Response>'
        )
        return ('<?xml version="1.0" encoding="GB2312"?>' + xml).encode("gb2312")

    a = CatalogAssembler()
    first, second = parse_manscdp(body(1, 2)), parse_manscdp(body(3))
    assert isinstance(first, CatalogPart) and isinstance(second, CatalogPart)
    assert a.add(first, 0.0) is None
    c = a.add(second, 0.1)
    assert c is not None and [i.name for i in c.items] == ["记录仪1", "记录仪2", "记录仪3"]


def test_retransmitted_part_is_deduplicated() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 3, 1, 2), 0.0) is None
    assert a.add(part(7, 3, 1, 2), 0.1) is None  # same items again: still two
    c = a.add(part(7, 3, 3), 0.2)
    assert c is not None and len(c.items) == 3


def test_returned_once_late_duplicate_ignored() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 1, 1), 0.0) is not None
    assert a.add(part(7, 1, 1), 0.5) is None
    assert a.duplicates == 1
    assert a.in_flight == 0


def test_a_new_query_sn_is_a_new_catalog() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 1, 1), 0.0) is not None
    assert a.add(part(8, 1, 1), 1.0) is not None


def test_devices_and_sns_do_not_mix() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 2, 1), 0.0) is None
    assert a.add(part(7, 2, 2, device=NVR2), 0.0) is None
    assert a.add(part(8, 2, 2), 0.0) is None
    c = a.add(part(7, 2, 2), 0.0)
    assert c is not None and c.device_id == NVR and c.sn == 7
    assert a.in_flight == 2


def test_empty_catalog_completes_at_once() -> None:
    c = CatalogAssembler().add(part(1, 0), 0.0)
    assert c is not None and c.items == ()


def test_items_without_id_count_as_arrived() -> None:
    a = CatalogAssembler()
    assert a.add(part(7, 3, 1, skipped=1), 0.0) is None
    c = a.add(part(7, 3, 2), 0.1)
    assert c is not None and len(c.items) == 2 and c.skipped == 1


def test_incomplete_catalog_expires() -> None:
    a = CatalogAssembler(timeout_s=30.0)
    assert a.add(part(7, 3, 1), 0.0) is None
    assert a.expire(29.9) == []
    assert a.expire(30.0) == [(NVR, 7)]
    assert a.expired == 1
    # the rest arriving after the timeout starts over and does not complete the old one
    assert a.add(part(7, 3, 2, 3), 31.0) is None


def test_sum_num_bounded() -> None:
    a = CatalogAssembler(max_sum_num=10_000)
    with pytest.raises(ManscdpError) as err:
        a.add(part(1, 10_001, 1), 0.0)
    assert err.value.reason == "too_many_items"
    assert a.in_flight == 0


def test_sum_num_changing_between_parts_refused() -> None:
    a = CatalogAssembler()
    a.add(part(1, 3, 1), 0.0)
    with pytest.raises(ManscdpError) as err:
        a.add(part(1, 5, 2), 0.1)
    assert err.value.reason == "sum_num_mismatch"


def test_more_items_than_announced_are_not_kept() -> None:
    c = CatalogAssembler().add(part(1, 2, 1, 2, 3), 0.0)
    assert c is not None and [i.device_id for i in c.items] == [
        item(1).device_id,
        item(2).device_id,
    ]


def test_in_flight_bounded_per_device_and_overall() -> None:
    a = CatalogAssembler(max_in_flight=3, max_per_device=2)
    a.add(part(1, 9, 1), 0.0)
    a.add(part(2, 9, 1), 0.0)
    a.add(part(3, 9, 1), 0.0)  # third of one device: its oldest (sn 1) goes
    assert a.in_flight == 2 and a.expired == 1
    a.add(part(1, 9, 1, device=NVR2), 0.0)
    with pytest.raises(ManscdpError) as err:
        a.add(part(2, 9, 1, device=NVR2), 0.0)
    assert err.value.reason == "catalog_busy"
    assert a.expire(100.0) and a.in_flight == 0
    assert a.add(part(2, 1, 1, device=NVR2), 100.0) is not None

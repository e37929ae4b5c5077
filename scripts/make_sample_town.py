#!/usr/bin/env python3
"""Generate the shipped sample town file for 山丹县 (Shandan, Zhangye, Gansu).

    python scripts/make_sample_town.py            # rewrite gateway/data/sample_town.toml
    python scripts/make_sample_town.py -o X.toml  # write elsewhere
    python scripts/make_sample_town.py --check    # exit 1 if the shipped file is stale

The output is ILLUSTRATIVE SAMPLE DATA, not the bureau's survey: the kinds of places and the
street names follow the town, but coordinates, capacities, berth layouts and DevEUIs are
plausible inventions. The generator is deterministic: the same seed gives the same bytes on
every run and platform (standard library only; ``random.Random`` with a fixed seed, no set or
dict-order dependence, no clock, no libm calls in the coordinate maths).

Layout: a local metric grid centred on the reference point (38.78 N, 101.08 E), x east, y north.
The central crossroads (鼓楼十字) is at the origin; 北/南大街 run north/south from it, 东/西大街
east/west; 文化街 is a parallel street 420 m south, 新建街 480 m north, 清泉路 620 m east. Their
centre lines go into the file as ``[[streets]]``: the outline the one map draws.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "gateway" / "data" / "sample_town.toml"
DEFAULT_SEED = 20240415

ORIGIN_LAT = 38.78
ORIGIN_LON = 101.08
# Spherical-earth metres per degree at the origin (R = 6371.0088 km), hard-coded so that the
# output does not depend on the platform's libm.
M_PER_DEG_LAT = 111_195.08
M_PER_DEG_LON = 86_682.86

CAR_PARK_TOTAL = 1382  # berths in the 24 car parks in operation (ARCHITECTURE.md)
ONSTREET_SPACING_M = 6.0  # kerbside berth pitch
BAY_PITCH_M = 2.5  # car-park bay width
BAYS_PER_ROW = 12

MODEL_SHARE = {"nwave-nps405": 0.40, "bosch-tps110": 0.35, "nbiot-geomag": 0.25}
REPLACEMENT_RATE = 0.02  # berths whose original sensor failed and was replaced by another model
HEARTBEAT_RATE = 0.04  # sensors configured with a non-default heartbeat
HEARTBEAT_CHOICES = {
    "nwave-nps405": (3600, 21600),
    "bosch-tps110": (3600, 7200),
    "nbiot-geomag": (43200, 86400),
}
# Illustrative DevEUI styles (not vendor allocations): LoRaWAN sensors get a fixed 36-bit
# prefix plus a per-batch serial; NB-IoT sensors report "0" + their 15-digit IMEI.
NWAVE_PREFIX = "70b3d59ba"  # 9 hex digits, IEEE MA-S style (70-B3-D5-…)
BOSCH_PREFIX = "fcd6bd10"  # 8 hex digits
NBIOT_TAC = "86773805"  # 8-digit type allocation code, China-issued style

Point = tuple[float, float]  # (x east, y north) in metres


def to_lonlat(x: float, y: float) -> tuple[float, float]:
    return (round(ORIGIN_LON + x / M_PER_DEG_LON, 6), round(ORIGIN_LAT + y / M_PER_DEG_LAT, 6))


def point_in_polygon(p: Point, ring: list[Point]) -> bool:
    x, y = p
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# --------------------------------------------------------------------------- zones

ZONES: list[tuple[str, str, str, list[Point]]] = [
    (
        "zn-central-paid",
        "中心城区收费区",
        "paid",
        [
            (-760, -560),
            (-300, -700),
            (700, -700),
            (760, -300),
            (760, 660),
            (-500, 660),
            (-760, 300),
        ],
    ),
    ("zn-gulou-noparking", "鼓楼十字禁停区", "no_parking", rect(-25, -25, 25, 25)),
    ("zn-tonghe-ambulance", "同和医院门前急救通道", "ambulance_lane", rect(180, 484, 232, 540)),
    ("zn-wenhuajie-market", "文化街早市 (06:00–09:30)", "market", rect(-650, -440, -30, -400)),
    ("zn-zhening-fire-lane", "浙宁商厦消防通道", "fire_lane", rect(160, -175, 167, -65)),
]
# (id, name, kind, centre line): the town's outline on the one map (no tiles offline)
STREETS: list[tuple[str, str, str, list[Point]]] = [
    ("rd-beidajie", "北大街", "main", [(0, 0), (0, 900)]),
    ("rd-nandajie", "南大街", "main", [(0, 0), (0, -1000)]),
    ("rd-dongdajie", "东大街", "main", [(0, 0), (1150, 0)]),
    ("rd-xidajie", "西大街", "main", [(0, 0), (-950, 0)]),
    ("rd-wenhuajie", "文化街", "minor", [(-800, -420), (700, -420)]),
    ("rd-xinjianjie", "新建街", "minor", [(-700, 480), (1000, 480)]),
    ("rd-qingquanlu", "清泉路", "minor", [(620, 700), (620, -400), (760, -700), (760, -1000)]),
]
PAID_ZONE = "zn-central-paid"
KEEP_CLEAR = [ring for _, _, kind, ring in ZONES if kind != "paid"]

# --------------------------------------------------------------------------- car parks

# (id suffix, name, x, y, capacity, segment_class, guidance?, address)
CAR_PARKS: list[tuple[str, str, float, float, int, str, bool, str]] = [
    ("shiminting", "市民大厅停车场", -260, 180, 96, "A", False, "清泉镇北大街西侧市民大厅"),
    ("zhening", "浙宁商厦停车场", 110, -120, 88, "A", True, "清泉镇南大街浙宁商厦地下"),
    ("tonghe", "同和医院停车场", 205, 580, 46, "A", False, "清泉镇新建街同和医院"),
    ("renminyiyuan", "县人民医院停车场", -480, -250, 64, "B", True, "清泉镇西大街县人民医院"),
    ("keyunzhan", "汽车客运站停车场", 900, -700, 80, "C", False, "清泉镇清泉路南段客运站"),
    ("huochezhan", "火车站停车场", -350, 2050, 120, "C", False, "山丹站站前广场"),
    ("wenhuaguangchang", "文化广场地下停车场", -200, -520, 72, "A", True, "清泉镇文化街文化广场"),
    ("dafosi", "大佛寺景区停车场", 300, -2150, 100, "C", False, "大佛寺景区游客中心"),
    ("xianzhengfu", "县政府停车场", -150, 320, 60, "A", False, "清泉镇北大街县政府"),
    ("shuiwuju", "县税务局停车场", 380, 260, 24, "A", False, "清泉镇东大街县税务局"),
    ("jinxiuyuan", "锦绣园小区停车场", -1100, 700, 56, "B", False, "清泉镇锦绣园小区"),
    ("yanzhijiayuan", "焉支佳苑小区停车场", 1200, 500, 68, "B", False, "清泉镇焉支佳苑小区"),
    ("qingquanxiaoqu", "清泉小区停车场", 700, -950, 40, "B", False, "清泉镇清泉路清泉小区"),
    ("xinchengjiayuan", "新城佳园停车场", -900, -1200, 52, "C", False, "清泉镇新城佳园小区"),
    ("peilibinguan", "培黎宾馆停车场", 60, 200, 30, "A", False, "清泉镇北大街培黎宾馆"),
    (
        "yanzhishan-hotel",
        "焉支山大酒店停车场",
        -420,
        60,
        36,
        "A",
        False,
        "清泉镇西大街焉支山大酒店",
    ),
    ("silu-hotel", "丝路驿站酒店停车场", 820, 80, 28, "B", False, "清泉镇东大街丝路驿站酒店"),
    ("xinle-chaoshi", "新乐超市停车场", -90, -200, 40, "A", True, "清泉镇南大街新乐超市"),
    ("hualian-chaoshi", "华联超市停车场", 450, -320, 38, "A", False, "清泉镇清泉路华联超市"),
    ("nongmao", "农贸市场停车场", -560, -560, 61, "B", False, "清泉镇文化街西段农贸市场"),
    ("tiyuchang", "县体育场停车场", 1000, -250, 60, "B", False, "清泉镇东大街县体育场"),
    ("gonganju", "县公安局停车场", -700, 300, 20, "B", False, "清泉镇西大街县公安局"),
    ("dongguan", "东关公共停车场", 1350, -50, 55, "B", False, "清泉镇东关"),
    ("xiguan", "西关公共停车场", -1250, -80, 48, "B", False, "清泉镇西关"),
]

# --------------------------------------------------------------------------- on-street segments

# (id, street, start x, start y, direction (dx, dy), side, segment_class, (min, max) berths)
SEGMENTS: list[tuple[str, str, float, float, Point, str, str, tuple[int, int]]] = [
    ("st-beidajie-1", "北大街", 8, 35, (0, 1), "东侧", "A", (28, 40)),
    ("st-beidajie-2", "北大街", -8, 35, (0, 1), "西侧", "A", (28, 40)),
    ("st-nandajie-1", "南大街", 8, -35, (0, -1), "东侧", "A", (28, 40)),
    ("st-nandajie-2", "南大街", -8, -35, (0, -1), "西侧", "A", (28, 40)),
    ("st-dongdajie-1", "东大街", 35, 8, (1, 0), "北侧", "A", (24, 38)),
    ("st-xidajie-1", "西大街", -35, -8, (-1, 0), "南侧", "A", (24, 38)),
    ("st-wenhuajie-1", "文化街", 40, -412, (1, 0), "北侧", "B", (18, 30)),
    ("st-qingquanlu-1", "清泉路", 612, 30, (0, 1), "西侧", "B", (20, 34)),
    ("st-qingquanlu-2", "清泉路", 612, -30, (0, -1), "西侧", "B", (20, 34)),
    ("st-xinjianjie-1", "新建街", -320, 472, (1, 0), "南侧", "B", (18, 30)),
    ("st-xinjianjie-2", "新建街", 800, 472, (1, 0), "南侧", "C", (15, 26)),
]


# --------------------------------------------------------------------------- EV chargers

# (vendor, model, current, power kW, connectors): illustrative models of the kinds in town
CHARGER_MODELS = {
    "dc120": ("TELD", "TCDZ-DC120", "DC", 120.0, 2),
    "dc60": ("XJ Electric", "XJZC-DC60", "DC", 60.0, 2),
    "ac7": ("StarCharge", "AC7-S1", "AC", 7.0, 1),
    "ac7b": ("Wanbang", "WB-AC7K", "AC", 7.0, 1),
}
# (car park suffix or None, place, x, y, [(model key, count)]): 56 chargers in all
CHARGER_PLACES: list[tuple[str | None, str, float, float, list[tuple[str, int]]]] = [
    ("shiminting", "市民大厅停车场", -260, 180, [("dc60", 2), ("ac7", 2)]),
    ("zhening", "浙宁商厦停车场", 110, -120, [("dc60", 2), ("ac7", 2)]),
    ("tonghe", "同和医院停车场", 205, 580, [("ac7", 2)]),
    ("renminyiyuan", "县人民医院停车场", -480, -250, [("ac7", 2)]),
    ("keyunzhan", "汽车客运站停车场", 900, -700, [("dc120", 4), ("dc60", 2)]),
    ("huochezhan", "火车站停车场", -350, 2050, [("dc120", 4), ("ac7b", 2)]),
    ("wenhuaguangchang", "文化广场地下停车场", -200, -520, [("dc60", 2), ("ac7", 2)]),
    ("dafosi", "大佛寺景区停车场", 300, -2150, [("dc60", 2), ("ac7b", 2)]),
    ("xianzhengfu", "县政府停车场", -150, 320, [("ac7", 2)]),
    ("jinxiuyuan", "锦绣园小区停车场", -1100, 700, [("ac7b", 3)]),
    ("yanzhijiayuan", "焉支佳苑小区停车场", 1200, 500, [("ac7b", 3)]),
    ("qingquanxiaoqu", "清泉小区停车场", 700, -950, [("ac7", 2)]),
    ("xinchengjiayuan", "新城佳园停车场", -900, -1200, [("ac7", 2)]),
    ("peilibinguan", "培黎宾馆停车场", 60, 200, [("ac7", 1)]),
    ("yanzhishan-hotel", "焉支山大酒店停车场", -420, 60, [("ac7", 2)]),
    ("silu-hotel", "丝路驿站酒店停车场", 820, 80, [("ac7", 1)]),
    (None, "中石油清泉加油站", 1500, -600, [("dc120", 2), ("dc60", 2)]),
    (None, "中石化东关加油站", 1650, 150, [("dc120", 2), ("dc60", 2)]),
]

# --------------------------------------------------------------------------- lanes

# Barrier-gate buses: two Modbus TCP serial servers (the demo's gate simulator listens on
# these ports) and one RS-485 line read over RTU. The controller models are examples: no
# public register map exists, each site's relay board is configured by model name.
BUS_NORTH = "tcp://127.0.0.1:1502"  # 市民大厅, 同和医院
BUS_SOUTH = "tcp://127.0.0.1:1503"  # 浙宁商厦
BUS_STATION = "serial:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1"  # 火车站
# (car park suffix, lane suffix, kind, bus, unit, controller model, display lines or None)
LANES: list[tuple[str, str, str, str, int, str, int | None]] = [
    ("shiminting", "in", "entry", BUS_NORTH, 1, "example-relay4", 4),
    ("shiminting", "out", "exit", BUS_NORTH, 2, "example-relay4", 4),
    ("tonghe", "in", "entry", BUS_NORTH, 3, "example-relay4", None),
    ("tonghe", "out", "exit", BUS_NORTH, 4, "example-relay4", 2),
    ("zhening", "in", "entry", BUS_SOUTH, 1, "example-logic-hr", 4),
    ("zhening", "out", "exit", BUS_SOUTH, 2, "example-logic-hr", 4),
    ("huochezhan", "in-1", "entry", BUS_STATION, 1, "example-relay4", 2),
    ("huochezhan", "in-2", "entry", BUS_STATION, 2, "example-relay4", 2),
    ("huochezhan", "out-1", "exit", BUS_STATION, 3, "example-relay4", 4),
]


@dataclass
class ChargerRec:
    id: str
    site: str | None
    place: str
    x: float
    y: float
    model_key: str


@dataclass
class SiteRec:
    id: str
    name: str
    kind: str
    x: float
    y: float
    capacity: int
    counting: str
    segment_class: str
    zone: str | None
    address: str
    controller_id: str | None


@dataclass
class BerthRec:
    id: str
    site: str
    number: str
    x: float
    y: float


@dataclass
class SensorRec:
    dev_eui: str
    model: str
    berth: str
    heartbeat_s: int | None


# --------------------------------------------------------------------------- officers
# 57 officers and 15 assistants (invented names), each with one body cam: cam n for officer n,
# id area 62072500 + industry 08 + type 138 (mobile transmission device) + network 0 + serial.
SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘蒋蔡余"
    "杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙"
    "史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞宇浩凯健俊峰辉斌亮婷"
    "雪琳晨欣怡佳文博志海波"
)
ENFORCEMENT_SQUADS = [f"执法{c}中队" for c in "一二三四五六"]
INSPECTION_SQUAD = "督查中队"


def bodycam_id(n: int) -> str:
    return f"62072500081380{n:06d}"


@dataclass
class OfficerRec:
    id: str
    name: str
    squad: str
    role: str
    bodycam: str


def _officers(rng: random.Random) -> list[OfficerRec]:
    out: list[OfficerRec] = []
    names: set[str] = set()
    for n in range(1, 73):
        while True:
            name = rng.choice(SURNAMES) + "".join(
                rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))
            )
            if name not in names:
                names.add(name)
                break
        role = "officer" if n <= 57 else "assistant"
        # 6 inspectors (督查中队), the rest of the officers by turns over the six squads; the
        # assistants by turns too.
        squad = INSPECTION_SQUAD if n <= 6 else ENFORCEMENT_SQUADS[n % 6]
        out.append(OfficerRec(f"of-{n:03d}", name, squad, role, bodycam_id(n)))
    return out


# --------------------------------------------------------------------------- drones
# The bureau's 2 patrol drones with loudspeakers, over the busiest places: drone-1 (a DJI dock
# with its aircraft; invented sns) over the 文化街 early market, drone-2 (a MAVLink vehicle,
# system id 1) over the station and the 同和医院 entrance. (id, name, kind, keys, patrol
# area ring, home) in metres from the origin like everything else.
DRONES: list[tuple[str, str, str, dict[str, str | int], list[Point], Point]] = [
    (
        "drone-1",
        "文化街早市巡查机",
        "dji",
        {"dock_sn": "7CTDM1234567890", "aircraft_sn": "1581F5FHD2345678"},
        rect(-900, -700, 100, -150),
        (-340, -300),
    ),
    (
        "drone-2",
        "火车站—同和医院巡查机",
        "mavlink",
        {"system_id": 1},
        [(-700, 2300), (0, 2300), (450, 900), (450, 400), (0, 400), (-700, 1700)],
        (180, 620),
    ),
]


@dataclass
class TownData:
    zones: list[tuple[str, str, str, list[Point]]]
    sites: list[SiteRec]
    berths: list[BerthRec]
    sensors: list[SensorRec]
    chargers: list[ChargerRec]
    officers: list[OfficerRec]


def _zone_for(x: float, y: float) -> str | None:
    ring = next(r for zid, _, _, r in ZONES if zid == PAID_ZONE)
    return PAID_ZONE if point_in_polygon((x, y), ring) else None


def _car_park_bays(site_id: str, cx: float, cy: float, n: int) -> list[BerthRec]:
    """Bays in rows of BAYS_PER_ROW, back-to-back pairs of rows separated by 6 m aisles."""
    rows = -(-n // BAYS_PER_ROW)
    row_y = []
    y = 0.0
    for r in range(rows):
        row_y.append(y)
        y += 5.0 if r % 2 == 0 else 6.0 + 5.0  # back-to-back, then aisle
    width = (BAYS_PER_ROW - 1) * BAY_PITCH_M
    y_mid = row_y[-1] / 2
    out = []
    for i in range(n):
        r, c = divmod(i, BAYS_PER_ROW)
        bx = cx - width / 2 + c * BAY_PITCH_M
        by = cy + y_mid - row_y[r]
        num = f"{i + 1:03d}"
        out.append(BerthRec(f"{site_id}-{num}", site_id, num, bx, by))
    return out


def _imei(tac: str, serial: int) -> str:
    body = f"{tac}{serial:06d}"
    total = 0
    for i, ch in enumerate(body):  # Luhn, doubling every second digit from the left (IMEI)
        d = int(ch) * (2 if i % 2 == 1 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


class EuiFactory:
    """Per-model DevEUIs: each installation batch is a run of near-consecutive serials."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def batch(self, model: str) -> int:
        if model == "nbiot-geomag":
            return self.rng.randrange(100_000, 900_000)
        return self.rng.randrange(0x100000, 0x0FFFFFFF if model == "bosch-tps110" else 0x7FFFFFF)

    def make(self, model: str, serial: int) -> str:
        if model == "nwave-nps405":
            eui = f"{NWAVE_PREFIX}{serial & 0xFFFFFFF:07x}"
        elif model == "bosch-tps110":
            eui = f"{BOSCH_PREFIX}{serial & 0xFFFFFFFF:08x}"
        else:
            eui = "0" + _imei(NBIOT_TAC, serial % 1_000_000)
        return eui

    def take(self, model: str, serial: int) -> tuple[str, int]:
        """The DevEUI for *serial* (skipping any already used), and the next serial."""
        while (eui := self.make(model, serial)) in self.used:
            serial += 1
        self.used.add(eui)
        step = 1 if self.rng.random() < 0.9 else self.rng.randint(2, 5)  # a few dud units
        return eui, serial + step


def _assign_models(groups: list[tuple[str, int]]) -> dict[str, str]:
    """One model per installation (site), balancing berth counts towards MODEL_SHARE."""
    total = sum(n for _, n in groups)
    assigned = dict.fromkeys(MODEL_SHARE, 0)
    out: dict[str, str] = {}
    for site_id, n in sorted(groups, key=lambda g: (-g[1], g[0])):
        model = max(MODEL_SHARE, key=lambda m: (MODEL_SHARE[m] * total - assigned[m], m))
        out[site_id] = model
        assigned[model] += n
    return out


def build(seed: int = DEFAULT_SEED) -> TownData:
    rng = random.Random(seed)
    sites: list[SiteRec] = []
    berths: list[BerthRec] = []

    for sfx, name, x, y, cap, cls, guidance, address in CAR_PARKS:
        sid = f"cp-{sfx}"
        sites.append(
            SiteRec(
                id=sid,
                name=name,
                kind="car_park",
                x=x,
                y=y,
                capacity=cap,
                counting="berth_sensors" if guidance else "entry_exit",
                segment_class=cls,
                zone=_zone_for(x, y),
                address=f"山丹县{address}",
                controller_id=None if guidance else f"ctl-{sfx}",
            )
        )
        if guidance:
            berths.extend(_car_park_bays(sid, x, y, cap))

    for sid, street, x0, y0, (dx, dy), side, cls, (lo, hi) in SEGMENTS:
        n = rng.randint(lo, hi)
        line = []
        for i in range(n):
            num = f"{i + 1:03d}"
            bx, by = x0 + dx * i * ONSTREET_SPACING_M, y0 + dy * i * ONSTREET_SPACING_M
            line.append(BerthRec(f"{sid}-{num}", sid, num, bx, by))
        mx, my = (line[0].x + line[-1].x) / 2, (line[0].y + line[-1].y) / 2
        sites.append(
            SiteRec(
                id=sid,
                name=f"{street}{side}路内泊位 ({sid.rsplit('-', 1)[1]}段)",
                kind="on_street",
                x=mx,
                y=my,
                capacity=n,
                counting="berth_sensors",
                segment_class=cls,
                zone=_zone_for(mx, my),
                address=f"山丹县清泉镇{street}{side}",
                controller_id=None,
            )
        )
        berths.extend(line)

    # Sensors: every berth of a berth_sensors site gets exactly one.
    sensed = [s for s in sites if s.counting == "berth_sensors"]
    site_model = _assign_models([(s.id, s.capacity) for s in sensed])
    euis = EuiFactory(rng)
    by_site: dict[str, list[BerthRec]] = {}
    for b in berths:
        by_site.setdefault(b.site, []).append(b)
    sensors: list[SensorRec] = []
    later_batches = {m: euis.batch(m) for m in MODEL_SHARE}  # replacement stock
    for s in sensed:
        model = site_model[s.id]
        serial = euis.batch(model)
        for b in by_site[s.id]:
            m = model
            if rng.random() < REPLACEMENT_RATE:  # failed unit replaced from another vendor's stock
                m = rng.choice([x for x in MODEL_SHARE if x != model])
                eui, later_batches[m] = euis.take(m, later_batches[m])
            else:
                eui, serial = euis.take(model, serial)
            hb = rng.choice(HEARTBEAT_CHOICES[m]) if rng.random() < HEARTBEAT_RATE else None
            sensors.append(SensorRec(eui, m, b.id, hb))

    # Chargers: a separate random stream, so they never move the sensors and berths above.
    crng = random.Random(seed + 56)
    chargers: list[ChargerRec] = []
    for sfx, place, x, y, kinds in CHARGER_PLACES:
        for key, count in kinds:
            for _ in range(count):
                n = len(chargers) + 1
                cx, cy = x + crng.uniform(-15, 15), y + crng.uniform(-15, 15)
                site = f"cp-{sfx}" if sfx else None
                chargers.append(ChargerRec(f"SDEV{n:03d}", site, place, cx, cy, key))

    officers = _officers(random.Random(seed + 72))  # its own stream: nothing above moves
    data = TownData(ZONES, sites, berths, sensors, chargers, officers)
    _self_check(data)
    return data


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"make_sample_town: invariant broken: {what}")


def _self_check(t: TownData) -> None:
    """Invariants the shipped file promises (the pydantic schema is checked by the tests)."""
    parks = [s for s in t.sites if s.kind == "car_park"]
    _require(len(parks) == 24, f"{len(parks)} car parks")
    total = sum(s.capacity for s in parks)
    _require(total == CAR_PARK_TOTAL, f"car-park capacities sum to {total}")
    _require(all(20 <= s.capacity <= 150 for s in parks), "car-park sizes 20..150")
    _require(len(t.chargers) == 56, f"{len(t.chargers)} chargers (the town runs 56)")
    roles = [o.role for o in t.officers]
    _require(roles.count("officer") == 57 and roles.count("assistant") == 15, "57 + 15 officers")
    _require(all(len(o.bodycam) == 20 for o in t.officers), "20-digit body cam ids")
    site_ids = {s.id for s in t.sites}
    _require(all(c.site is None or c.site in site_ids for c in t.chargers), "charger sites")
    for label, ids in (
        ("site", [s.id for s in t.sites]),
        ("berth", [b.id for b in t.berths]),
        ("sensor", [s.dev_eui for s in t.sensors]),
        ("zone", [z[0] for z in t.zones]),
        ("charger", [c.id for c in t.chargers]),
        ("officer", [o.id for o in t.officers]),
        ("bodycam", [o.bodycam for o in t.officers]),
    ):
        _require(len(ids) == len(set(ids)), f"duplicate {label} ids")
    per_site: dict[str, int] = {}
    for b in t.berths:
        per_site[b.site] = per_site.get(b.site, 0) + 1
        _require(not any(point_in_polygon((b.x, b.y), r) for r in KEEP_CLEAR), f"{b.id} in zone")
    for s in t.sites:
        if s.counting == "berth_sensors":
            _require(per_site[s.id] == s.capacity, f"{s.id} berth count")
    bound = {s.berth for s in t.sensors}
    _require(len(bound) == len(t.sensors) == len(t.berths), "one sensor per berth")


# --------------------------------------------------------------------------- TOML output


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _ll(x: float, y: float) -> str:
    lon, lat = to_lonlat(x, y)
    return f"lat = {lat:.6f}\nlon = {lon:.6f}"


def render(t: TownData, seed: int = DEFAULT_SEED) -> str:
    by_model: dict[str, int] = dict.fromkeys(MODEL_SHARE, 0)
    for sn in t.sensors:
        by_model[sn.model] += 1
    parks = [s for s in t.sites if s.kind == "car_park"]
    street = [s for s in t.sites if s.kind == "on_street"]
    out: list[str] = [
        "# citygate sample town: 山丹县 (Shandan, Zhangye, Gansu)",
        "#",
        f"# GENERATED by scripts/make_sample_town.py (seed {seed}). Do not edit by hand:",
        "# change the generator and run `python scripts/make_sample_town.py`.",
        "#",
        "# ILLUSTRATIVE SAMPLE DATA, NOT THE BUREAU'S SURVEY. Place kinds and street names follow",
        "# the town; coordinates, capacities, berth layouts and DevEUIs are plausible inventions.",
        "# Replace this file with the surveyed town file before using citygate in operation.",
        "#",
        f"# {len(parks)} car parks with {sum(s.capacity for s in parks)} berths "
        f"({sum(1 for s in parks if s.counting == 'berth_sensors')} with per-berth guidance), "
        f"{len(street)} on-street segments with {sum(s.capacity for s in street)} berths,",
        f"# {len(t.sensors)} sensors ("
        + ", ".join(f"{m} {n}" for m, n in by_model.items())
        + f"), {len(t.chargers)} EV chargers, {len(LANES)} car-park lanes with cameras and "
        "barrier gates,",
        f"# {len(t.officers)} officers and assistants (invented names) with one body cam each, "
        f"{len(DRONES)} patrol drones. Coordinates: WGS-84 degrees.",
        "",
        "[town]",
        f"name = {_q('山丹县 (sample data)')}",
        f"timezone = {_q('Asia/Shanghai')}",
        "sample = true",
        "note = "
        + _q(
            "Illustrative sample data, not the bureau's survey: coordinates, capacities, "
            "berth layouts and sensor DevEUIs are plausible but not real. "
            "Generated by scripts/make_sample_town.py."
        ),
    ]
    for zid, name, kind, ring in t.zones:
        pts = ", ".join("[{:.6f}, {:.6f}]".format(*to_lonlat(x, y)) for x, y in ring)
        out += ["", "[[zones]]", f"id = {_q(zid)}", f"name = {_q(name)}", f"kind = {_q(kind)}"]
        out.append(f"polygon = [{pts}]")
    for rid, name, kind, line in STREETS:
        pts = ", ".join("[{:.6f}, {:.6f}]".format(*to_lonlat(x, y)) for x, y in line)
        out += ["", "[[streets]]", f"id = {_q(rid)}", f"name = {_q(name)}", f"kind = {_q(kind)}"]
        out.append(f"line = [{pts}]")
    for s in t.sites:
        out += ["", "[[sites]]", f"id = {_q(s.id)}", f"name = {_q(s.name)}", f"kind = {_q(s.kind)}"]
        out.append(_ll(s.x, s.y))
        out += [
            f"capacity = {s.capacity}",
            f"counting = {_q(s.counting)}",
            f"segment_class = {_q(s.segment_class)}",
        ]
        if s.zone is not None:
            out.append(f"zone = {_q(s.zone)}")
        out.append(f"address = {_q(s.address)}")
        if s.controller_id is not None:
            out.append(f"controller_id = {_q(s.controller_id)}")
    for b in t.berths:
        out += ["", "[[berths]]", f"id = {_q(b.id)}", f"site = {_q(b.site)}"]
        out += [f"number = {_q(b.number)}", _ll(b.x, b.y)]
    for sn in t.sensors:
        out += ["", "[[sensors]]", f"dev_eui = {_q(sn.dev_eui)}", f"model = {_q(sn.model)}"]
        out.append(f"berth = {_q(sn.berth)}")
        if sn.heartbeat_s is not None:
            out.append(f"heartbeat_s = {sn.heartbeat_s}")
    for c in t.chargers:
        vendor, model, current, power, connectors = CHARGER_MODELS[c.model_key]
        out += ["", "[[chargers]]", f"id = {_q(c.id)}"]
        if c.site is not None:
            out.append(f"site = {_q(c.site)}")
        out += [f"place = {_q(c.place)}", _ll(c.x, c.y)]
        out += [f"vendor = {_q(vendor)}", f"model = {_q(model)}", f"current = {_q(current)}"]
        out += [f"power_kw = {power}", f"connectors = {connectors}"]
    for sfx, lane, kind, bus, unit, model, lines in LANES:
        out += ["", "[[lanes]]", f"id = {_q(f'ln-{sfx}-{lane}')}", f"site = {_q(f'cp-{sfx}')}"]
        out += [f"kind = {_q(kind)}", f"camera = {_q(f'cam-{sfx}-{lane}')}"]
        out.append(f"gate = {{ bus = {_q(bus)}, unit = {unit}, model = {_q(model)} }}")
        if lines is not None:
            out.append(f"display = {{ lines = {lines}, voice = true }}")
    for o in t.officers:
        out += ["", "[[officers]]", f"id = {_q(o.id)}", f"name = {_q(o.name)}"]
        out += [f"squad = {_q(o.squad)}", f"role = {_q(o.role)}", f"bodycam = {_q(o.bodycam)}"]
    for did, name, kind, keys, ring, home in DRONES:
        out += ["", "[[drones]]", f"id = {_q(did)}", f"name = {_q(name)}", f"kind = {_q(kind)}"]
        out += [f"{k} = {_q(v) if isinstance(v, str) else v}" for k, v in keys.items()]
        pts = ", ".join("[{:.6f}, {:.6f}]".format(*to_lonlat(x, y)) for x, y in ring)
        out.append(f"patrol_area = [{pts}]")
        out.append("home = [{:.6f}, {:.6f}]".format(*to_lonlat(*home)))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the shipped sample town file (山丹县).")
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help="output TOML path")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if OUTPUT differs")
    args = ap.parse_args(argv)
    text = render(build(args.seed), args.seed)
    data = text.encode("utf-8")
    if args.check:
        try:
            current = args.output.read_bytes()
        except OSError:
            current = b""
        if current != data:
            print(f"{args.output} is stale: run scripts/make_sample_town.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

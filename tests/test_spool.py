"""The telemetry spool (telemetry/spool.py) on real files: order, ack, full policies, dead
letters, concurrency, kill -9, damaged files, the read-only CLI view, and the size budget."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import tempfile
import threading
from collections import deque
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.spool import (
    DEFAULT_MAX_BYTES,
    Spool,
    SpoolBusyError,
    SpoolClosedError,
    SpoolError,
    SpoolFormatError,
    read_stats,
)

T0 = 1_700_000_000_000_000_000


def line(i: int, run: str = "a") -> str:
    """A 10-digit-seq point; the same length for every i < 10**6 (48 bytes)."""
    return f"berth,site=sd,run={run} seq={i:06d}i,occupied=1i {T0 + i}"


LINE_BYTES = len(line(0).encode())


def lines(a: int, b: int, run: str = "a") -> list[str]:
    return [line(i, run) for i in range(a, b)]


async def pending(spool: Spool) -> list[str]:
    batch = await spool.peek(10**9)
    return [] if batch is None else batch.lines


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "spool.sqlite3"


# -- order, ack ---------------------------------------------------------------------------------
async def test_order_preserved_across_appends_and_reopen(path: Path) -> None:
    async with await Spool.open(path) as spool:
        for a in range(0, 1000, 100):
            assert await spool.append(lines(a, a + 100)) == 100
        assert await pending(spool) == lines(0, 1000)
    async with await Spool.open(path) as spool:
        assert await pending(spool) == lines(0, 1000)
        await spool.append(lines(1000, 1010))
        assert await pending(spool) == lines(0, 1010)
        stats = await spool.stats()
        assert stats.pending_points == 1010
        assert stats.pending_bytes == 1010 * LINE_BYTES
        assert stats.oldest_ts_ns == T0


async def test_ack_removes_exactly_the_batch(path: Path) -> None:
    async with await Spool.open(path) as spool:
        assert await spool.peek(10) is None
        await spool.append(lines(0, 10))
        batch = await spool.peek(4)
        assert batch is not None
        assert batch.lines == lines(0, 4)
        assert batch.last_id - batch.first_id == 3
        assert await spool.peek(4) == batch  # peek does not remove
        await spool.ack(batch)
        assert await pending(spool) == lines(4, 10)
        await spool.ack(batch)  # a second ack of the same batch removes nothing
        assert await pending(spool) == lines(4, 10)
        stats = await spool.stats()
        assert (stats.pending_points, stats.pending_bytes) == (6, 6 * LINE_BYTES)
        assert stats.oldest_ts_ns == T0 + 4
        rest = await spool.peek(100)
        assert rest is not None
        await spool.ack(rest)
        assert await spool.peek(100) is None
        assert (await spool.stats()).oldest_ts_ns is None
        # ids are never reused once the table is empty: the old batch cannot hit new lines
        await spool.append(lines(10, 12))
        await spool.ack(batch)
        await spool.ack(rest)
        assert await pending(spool) == lines(10, 12)


async def test_oldest_timestamp_and_lines_without_one(path: Path) -> None:
    async with await Spool.open(path) as spool:
        await spool.append(['m,t=a s="x 123"', "m v=1", "m v=2i -5", "m v=3i 7"])
        assert (await spool.stats()).oldest_ts_ns is None
        for expected in (None, -5, 7):
            batch = await spool.peek(1)
            assert batch is not None
            await spool.ack(batch)
            assert (await spool.stats()).oldest_ts_ns == expected


async def test_bad_lines_are_refused_whole(path: Path) -> None:
    async with await Spool.open(path) as spool:
        for bad in (["ok 1", "two\nlines 2"], ["ok 1", ""], ["cr\r 1"], ["\ud800 1"]):
            with pytest.raises(ValueError, match="spooled line"):
                await spool.append(bad)
        with pytest.raises(TypeError):
            await spool.append("m v=1i 1")
        with pytest.raises(TypeError):
            await spool.append([b"m v=1i 1"])  # type: ignore[list-item]
        assert await spool.append([]) == 0
        assert await spool.peek(10) is None
        assert (await spool.stats()).pending_points == 0


# -- full policies ------------------------------------------------------------------------------
async def test_drop_oldest_keeps_the_newest_and_counts_exactly(path: Path) -> None:
    async with await Spool.open(path, max_bytes=10 * LINE_BYTES) as spool:
        assert await spool.append(lines(0, 8)) == 8
        assert await spool.append(lines(8, 13)) == 5  # 3 oldest evicted
        stats = await spool.stats()
        assert (stats.pending_points, stats.dropped) == (10, 3)
        assert await pending(spool) == lines(3, 13)
        # a batch bigger than the whole spool: everything pending goes, and its oldest lines
        assert await spool.append(lines(13, 25)) == 10
        assert await pending(spool) == lines(15, 25)
        assert (await spool.stats()).dropped == 3 + 10 + 2
        # a line that can never fit is dropped alone; the rest of its batch is kept
        huge = "big v=" + "9" * (10 * LINE_BYTES) + "i 1"
        assert await spool.append([line(25), huge, line(26)]) == 2
        assert await pending(spool) == lines(17, 27)
        stats = await spool.stats()
        assert (stats.pending_points, stats.pending_bytes) == (10, 10 * LINE_BYTES)
        assert stats.dropped == 15 + 2 + 1
    # counts survive a restart
    assert read_stats(path).dropped == 18
    async with await Spool.open(path, max_bytes=10 * LINE_BYTES) as spool:
        assert (await spool.stats()).dropped == 18


async def test_drop_newest_refuses_new_lines_and_counts_exactly(path: Path) -> None:
    async with await Spool.open(path, max_bytes=10 * LINE_BYTES, policy="drop_newest") as spool:
        assert await spool.append(lines(0, 8)) == 8
        assert await spool.append(lines(8, 13)) == 2  # 3 refused
        assert await spool.append(lines(13, 15)) == 0
        assert await pending(spool) == lines(0, 10)
        stats = await spool.stats()
        assert (stats.pending_points, stats.pending_bytes, stats.dropped) == (
            10,
            10 * LINE_BYTES,
            5,
        )
        batch = await spool.peek(3)
        assert batch is not None
        await spool.ack(batch)  # room for 3 again
        assert await spool.append(lines(15, 20)) == 3
        assert await pending(spool) == lines(3, 10) + lines(15, 18)
        assert (await spool.stats()).dropped == 7


def _model_append(queue: deque[str], batch: list[str], limit: int, policy: str) -> tuple[int, int]:
    """Reference: (kept of batch, dropped) for one append, stated the naive way."""
    size = sum(len(s.encode()) for s in queue)
    if policy == "drop_newest":
        kept = 0
        for s in batch:
            if size + len(s.encode()) > limit:
                break
            queue.append(s)
            size += len(s.encode())
            kept += 1
        return kept, len(batch) - kept
    fits = [s for s in batch if len(s.encode()) <= limit]
    dropped = len(batch) - len(fits)
    queue.extend(fits)
    size += sum(len(s.encode()) for s in fits)
    while size > limit:
        size -= len(queue.popleft().encode())
        dropped += 1
    kept = sum(1 for s in fits if s in queue)  # lines are unique
    return kept, dropped


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=st.sampled_from(["drop_oldest", "drop_newest"]),
    limit=st.integers(min_value=30, max_value=400),
    ops=st.lists(
        st.one_of(
            st.lists(st.integers(min_value=0, max_value=60), min_size=0, max_size=12),
            st.integers(min_value=1, max_value=8),  # peek n + ack
        ),
        max_size=12,
    ),
)
def test_policies_match_a_reference_model(policy: str, limit: int, ops: list[object]) -> None:
    async def run(path: Path) -> None:
        queue: deque[str] = deque()
        dropped = seq = 0
        async with await Spool.open(path, max_bytes=limit, policy=policy) as spool:  # type: ignore[arg-type]
            for op in ops:
                if isinstance(op, list):
                    batch = []
                    for pad in op:  # lines of varied size, unique by seq
                        batch.append(f"m,p={'x' * pad} s={seq}i {seq}")
                        seq += 1
                    kept, lost = _model_append(queue, batch, limit, policy)
                    dropped += lost
                    assert await spool.append(batch) == kept
                else:
                    assert isinstance(op, int)
                    peeked = await spool.peek(op)
                    expected = list(queue)[:op]
                    assert (peeked.lines if peeked else []) == expected
                    if peeked:
                        await spool.ack(peeked)
                        for _ in expected:
                            queue.popleft()
                stats = await spool.stats()
                assert await pending(spool) == list(queue)
                assert stats.pending_points == len(queue)
                assert stats.pending_bytes == sum(len(s.encode()) for s in queue) <= limit
                assert stats.dropped == dropped

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "spool.sqlite3"))


# -- dead letters -------------------------------------------------------------------------------
async def test_dead_letters_recorded_never_replayed(path: Path) -> None:
    at = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    async with await Spool.open(path) as spool:
        await spool.append(lines(0, 5))
        batch = await spool.peek(5)
        assert batch is not None
        bad = [batch.lines[1], batch.lines[3]]
        await spool.dead_letter(bad, 'partial write: unable to parse "x": bad timestamp', at)
        await spool.ack(batch)
        assert await spool.peek(10) is None
        local = at.astimezone(timezone(timedelta(hours=8)))
        await spool.dead_letter(["m v=oops 1"], "invalid field", local)
        letters = await spool.dead_letters()
        assert [d.line for d in letters] == ["m v=oops 1", bad[1], bad[0]]  # newest first
        assert letters[0].reason == "invalid field"
        assert letters[1].reason.startswith("partial write")
        assert all(d.at == at and d.at.utcoffset() == timedelta(0) for d in letters)
        assert letters[0].id > letters[1].id > letters[2].id
        assert [d.line for d in await spool.dead_letters(limit=1)] == ["m v=oops 1"]
        stats = await spool.stats()
        assert (stats.dead_lettered, stats.pending_points, stats.dropped) == (3, 0, 0)
        with pytest.raises(ValueError, match="aware"):
            await spool.dead_letter(["m v=1"], "x", datetime(2026, 1, 1))
        # evidence is kept even when it is not valid UTF-8
        await spool.dead_letter(['m s="\ud800" 1'], "bad utf-8 \udcff", at)
        odd = (await spool.dead_letters(1))[0]
        assert (odd.line, odd.reason) == ('m s="?" 1', "bad utf-8 ?")
        await spool.append(lines(5, 6))
        assert await pending(spool) == lines(5, 6)  # dead letters never come back
    assert read_stats(path).dead_lettered == 4
    async with await Spool.open(path) as spool:
        assert len(await spool.dead_letters()) == 4


async def test_dead_letter_table_is_capped_count_is_total(path: Path) -> None:
    at = datetime.now(UTC)
    async with await Spool.open(path, dead_letter_max_bytes=1000) as spool:
        for i in range(30):
            await spool.dead_letter([line(i)], "bad", at)
        letters = await spool.dead_letters(limit=1000)
        per = LINE_BYTES + 3
        assert len(letters) == 1000 // per
        assert letters[0].line == line(29)
        assert (await spool.stats()).dead_lettered == 30
        await spool.dead_letter([line(99)], "r" * 10_000, at)
        newest = await spool.dead_letters(1000)
        assert [d.line for d in newest] == [line(99)]  # bigger than the cap: kept alone
        assert len(newest[0].reason) == 4096
        assert (await spool.stats()).dead_lettered == 31


# -- concurrency --------------------------------------------------------------------------------
async def test_append_during_peek_and_ack(path: Path) -> None:
    async with await Spool.open(path) as spool:
        await spool.append(lines(0, 100))
        batch = await spool.peek(50)
        assert batch is not None
        await asyncio.gather(
            spool.append(lines(100, 150)), spool.ack(batch), spool.append(lines(150, 200))
        )
        assert await pending(spool) == lines(50, 200)


async def test_drop_oldest_while_a_batch_is_peeked(path: Path) -> None:
    async with await Spool.open(path, max_bytes=10 * LINE_BYTES) as spool:
        await spool.append(lines(0, 10))
        batch = await spool.peek(5)
        assert batch is not None
        await spool.append(lines(10, 13))  # evicts 0, 1, 2: part of the peeked batch
        await spool.ack(batch)  # removes 3, 4 only
        assert await pending(spool) == lines(5, 13)
        stats = await spool.stats()
        assert (stats.pending_points, stats.dropped) == (8, 3)
        await spool.append(lines(13, 30))  # evicts the whole peeked range and more
        await spool.ack(batch)
        assert await pending(spool) == lines(20, 30)


async def test_producer_and_replayer_race(path: Path) -> None:
    """Appends of random sizes race a replayer's peek/ack: every line once, in order."""
    rng = random.Random(7)
    sent: list[str] = []
    total = 3000
    async with await Spool.open(path) as spool:
        done = asyncio.Event()

        async def produce() -> None:
            i = 0
            while i < total:
                n = min(rng.randint(1, 120), total - i)
                await spool.append(lines(i, i + n))
                i += n
                await asyncio.sleep(0)
            done.set()

        async def replay() -> None:
            while True:
                batch = await spool.peek(rng.randint(1, 200))
                if batch is None:
                    if done.is_set() and await spool.peek(1) is None:
                        return
                    await asyncio.sleep(0)
                    continue
                sent.extend(batch.lines)
                await spool.ack(batch)

        await asyncio.gather(produce(), replay())
        assert (await spool.stats()).pending_points == 0
    assert sent == lines(0, total)


async def test_one_worker_thread_and_the_loop_keeps_running(path: Path) -> None:
    async with await Spool.open(path) as spool:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.001)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        workers: set[str] = set()
        for a in range(0, 40_000, 5_000):
            await spool.append(lines(a, a + 5_000))
            workers |= {t.name for t in threading.enumerate() if t.name.startswith("citygate")}
        stop.set()
        await task
        assert len(workers) == 1
        assert ticks >= 5  # the loop ran while 40,000 lines were committed


async def test_second_open_is_refused_and_closed_spool_refuses(path: Path) -> None:
    spool = await Spool.open(path)
    with pytest.raises(SpoolBusyError, match="in use"):
        await Spool.open(path)
    await spool.close()
    await spool.close()
    with pytest.raises(SpoolClosedError):
        await spool.append(lines(0, 1))
    async with await Spool.open(path) as again:
        assert await again.peek(1) is None


# -- crash safety -------------------------------------------------------------------------------
CHILD = """
import asyncio, sys
from pathlib import Path
from telemetry.spool import Spool

async def main() -> None:
    spool = await Spool.open(Path(sys.argv[1]))
    n = int(sys.argv[2])
    print("open", flush=True)
    while True:
        await spool.append([f"crash seq={i}i {i}" for i in range(n, n + 500)])
        n += 500
        print(n, flush=True)  # after append returned: these lines must survive

asyncio.run(main())
"""


async def test_kill_9_loses_nothing_that_append_returned(path: Path) -> None:
    for batches_before_kill in (12, 30, 3):
        exists = await asyncio.to_thread(path.exists)
        start = read_stats(path).pending_points if exists else 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(path),
            str(start),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        confirmed = start
        seen = 0
        try:
            while seen < batches_before_kill:
                out = await asyncio.wait_for(proc.stdout.readline(), 60)
                if not out:
                    err = await proc.stderr.read()
                    pytest.fail(f"spool child died: {err.decode()}")
                if out.strip() != b"open":
                    confirmed = int(out)
                    seen += 1
        finally:
            proc.kill()  # SIGKILL, mid-stream: the child never stops appending
            rest = await proc.stdout.read()
            await proc.wait()
        for out in rest.split():
            if out != b"open":
                confirmed = int(out)  # printed after its append returned, before the kill
        async with await Spool.open(path) as spool:
            got = await pending(spool)
            stats = await spool.stats()
        seqs = [int(s.split()[1].removeprefix("seq=").removesuffix("i")) for s in got]
        assert seqs == list(range(len(seqs))), "lost, duplicated or reordered lines"
        assert len(seqs) >= confirmed
        assert len(seqs) % 500 == 0, "a torn batch"
        assert got == [f"crash seq={i}i {i}" for i in range(len(got))]
        assert stats.pending_points == len(got)
        assert stats.pending_bytes == sum(len(s) for s in got)


# -- damaged or foreign files -------------------------------------------------------------------
async def test_a_file_that_is_not_a_spool_gives_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(10_000)))
    with pytest.raises(SpoolFormatError, match="not a citygate telemetry spool"):
        await Spool.open(junk)
    with pytest.raises(SpoolFormatError):
        read_stats(junk)
    text = tmp_path / "notes.txt"
    text.write_text("spool: none\n")
    with pytest.raises(SpoolFormatError, match="not an SQLite database"):
        await Spool.open(text)
    assert text.read_text() == "spool: none\n"

    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE cases (id INTEGER PRIMARY KEY)")
        conn.commit()
    before = await asyncio.to_thread(other.read_bytes)
    with pytest.raises(SpoolFormatError, match="not a citygate telemetry spool"):
        await Spool.open(other)
    with pytest.raises(SpoolFormatError):
        read_stats(other)
    assert await asyncio.to_thread(other.read_bytes) == before  # not even switched to WAL

    folder = tmp_path / "dir.sqlite3"
    folder.mkdir()
    with pytest.raises(SpoolFormatError, match="directory"):
        await Spool.open(folder)

    with pytest.raises(FileNotFoundError):
        read_stats(tmp_path / "missing.sqlite3")

    empty = tmp_path / "empty.sqlite3"
    empty.touch()  # an empty file is a new spool
    async with await Spool.open(empty) as spool:
        assert await spool.append(lines(0, 1)) == 1


async def test_a_damaged_spool_gives_a_clear_error(path: Path) -> None:
    async with await Spool.open(path) as spool:
        await spool.append(lines(0, 2000))
    data = bytearray(await asyncio.to_thread(path.read_bytes))
    data[100:4096] = b"\xa5" * (4096 - 100)  # the schema page
    await asyncio.to_thread(path.write_bytes, bytes(data))
    with pytest.raises(SpoolFormatError, match="damaged") as err:
        await Spool.open(path)
    assert str(path) in str(err.value)
    with pytest.raises(SpoolError):
        read_stats(path)


async def test_a_spool_of_another_schema_version_is_refused(path: Path) -> None:
    async with await Spool.open(path) as spool:
        await spool.append(lines(0, 1))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    with pytest.raises(SpoolFormatError, match="schema version 99"):
        await Spool.open(path)


# -- read-only view for the CLI -----------------------------------------------------------------
async def test_read_stats_while_another_connection_writes(path: Path) -> None:
    async with await Spool.open(path) as spool:
        assert read_stats(path).pending_points == 0
        writing = True

        async def write() -> None:
            nonlocal writing
            for a in range(0, 10_000, 250):
                await spool.append(lines(a, a + 250))
            writing = False

        async def read() -> int:
            reads = last = 0
            while writing or reads < 3:
                stats = await asyncio.to_thread(read_stats, path)
                assert stats.pending_bytes == stats.pending_points * LINE_BYTES  # one snapshot
                assert stats.pending_points % 250 == 0  # whole appends only
                assert stats.pending_points >= last
                assert stats.oldest_ts_ns in (None, T0)
                last = stats.pending_points
                reads += 1
            return reads

        _, reads = await asyncio.gather(write(), read())
        assert reads >= 3
        assert read_stats(path) == await spool.stats()
        batch = await spool.peek(100)
        assert batch is not None
        await spool.ack(batch)

        # and from another process, while this one holds the spool open
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from telemetry.spool import read_stats; "
            "s = read_stats(Path(sys.argv[1])); print(s.pending_points, s.oldest_ts_ns)",
            str(path),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert out.split() == [b"9900", str(T0 + 100).encode()]
        await spool.append(lines(10_000, 10_001))  # the reader did not block the writer
    assert read_stats(path).pending_points == 9901  # closed: still readable


# -- size budget --------------------------------------------------------------------------------
async def test_default_size_holds_72_hours(path: Path) -> None:
    """512 MiB holds 72 h of the sample town with room to spare (arithmetic in the docstring
    of telemetry/spool.py), and the file on disk is the bytes of the lines plus ~20 %."""
    sensors = 600  # the town has 569 berth sensors
    uplinks_per_hour = sensors * 6  # at most one uplink per sensor per 10 min
    points_per_uplink = 4  # sensor status/heartbeat, berth state, magnetometer, car-park count
    chargers = 56 * 60  # meter values once a minute
    body_cams = 72 * 60  # positions once a minute
    health = 60 * 20  # the gateway's own figures
    per_hour = uplinks_per_hour * points_per_uplink + chargers + body_cams + health
    assert per_hour == 23_280 < 25_000
    line_bytes = 100
    need = 72 * per_hour * line_bytes
    assert need == 167_616_000
    assert need * 3 < DEFAULT_MAX_BYTES  # ~3x headroom (~9 days of everything)

    # measured on-disk overhead for 100-byte lines
    n = 20_000

    def padded(i: int) -> str:
        text = f"berth,site=sd,kind=sensor,model=nwave-nps405 occupied=1i,rssi=-97i {T0 + i}"
        return text.replace("berth,", "berth,p=" + "x" * (line_bytes - len(text) - 3) + ",", 1)

    hundred = [padded(i) for i in range(n)]
    assert {len(s) for s in hundred} == {line_bytes}
    async with await Spool.open(path) as spool:
        for a in range(0, n, 5_000):
            await spool.append(hundred[a : a + 5_000])
    size = (await asyncio.to_thread(path.stat)).st_size  # closed: checkpointed, no WAL left
    on_disk_per_line = size / n
    assert line_bytes < on_disk_per_line < 1.3 * line_bytes
    # 72 h of everything takes < half the default budget even counted as bytes on disk
    assert 72 * per_hour * on_disk_per_line * 2 < DEFAULT_MAX_BYTES


async def test_synchronous_normal_is_applied_and_keeps_lines(tmp_path: Path) -> None:
    path = tmp_path / "normal.sqlite3"
    spool = await Spool.open(path, synchronous="normal")
    try:
        await spool.append(["m v=1i 1", "m v=2i 2"])
    finally:
        await spool.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    # synchronous is per connection: ask the spool's own connection.
    again = await Spool.open(path, synchronous="normal")
    try:
        batch = await again.peek(10)
        assert batch is not None and batch.lines == ["m v=1i 1", "m v=2i 2"]
        assert (
            await again._run(lambda: again._file._conn.execute("PRAGMA synchronous").fetchone()[0])
            == 1
        )  # NORMAL
    finally:
        await again.close()
    with pytest.raises(ValueError, match="synchronous"):
        await Spool.open(tmp_path / "x.sqlite3", synchronous="sometimes")  # type: ignore[arg-type]

"""The durable outbox: order, acknowledgement, restart durability, seq, cap policy, errors."""

import json
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import ConfigError
from firmware.protocol.envelope import EventFactory
from firmware.reporting.outbox import Outbox


def crash(box):
    """Drop the outbox like a killed process: no close(), only committed data counts."""
    box._db.close()
    box._db = None
    os.close(box._lock_fd)


def make_events(box, n, start_t=0.0):
    factory = EventFactory("desk-1", 1_700_000_000.0, seq=box)
    return [factory.make("cue", start_t + i, None, cue="idle", leds={}) for i in range(n)]


def test_rows_come_back_in_seq_order_and_ack_deletes(tmp_path):
    with Outbox.in_state_dir(tmp_path) as box:
        events = make_events(box, 5)
        for e in reversed(events):  # put out of order: still sent in seq order
            box.put(e)
        rows = box.pending(10)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert json.loads(rows[0].payload)["id"] == events[0]["id"]
        assert box.depth == 5
        assert box.ack([rows[0].pos, rows[2].pos]) == 2
        assert [r.seq for r in box.pending(10)] == [2, 4, 5]
        assert [r.seq for r in box.pending(10, skip=[rows[1].pos])] == [4, 5]
        assert box.ack([rows[0].pos]) == 0  # a second PUBACK for the same row is harmless
        assert box.depth == 3


def test_backlog_and_seq_survive_a_restart(tmp_path):
    box = Outbox.in_state_dir(tmp_path)
    for e in make_events(box, 3):
        box.put(e)
    crash(box)
    box = Outbox.in_state_dir(tmp_path)
    assert [r.seq for r in box.pending(10)] == [1, 2, 3]
    assert box.next_seq() == 4
    box.close()


def test_seq_never_goes_back_even_when_drained(tmp_path):
    box = Outbox.in_state_dir(tmp_path)
    for e in make_events(box, 4):
        box.put(e)
    box.ack([r.pos for r in box.pending(10)])
    assert box.depth == 0
    crash(box)  # after draining
    box = Outbox.in_state_dir(tmp_path)
    assert box.next_seq() == 5
    box.next_seq()  # handed out, never put: close() still persists it
    box.close()
    assert Outbox.in_state_dir(tmp_path).next_seq() == 7


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["event", "telemetry", "ack", "reopen"]), max_size=40))
def test_seq_is_strictly_increasing_across_any_history(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("box")
    box = Outbox.in_state_dir(path)
    seen = []
    for op in ops:
        if op == "event":
            e = make_events(box, 1)[0]
            box.put(e)
            seen.append(e["seq"])
        elif op == "telemetry":
            box.put_telemetry({"x": 1})
        elif op == "ack":
            box.ack([r.pos for r in box.pending(3)])
        else:
            box.close()
            box = Outbox.in_state_dir(path)
    box.close()
    assert seen == sorted(set(seen))


def test_telemetry_sorts_after_the_events_before_it(tmp_path):
    with Outbox.in_state_dir(tmp_path) as box:
        a, b = make_events(box, 2)
        box.put(a)
        box.put_telemetry({"n": 1})
        box.put(b)
        assert [r.kind for r in box.pending(10)] == ["event", "telemetry", "event"]


def test_cap_drops_oldest_telemetry_first_and_never_events(tmp_path):
    faults = []
    box = Outbox.in_state_dir(tmp_path, max_mb=1.0, on_fault=lambda *a: faults.append(a))
    blob = "x" * 10_000
    for i in range(60):  # ~600 kB of telemetry
        assert box.put_telemetry({"i": i, "blob": blob})
    factory = EventFactory("desk-1", 0.0, seq=box)
    for i in range(60):  # ~600 kB of events: old telemetry must make room
        box.put(factory.make("cue", i, None, blob=blob))
    rows = box.pending(1000)
    telemetry = [json.loads(r.payload)["i"] for r in rows if r.kind == "telemetry"]
    assert box.event_depth == 60
    assert telemetry and telemetry == list(range(60 - len(telemetry), 60))  # the newest kept
    assert box.dropped_telemetry == 60 - len(telemetry)
    assert faults == []
    for i in range(60):  # now only events are left to grow: kept anyway, with a storage fault
        box.put(factory.make("cue", i, None, blob=blob))
    assert box.event_depth == 120
    assert not box.put_telemetry({"blob": blob})  # new telemetry is dropped, not stored
    assert [f[0] for f in faults] == ["storage"] and faults[0][2] is False
    assert "keeping them" in faults[0][1]
    box.ack([r.pos for r in box.pending(1000)])
    assert faults[-1][0] == "storage" and faults[-1][2] is True
    box.close()


def test_corrupt_outbox_is_moved_aside_and_a_fresh_one_reports_a_storage_fault(tmp_path):
    with Outbox.in_state_dir(tmp_path) as box:
        for e in make_events(box, 5):
            box.put(e)
    junk = b"this is not sqlite" * 100
    (tmp_path / "outbox.db").write_bytes(junk)
    faults = []
    box = Outbox.in_state_dir(tmp_path)
    box.on_fault = lambda *a: faults.append(a)  # reported as soon as someone listens
    try:
        aside = list(tmp_path.glob("outbox.db.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == junk, "the bad file is kept for inspection"
        assert len(faults) == 1 and faults[0][0] == "storage" and faults[0][2] is False
        assert "corrupt" in faults[0][1] and aside[0].name in faults[0][1] and "\n" not in faults[0][1]
        assert box.next_seq() == 6, "seq does not restart with the new outbox"
        box.put(make_events(box, 1)[0])
        assert box.depth == 1
    finally:
        box.close()


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_deleted_or_emptied_outbox_does_not_restart_seq(tmp_path, how):
    box = Outbox.in_state_dir(tmp_path)
    for e in make_events(box, 3):
        box.put(e)
    crash(box)  # no close(): only what was fsynced counts
    for name in ("outbox.db", "outbox.db-wal", "outbox.db-shm"):
        if (tmp_path / name).exists():
            if how == "deleted":
                (tmp_path / name).unlink()
            else:
                (tmp_path / name).write_bytes(b"")
    with Outbox.in_state_dir(tmp_path) as box:
        assert box.next_seq() > 3
    # after a clean close the reservation is exact: a lost outbox then continues without a gap
    (tmp_path / "outbox.db").unlink()
    with Outbox.in_state_dir(tmp_path) as box:
        seq = box.next_seq()
    (tmp_path / "outbox.db").unlink()
    with Outbox.in_state_dir(tmp_path) as box:
        assert box.next_seq() == seq + 1


def test_unusable_state_dir_is_one_clear_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:  # exit 78: systemd does not restart into it again and again
        Outbox.in_state_dir(blocker / "state")
    assert "state directory" in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("station.state_dir: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_state_dir_is_a_config_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConfigError):
            Outbox.in_state_dir(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_concurrent_put_and_ack_keep_counts_right(tmp_path):
    with Outbox.in_state_dir(tmp_path) as box:
        factory = EventFactory("desk-1", 0.0, seq=box)

        def produce():
            for i in range(200):
                box.put(factory.make("cue", i, None))

        threads = [threading.Thread(target=produce) for _ in range(3)]
        for t in threads:
            t.start()
        acked = 0
        while any(t.is_alive() for t in threads) or box.depth:
            acked += box.ack([r.pos for r in box.pending(50)])
        for t in threads:
            t.join()
        assert acked == 600 and box.depth == 0 and box.event_depth == 0 and box.size_bytes == 0


def test_session_numbers_increase_across_restarts(tmp_path):
    with Outbox.in_state_dir(tmp_path) as box:
        assert [box.next_session(), box.next_session()] == [1, 2]
    with Outbox.in_state_dir(tmp_path) as box:
        assert box.next_session() == 3


def test_a_second_process_on_the_same_outbox_is_refused(tmp_path):
    with Outbox.in_state_dir(tmp_path):
        with pytest.raises(ConfigError, match=f"in use by another station process \\(pid {os.getpid()}\\)"):
            Outbox.in_state_dir(tmp_path)
    Outbox.in_state_dir(tmp_path).close()  # free again once closed


@pytest.mark.integration  # mounts a tmpfs (root)
def test_disk_full_holds_events_in_order_and_writes_them_when_space_returns(small_disk):
    faults = []
    box = Outbox.in_state_dir(small_disk.path / "state", on_fault=lambda *a: faults.append(a))
    try:
        before = make_events(box, 3)
        for e in before:
            box.put(e)
        small_disk.fill()
        factory = EventFactory("desk-1", 1_700_000_000.0, seq=box)
        during = [factory.make("cue", i, None, cue="idle", leds={}, pad="x" * 200) for i in range(400)]
        for e in during:
            box.put(e)  # never raises: held in memory
        assert box.held > 0, "the disk should have filled"
        assert [(f[0], f[2]) for f in faults] == [("storage", False)]
        assert faults[0][1].startswith("disk full")
        assert not box.put_telemetry({"x": 1}), "telemetry is dropped while the disk is full"
        assert box.flush_held() == box.held > 0, "still full: nothing written, nothing lost"
        small_disk.free()
        assert box.flush_held() == 0
        assert [(f[0], f[2]) for f in faults] == [("storage", False), ("storage", True)]
        rows = box.pending(10_000)
        assert [r.seq for r in rows] == [e["seq"] for e in before + during], "0 lost, in seq order"
        assert [json.loads(r.payload)["id"] for r in rows] == [e["id"] for e in before + during]
    finally:
        box.close()
    with Outbox.in_state_dir(small_disk.path / "state") as box:
        assert box.depth == 403 and box.next_seq() == 404

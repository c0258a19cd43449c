"""The directory's layout is recorded on the main server: a headroom whose bucket count
or hash differs from the directory's refuses to start (it would look for every entry
in the wrong bucket) instead of serving wrong answers."""
import contextlib
import tempfile

import pytest
import redis

from cluster import Headroom, RedisServer, bucket_of, run_headroom, stop

LAYOUT = "buckets=65536 hash=fnv1a64 entries=versioned"
UNVERSIONED = "buckets=65536 hash=fnv1a64"  # the layout before versioned entries


@pytest.fixture
def servers():
    workdir = tempfile.mkdtemp(prefix="headroom-layout-")
    made = []
    try:
        main = RedisServer(workdir, "main", maxmemory="0")
        made.append(main)
        nodes = []
        for i in range(2):
            nodes.append(RedisServer(workdir, f"node{i + 1}"))
            made.append(nodes[-1])
        yield workdir, main, nodes
    finally:
        for s in made:
            stop(s.proc)


@contextlib.contextmanager
def serving(workdir, main, nodes, name="headroom"):
    """A headroom in front of these servers, stopped (and its log checked) on exit."""
    p = Headroom(workdir, main, nodes, name=name)
    try:
        yield p.client()
    finally:
        p.stop()


def test_a_fresh_main_server_gets_the_layout_marker(servers):
    workdir, main, nodes = servers
    with serving(workdir, main, nodes) as c:
        assert main.client.get("hr:dir:layout").decode() == LAYOUT
        c.set("k", "v")
    with serving(workdir, main, nodes, "again") as c:  # finds the marker and its entries
        assert c.get("k") == b"v"


def test_a_directory_with_another_layout_stops_headroom(servers):
    workdir, main, nodes = servers
    main.client.set("hr:dir:layout", "buckets=16384 hash=fnv1a64")
    out = run_headroom(workdir, main, nodes, "layout")
    assert out.returncode == 1, out.stdout + out.stderr
    log = out.stdout + out.stderr
    assert "has layout 'buckets=16384 hash=fnv1a64'" in log and LAYOUT in log, log
    assert "AddressSanitizer" not in log and "runtime error:" not in log, log


def test_a_main_server_flushed_directly_gets_its_marker_back(servers):
    workdir, main, nodes = servers
    with serving(workdir, main, nodes) as c:
        main.client.flushall()  # behind headroom's back: the marker goes too
        assert c.set("after-flush", "v") is True  # the placement records the marker again
        assert main.client.get("hr:dir:layout").decode() == LAYOUT
    with serving(workdir, main, nodes, "again") as c:
        assert c.get("after-flush") == b"v"


def test_placements_are_refused_when_the_layout_changes_underneath(servers):
    workdir, main, nodes = servers
    with serving(workdir, main, nodes) as c:
        assert c.set("before", "v") is True
        main.client.set("hr:dir:layout", "buckets=16384 hash=fnv1a64")
        with pytest.raises(redis.ResponseError, match="LAYOUT the directory has layout buckets=16384"):
            c.set("new-key", "v")
        assert c.get("before") == b"v"  # keys it knows are still served


def test_a_directory_written_before_versioned_entries_is_read_and_upgraded(servers):
    workdir, main, nodes = servers
    main.client.set("hr:dir:layout", UNVERSIONED)
    main.client.hset(bucket_of("legacy"), "legacy", nodes[1].name)  # an entry as builds before wrote it
    nodes[1].client.set("legacy", "kept")
    with serving(workdir, main, nodes) as c:
        assert c.get("legacy") == b"kept"
        assert main.client.get("hr:dir:layout").decode() == LAYOUT
        assert c.set("legacy", "new") is True
        assert nodes[1].client.get("legacy") == b"new"

"""CLIENT LIST, INFO, KILL, REPLY, PAUSE/UNPAUSE, NO-EVICT and the tracking family,
about headroom's own clients (the connections to headroom, not the nodes'), held
against what a real Redis 7.0 answers (the reference server) where the format or
the wording matters."""
import socket
import subprocess
import time

import pytest
import redis

from cluster import raw, wait_for


class Conn:
    """A raw RESP connection: what headroom (or Redis) sends, byte for byte."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, *cmds):
        out = b""
        for cmd in cmds:
            out += b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def until(self, tail):
        """Everything received up to and including `tail`, which ends it."""
        while not self.buf.endswith(tail):
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; received {self.buf!r}")
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def rest(self):
        """Everything received until the server closes the connection."""
        while True:
            chunk = self.s.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk

    def id(self):
        self.send(("CLIENT", "ID"))
        return int(self.until(b"\r\n")[1:-2])

    def addr(self):
        ip, port = self.s.getsockname()[:2]
        return f"{ip}:{port}"

    def close(self):
        self.s.close()


def run(c, *cmd):
    """raw(), on a single-connection client's own connection (raw() takes one from the pool)."""
    c.connection.send_command(*cmd)
    return c.connection.read_response()


def fields(line):
    """[(field, value), ...] of one CLIENT LIST line, in order."""
    return [tuple(kv.split("=", 1)) for kv in line.rstrip("\n").split(" ")]


def entry(r, client_id):
    """CLIENT LIST ID's fields for one client, or None when it is not listed."""
    text = raw(r, "CLIENT", "LIST", "ID", str(client_id))
    return dict(fields(text)) if text else None


def error_of(client, *cmd):
    try:
        raw(client, *cmd)
    except redis.ResponseError as e:
        return str(e)
    return None


def assert_same_errors(r, ref, commands):
    """Each command is an error, worded as the reference Redis words it."""
    for cmd in commands:
        want = error_of(ref, *cmd)
        assert want is not None, cmd
        assert error_of(r, *cmd) == want, cmd


# --- CLIENT INFO and CLIENT LIST

def test_client_info_is_redis_line_with_this_connections_values(clean, ref):
    c = clean.proxy.client(decode_responses=True, single_connection_client=True)
    assert c.client_setname("probe-1") is True
    line = run(c, "CLIENT", "INFO")
    want = raw(ref, "CLIENT", "INFO")
    assert line.endswith("\n") and line.count("\n") == 1
    # Redis 7.0's fields, in Redis's order
    assert [k for k, _ in fields(line)] == [k for k, _ in fields(want)]
    f = dict(fields(line))
    ip, port = c.connection._sock.getsockname()[:2]
    assert f["addr"] == f"{ip}:{port}"
    assert f["laddr"] == f"127.0.0.1:{clean.proxy.port}"
    assert f["name"] == "probe-1"
    assert (f["flags"], f["db"], f["sub"], f["psub"], f["ssub"], f["multi"]) == ("N", "0", "0", "0", "0", "-1")
    assert (f["cmd"], f["user"], f["redir"], f["resp"], f["events"]) == ("client|info", "default", "-1", "2", "r")
    assert f["argv-mem"] == dict(fields(want))["argv-mem"]  # "client" + "info": the command being run
    for k in ("fd", "age", "idle", "qbuf", "qbuf-free", "multi-mem", "rbs", "rbp", "obl", "oll", "omem", "tot-mem"):
        assert int(f[k]) >= 0, k
    assert int(f["fd"]) > 2
    assert f["id"] == str(c.client_id())
    # redis-py's own parser reads it
    info = c.client_info()
    assert info["name"] == "probe-1" and info["cmd"] == "client|info"


def test_client_info_in_resp3_is_a_verbatim_string(clean):
    c = Conn(clean.proxy.port)
    try:
        c.send(("HELLO", "3"))
        c.until(b"modules\r\n*0\r\n")
        c.send(("CLIENT", "INFO"))
        out = c.until(b"\n\r\n")
        assert out.startswith(b"=") and b"\r\ntxt:id=" in out and b" resp=3\n" in out
    finally:
        c.close()


def test_client_list_lists_headrooms_clients_with_their_state(clean, ref):
    r = clean.proxy.client(decode_responses=True, single_connection_client=True)
    named = clean.proxy.client(decode_responses=True, single_connection_client=True)
    named.client_setname("b-name")
    named_id = named.client_id()
    ps = clean.proxy.client(decode_responses=True, client_name="cl-sub").pubsub()
    ps.subscribe("cl:ch1", "cl:ch2")
    ps.psubscribe("cl:p*")
    tx = Conn(clean.proxy.port)
    blocked = Conn(clean.proxy.port)
    try:
        tx_id, blocked_id = tx.id(), blocked.id()
        tx.send(("MULTI",), ("SET", "cl:k", "v"), ("GET", "cl:k"))
        tx.until(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n")
        blocked.send(("BLPOP", "cl:list", "0"))

        def subscriber():
            found = [dict(fields(line)) for line in raw(r, "CLIENT", "LIST", "TYPE", "pubsub").splitlines()]
            return [f for f in found if f["name"] == "cl-sub"]
        wait_for(subscriber, what="the subscriber listed")
        (sub,) = subscriber()
        wait_for(lambda: entry(r, sub["id"])["psub"] == "1", what="the pattern subscription")
        wait_for(lambda: "b" in entry(r, blocked_id)["flags"], what="the BLPOP client blocked")

        text = raw(r, "CLIENT", "LIST")
        assert text.endswith("\n")
        lines = {dict(fields(line))["id"]: dict(fields(line)) for line in text.splitlines()}
        assert {str(r.client_id()), str(named_id), sub["id"], str(tx_id), str(blocked_id)} <= set(lines)
        assert lines[str(named_id)]["name"] == "b-name" and lines[str(named_id)]["cmd"] == "client|id"
        s = entry(r, sub["id"])
        assert (s["flags"], s["sub"], s["psub"], s["cmd"]) == ("P", "2", "1", "psubscribe")
        t = lines[str(tx_id)]
        assert (t["flags"], t["multi"], t["cmd"]) == ("x", "2", "get")
        assert int(t["multi-mem"]) > 0
        b = entry(r, blocked_id)
        assert (b["flags"], b["cmd"]) == ("b", "blpop")
        assert all(line["user"] == "default" and line["db"] == "0" for line in lines.values())

        # TYPE: headroom's clients are normal or pubsub; no master or replica among them
        normal = {dict(fields(line))["id"] for line in raw(r, "CLIENT", "LIST", "TYPE", "normal").splitlines()}
        assert str(named_id) in normal and sub["id"] not in normal
        for t_ in ("master", "replica", "slave", "MASTER"):
            assert raw(r, "CLIENT", "LIST", "TYPE", t_) == raw(ref, "CLIENT", "LIST", "TYPE", t_) == ""
        # ID: those named that exist, in the order named
        text = raw(r, "CLIENT", "LIST", "ID", str(tx_id), "999999", str(named_id))
        assert [dict(fields(line))["id"] for line in text.splitlines()] == [str(tx_id), str(named_id)]
        ids = [e["id"] for e in r.client_list()]  # redis-py's parser reads it; in connection order
        assert ids == sorted(ids, key=int)

        assert_same_errors(r, ref, [("CLIENT", "LIST", "x"), ("CLIENT", "LIST", "TYPE", "foo"),
                                    ("CLIENT", "LIST", "TYPE", "normal", "x"), ("CLIENT", "LIST", "ID"),
                                    ("CLIENT", "LIST", "ID", "abc"), ("CLIENT", "LIST", "ID", "1", "abc"),
                                    ("CLIENT", "LIST", "TYPE", "normal", "ID", "1"), ("CLIENT", "INFO", "x"),
                                    ("CLIENT", "NOSUCH")])
    finally:
        r.lpush("cl:list", "x")
        ps.close()
        tx.close()
        blocked.close()


def test_redis_cli_prints_client_list_and_info(clean):
    out = subprocess.run(["redis-cli", "-p", str(clean.proxy.port), "CLIENT", "INFO"], capture_output=True,
                         text=True, timeout=30).stdout
    assert out.startswith("id=") and " cmd=client|info " in out and " user=default " in out
    out = subprocess.run(["redis-cli", "-p", str(clean.proxy.port), "CLIENT", "LIST"], capture_output=True,
                         text=True, timeout=30).stdout
    assert " cmd=client|list " in out


# --- CLIENT KILL

def test_client_kill_old_form_closes_the_client_at_that_address(clean, ref):
    r = clean.proxy.client(decode_responses=True)
    victim = Conn(clean.proxy.port)
    try:
        victim.id()
        assert raw(r, "CLIENT", "KILL", victim.addr()) == "OK"
        assert victim.rest() == b""
        with pytest.raises(redis.ResponseError) as e:
            raw(r, "CLIENT", "KILL", victim.addr())
        assert str(e.value) == "No such client" == error_of(ref, "CLIENT", "KILL", victim.addr())
    finally:
        victim.close()
    # The old form may name the caller itself: +OK, then the connection closes, and
    # what it pipelined after is not run.
    me = Conn(clean.proxy.port)
    try:
        me.id()
        me.send(("CLIENT", "KILL", me.addr()), ("SET", "kill:after", "1"))
        assert me.rest() == b"+OK\r\n"
        assert r.exists("kill:after") == 0
    finally:
        me.close()


def test_client_kill_new_form_counts_what_it_closed(clean, ref):
    r = clean.proxy.client(decode_responses=True)
    port = clean.proxy.port
    a, b, s = Conn(port), Conn(port), Conn(port)
    try:
        a_id, b_id = a.id(), b.id()
        s.send(("SUBSCRIBE", "kill:ch"))
        s.until(b"kill:ch\r\n:1\r\n")
        assert raw(r, "CLIENT", "KILL", "ID", str(a_id)) == 1
        assert a.rest() == b""
        assert raw(r, "CLIENT", "KILL", "ID", str(a_id)) == 0
        assert entry(r, a_id) is None
        # every option must match
        assert raw(r, "CLIENT", "KILL", "ID", str(b_id), "TYPE", "pubsub") == 0
        assert raw(r, "CLIENT", "KILL", "ADDR", b.addr(), "LADDR", f"127.0.0.1:{port}", "USER", "default",
                   "TYPE", "normal") == 1
        assert b.rest() == b""
        assert raw(r, "CLIENT", "KILL", "TYPE", "pubsub", "ADDR", s.addr()) == 1
        assert s.rest() == b""
        assert raw(r, "CLIENT", "KILL", "TYPE", "master") == 0
        assert raw(r, "CLIENT", "KILL", "ID", "99999999") == raw(ref, "CLIENT", "KILL", "ID", "99999999") == 0
    finally:
        for c in (a, b, s):
            c.close()
    # SKIPME yes (the default) spares the caller; SKIPME no closes it after its reply
    me = Conn(port)
    try:
        my_id = me.id()
        me.send(("CLIENT", "KILL", "ID", str(my_id)))
        assert me.until(b"\r\n") == b":0\r\n"
        me.send(("CLIENT", "KILL", "ID", str(my_id), "SKIPME", "no"), ("PING",))
        assert me.rest() == b":1\r\n"
    finally:
        me.close()
    assert_same_errors(r, ref, [("CLIENT", "KILL"), ("CLIENT", "KILL", "1.2.3.4:5"), ("CLIENT", "KILL", "id"),
                                ("CLIENT", "KILL", "ID", "0"), ("CLIENT", "KILL", "ID", "abc"),
                                ("CLIENT", "KILL", "ID", "-1"), ("CLIENT", "KILL", "TYPE", "foo"),
                                ("CLIENT", "KILL", "USER", "bob"),
                                ("CLIENT", "KILL", "USER", "default", "SKIPME", "maybe"),
                                ("CLIENT", "KILL", "foo", "bar"), ("CLIENT", "KILL", "ID", "1", "TYPE")])


def test_client_kill_user_default_closes_every_other_client(own):
    c = own()
    r = c.proxy.client(decode_responses=True, single_connection_client=True)
    victims = [Conn(c.proxy.port) for _ in range(3)]
    try:
        for v in victims:
            v.id()
        others = len(run(r, "CLIENT", "LIST").splitlines()) - 1
        assert others >= 3
        assert run(r, "CLIENT", "KILL", "USER", "default") == others
        for v in victims:
            assert v.rest() == b""
        assert [e["id"] for e in r.client_list()] == [str(r.client_id())]
    finally:
        for v in victims:
            v.close()


# --- CLIENT REPLY

REPLY_SCRIPT = [
    ("CLIENT", "REPLY", "OFF"), ("SET", "rp:new1", "a"), ("GET", "rp:new1"), ("PING",),
    ("MGET", "rp:new1", "rp:none"), ("CLIENT", "REPLY", "FOO"),  # an error: not sent either
    ("CLIENT", "REPLY", "ON"), ("GET", "rp:new1"),
    ("CLIENT", "REPLY", "SKIP"), ("SET", "rp:new2", "b"), ("GET", "rp:new2"),
    ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "SKIP"), ("GET", "rp:new1"), ("GET", "rp:new2"),
    ("CLIENT", "REPLY", "OFF"), ("CLIENT", "REPLY", "SKIP"), ("GET", "rp:new1"), ("CLIENT", "REPLY", "ON"),
    ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "ON"), ("GET", "rp:new2"),
    ("MULTI",), ("INCR", "rp:n"), ("EXEC",),
    ("CLIENT", "REPLY", "SKIP"), ("MULTI",), ("INCR", "rp:n"), ("EXEC",),
    ("CLIENT", "REPLY", "SKIP"), ("GET",), ("GET", "rp:n"),
    ("ECHO", "end"),
]


def replies_to(port, script):
    c = Conn(port)
    try:
        c.send(*script)
        return c.until(b"$3\r\nend\r\n")
    finally:
        c.close()


def test_client_reply_off_on_skip_as_redis(clean):
    # Pipelined: new keys wait for their placement, so replies complete out of step
    # with the commands that switch them; what is sent is still Redis's, byte for byte.
    got = replies_to(clean.proxy.port, REPLY_SCRIPT)
    assert got == replies_to(clean.reference.port, REPLY_SCRIPT)
    assert got.startswith(b"+OK\r\n$1\r\na\r\n")  # ON's own +OK, then GET's
    # again (INCR counts on), each command in a write of its own: there is no waiting
    # for a reply that is not sent
    c = Conn(clean.proxy.port)
    try:
        for cmd in REPLY_SCRIPT:
            c.send(cmd)
        assert c.until(b"$3\r\nend\r\n") == replies_to(clean.reference.port, REPLY_SCRIPT)
    finally:
        c.close()


def test_client_reply_errors_as_redis(r, ref):
    assert_same_errors(r, ref, [("CLIENT", "REPLY"), ("CLIENT", "REPLY", "foo"), ("CLIENT", "REPLY", "on", "x")])


# --- CLIENT PAUSE and UNPAUSE

def test_client_pause_write_holds_writes_until_unpause(clean, ref):
    r = clean.proxy.client(decode_responses=True)
    port = clean.proxy.port
    r.set("pw:k", "before")
    writer, publisher, tx, reader = Conn(port), Conn(port), Conn(port), Conn(port)
    try:
        writer_id, publisher_id, tx_id = writer.id(), publisher.id(), tx.id()
        tx.send(("MULTI",), ("SET", "pw:t", "1"))
        tx.until(b"+OK\r\n+QUEUED\r\n")
        assert raw(r, "CLIENT", "PAUSE", "100000", "WRITE") == "OK"
        writer.send(("SET", "pw:k", "after"), ("GET", "pw:k"))  # the GET waits behind the SET, as in Redis
        publisher.send(("PUBLISH", "pw:ch", "m"))  # a command Redis marks may-replicate
        tx.send(("EXEC",))  # a transaction that writes
        wait_for(lambda: "b" in entry(r, writer_id)["flags"], what="the writer held")
        wait_for(lambda: "b" in entry(r, publisher_id)["flags"], what="the publisher held")
        wait_for(lambda: "b" in entry(r, tx_id)["flags"], what="the EXEC held")
        assert r.info("clients")["blocked_clients"] >= 3
        # reads go on, and nothing held has run
        assert r.get("pw:k") == "before" and r.exists("pw:t") == 0
        # a transaction of reads runs; a syntax error is answered at once
        reader.send(("MULTI",), ("GET", "pw:k"), ("EXEC",), ("SET", "pw:k"))
        assert reader.until(b"-ERR wrong number of arguments for 'set' command\r\n") == \
            b"+OK\r\n+QUEUED\r\n*1\r\n$6\r\nbefore\r\n-ERR wrong number of arguments for 'set' command\r\n"
        assert raw(r, "CLIENT", "UNPAUSE") == "OK"
        assert writer.until(b"$5\r\nafter\r\n") == b"+OK\r\n$5\r\nafter\r\n"
        assert publisher.until(b"\r\n") == b":0\r\n"
        assert tx.until(b"\r\n+OK\r\n") == b"*1\r\n+OK\r\n"
        assert "b" not in entry(r, writer_id)["flags"]
    finally:
        raw(r, "CLIENT", "UNPAUSE")
        for c in (writer, publisher, tx, reader):
            c.close()
    assert_same_errors(r, ref, [("CLIENT", "PAUSE"), ("CLIENT", "PAUSE", "abc"), ("CLIENT", "PAUSE", "-1"),
                                ("CLIENT", "PAUSE", "10", "foo"), ("CLIENT", "PAUSE", "abc", "foo"),
                                ("CLIENT", "PAUSE", "10", "WRITE", "x"), ("CLIENT", "PAUSE", "1.5"),
                                ("CLIENT", "UNPAUSE", "x")])


def test_client_pause_all_holds_every_command_until_it_ends(clean):
    r = clean.proxy.client(decode_responses=True)
    c = Conn(clean.proxy.port)
    try:
        c.id()
        start = time.monotonic()
        assert raw(r, "CLIENT", "PAUSE", "1500", "ALL") == "OK"
        c.send(("PING",))
        assert c.until(b"\r\n") == b"+PONG\r\n"
        # not before the pause ended (a lower bound: a slow machine only adds to it)
        assert time.monotonic() - start >= 1.45
        assert raw(r, "CLIENT", "PAUSE", "0") == "OK"  # a pause that is already over
        assert r.ping() is True
    finally:
        c.close()


# --- CLIENT NO-EVICT, NO-TOUCH

def test_client_no_evict_is_accepted_and_shown(clean, ref):
    c = clean.proxy.client(decode_responses=True, single_connection_client=True)
    assert run(c, "CLIENT", "NO-EVICT", "on") == "OK"
    assert dict(fields(run(c, "CLIENT", "INFO")))["flags"] == "e"
    assert run(c, "CLIENT", "NO-EVICT", "OFF") == "OK"
    assert dict(fields(run(c, "CLIENT", "INFO")))["flags"] == "N"
    # NO-TOUCH is Redis 7.2's: unknown in 7.0, as the reference says
    assert_same_errors(c, ref, [("CLIENT", "NO-EVICT"), ("CLIENT", "NO-EVICT", "maybe"),
                                ("CLIENT", "NO-EVICT", "on", "x"), ("CLIENT", "NO-TOUCH", "on")])


# --- CLIENT TRACKING, CACHING, GETREDIR, TRACKINGINFO

def test_client_tracking_is_refused_whole_and_its_queries_say_off(r, ref):
    with pytest.raises(redis.ResponseError) as e:
        raw(r, "CLIENT", "TRACKING", "ON")
    assert "CLIENT TRACKING" in str(e.value) and "headroom" in str(e.value) and "invalidation" in str(e.value)
    with pytest.raises(redis.ResponseError, match="CLIENT TRACKING"):
        raw(r, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a")
    for cmd in (("CLIENT", "TRACKING", "OFF"), ("CLIENT", "GETREDIR"), ("CLIENT", "TRACKINGINFO")):
        assert raw(r, *cmd) == raw(ref, *cmd), cmd
    assert_same_errors(r, ref, [("CLIENT", "TRACKING"), ("CLIENT", "TRACKING", "maybe"),
                                ("CLIENT", "TRACKING", "on", "foo"), ("CLIENT", "TRACKING", "on", "redirect"),
                                ("CLIENT", "TRACKING", "on", "redirect", "abc"),
                                ("CLIENT", "TRACKING", "on", "redirect", "999999"),
                                ("CLIENT", "TRACKING", "on", "prefix", "a"),
                                ("CLIENT", "TRACKING", "on", "bcast", "optin"),
                                ("CLIENT", "CACHING"), ("CLIENT", "CACHING", "yes"), ("CLIENT", "CACHING", "maybe"),
                                ("CLIENT", "GETREDIR", "x"), ("CLIENT", "TRACKINGINFO", "x")])


def test_client_unblock_errors_as_redis(r, ref):
    assert_same_errors(r, ref, [("CLIENT", "UNBLOCK"), ("CLIENT", "UNBLOCK", "1", "TIMEOUT", "x"),
                                ("CLIENT", "UNBLOCK", "abc", "foo"), ("CLIENT", "UNBLOCK", "abc")])

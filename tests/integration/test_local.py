"""Commands headroom answers itself, and Redis's wording for unknown commands,
wrong arity and refused commands."""
import time

import pytest
import redis

from cluster import raw


def test_connection_commands(r):
    assert r.ping() is True
    assert raw(r, "PING", "hi") == "hi"
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'ping' command$"):
        raw(r, "PING", "a", "b")
    assert r.echo("hello") == "hello"
    assert raw(r, "SELECT", "0") == "OK"
    with pytest.raises(redis.ResponseError, match="database 0 only"):
        r.execute_command("SELECT", "1")
    hello = raw(r, "HELLO", "2")
    assert hello[hello.index("proto") + 1] == 2
    with pytest.raises(redis.ResponseError) as e:
        raw(r, "HELLO", "4")
    assert str(e.value).startswith("NOPROTO")  # HELLO 3 is served: test_resp3.py


def test_client_name_and_id(clean):
    c = clean.proxy.client(decode_responses=True, single_connection_client=True)
    assert c.client_getname() is None
    assert c.client_setname("worker-1") is True
    assert c.client_getname() == "worker-1"
    assert isinstance(c.client_id(), int)
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        c.execute_command("CLIENT", "SETNAME", "a b")


def test_command_and_info(r):
    assert raw(r, "COMMAND", "COUNT") > 200
    info = raw(r, "INFO")
    for section in ("# Server", "# Clients", "# Stats", "# Memory", "# Keyspace", "# Nodes"):
        assert section in info
    for n in ("node1", "node2", "node3", "node4"):
        assert f"\r\n{n}:address=" in info
    r.set("a", "1")
    r.set("b", "1")
    import time
    time.sleep(0.3)
    keyspace = r.info("keyspace")
    assert keyspace["db0"]["keys"] == 2


def test_redis_error_wording(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("NOSUCHCMD", "a", "b")
    assert str(e.value) == "unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' "
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("GET")
    assert str(e.value) == "wrong number of arguments for 'get' command"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("OBJECT", "NOPE", "x")
    assert str(e.value) == "unknown subcommand 'NOPE'. Try OBJECT HELP."
    # Redis's own errors pass through unchanged
    r.set("str", "x")
    with pytest.raises(redis.ResponseError) as e:
        r.lpush("str", "a")
    assert str(e.value).startswith("WRONGTYPE")
    with pytest.raises(redis.ResponseError, match="greater than number of args"):
        r.execute_command("EVAL", "return 1", "5", "a")


def test_refused_commands_name_themselves(r):
    for cmd, name in ((("SWAPDB", "0", "1"), "swapdb"), (("CLUSTER", "INFO"), "cluster info"), (("CONFIG", "GET", "x"), "config"),
                      (("WAIT", "0", "0"), "wait"), (("BGSAVE",), "bgsave"),
                      (("MODULE", "LIST"), "module list")):
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*cmd)
        assert f"'{name}'" in str(e.value) and "headroom" in str(e.value), str(e.value)


def test_quit_closes_after_reply(clean):
    import socket
    s = socket.create_connection(("127.0.0.1", clean.proxy.port))
    s.sendall(b"PING\r\nQUIT\r\nPING\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"+PONG\r\n+OK\r\n"


def test_info_sections_clients_read_at_connect(r):
    info = r.info("server")
    assert info["arch_bits"] == 64 and info["redis_mode"] == "standalone"
    assert r.info("cluster") == {"cluster_enabled": 0}
    both = raw(r, "INFO", "clients", "server")  # as Redis 7: several sections at once
    assert "# Clients" in both and "# Server" in both and "# Keyspace" not in both


def test_config_set_of_what_headroom_owns_is_refused_whole(own):
    c = own(settings={"allow_dangerous_commands": "[config]"})
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    for name in ("requirepass", "MASTERAUTH", "port", "dir", "notify-keyspace-events", "tls-port", "replicaof"):
        with pytest.raises(redis.ResponseError, match=f"CONFIG SET of '{name}' is refused by headroom"):
            raw(r, "CONFIG", "SET", "maxmemory-samples", "7", name, "x")
    for n in c.nodes:  # nothing of it ran: not even the allowed parameter before it
        assert n.client.config_get("maxmemory-samples")["maxmemory-samples"] == "5"
        assert n.client.config_get("requirepass")["requirepass"] == ""
    assert raw(r, "CONFIG", "SET", "maxmemory-samples", "7") == "OK"
    assert {n.client.config_get("maxmemory-samples")["maxmemory-samples"] for n in c.nodes} == {"7"}
    assert r.set("still", "served") is True and r.get("still") == "served"


def test_config_resetstat_resets_headrooms_counters_too(own):
    c = own(settings={"allow_dangerous_commands": "[config, debug]"}, node_extra=("--enable-debug-command", "yes"))
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    for i in range(20):
        r.set(f"rs:{i}", i)
    with pytest.raises(redis.ResponseError):
        raw(r, "NOSUCH")
    stats = r.info("stats")
    assert stats["total_commands_processed"] >= 21 and stats["total_error_replies"] >= 1
    assert raw(r, "CONFIG", "RESETSTAT") == "OK"
    stats = r.info("stats")
    assert stats["total_commands_processed"] <= 2 and stats["total_error_replies"] == 0
    # DEBUG's settings reach every node, which answer alike
    assert raw(r, "DEBUG", "SLEEP", "0") == "OK"
    for n in c.nodes:
        assert "cmdstat_debug" in n.client.info("commandstats")


def test_info_has_redis_s_default_sections_with_headroom_s_figures(clean, r, ref):
    # The sections Redis 7 gives by default, in its order; headroom's own come between.
    heads = [line for line in raw(r, "INFO").splitlines() if line.startswith("# ")]
    want = ["# Server", "# Clients", "# Memory", "# Persistence", "# Stats", "# Replication", "# CPU",
            "# Errorstats", "# Cluster", "# Keyspace"]
    assert [h for h in heads if h in want] == want
    # The nodes' Redis version (the lowest of them), not a made-up one.
    assert r.info("server")["redis_version"] == ref.info("server")["redis_version"]
    assert r.info("replication")["role"] == "master" and r.info("replication")["connected_slaves"] == 0
    assert r.info("persistence")["loading"] == 0
    cpu = r.info("cpu")
    assert cpu["used_cpu_user"] > 0 and "used_cpu_sys" in cpu
    # Errors by kind, as Redis counts them: headroom's own and those the nodes answered.
    def errorstats():
        out = {}
        for line in raw(r, "INFO", "errorstats").splitlines():
            if line.startswith("errorstat_"):
                k, v = line.split(":", 1)
                out[k[len("errorstat_"):]] = int(v.split("=", 1)[1])
        return out
    before = errorstats()
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            raw(r, "NOSUCHCOMMAND")
    r.set("es:str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("es:str", "y")
    after = errorstats()
    assert after["ERR"] - before.get("ERR", 0) == 3
    assert after["WRONGTYPE"] - before.get("WRONGTYPE", 0) == 1
    # total_error_replies counts every error reply, as Redis; headroom's own apart.
    stats = r.info("stats")
    assert stats["total_error_replies"] >= 4 and stats["total_headroom_error_replies"] >= 3
    assert stats["total_error_replies"] == sum(errorstats().values())


def test_acl_whoami_cat_and_genpass_answer_as_redis_and_the_rest_is_refused(r, ref):
    assert raw(r, "ACL", "WHOAMI") == "default" == raw(ref, "ACL", "WHOAMI")
    assert raw(r, "ACL", "CAT") == raw(ref, "ACL", "CAT")
    assert sorted(raw(r, "ACL", "CAT", "string")) == sorted(raw(ref, "ACL", "CAT", "string"))  # dict order
    assert len(raw(r, "ACL", "GENPASS")) == 64
    for args, text in ((("ACL", "WHOAMI", "x"), "wrong number of arguments for 'acl|whoami' command"),
                       (("ACL", "CAT", "nosuch"), "Unknown category 'nosuch'")):
        with pytest.raises(redis.ResponseError) as mine:
            raw(r, *args)
        with pytest.raises(redis.ResponseError) as theirs:
            raw(ref, *args)
        assert str(mine.value) == str(theirs.value) and text in str(mine.value)
    with pytest.raises(redis.ResponseError, match="acl"):
        raw(r, "ACL", "SETUSER", "alice", "on")
    with pytest.raises(redis.ResponseError, match="acl"):
        raw(r, "ACL", "LIST")


def test_info_persistence_shows_the_nodes_aof_rewrite_so_debug_loadaof_after_it_is_safe(own):
    # What Redis's own tests do (stream, stream-cgroups): CONFIG SET appendonly yes, wait
    # while INFO persistence shows the rewrite, then DEBUG LOADAOF. A node whose rewrite
    # has not finished has no AOF to load and exits: INFO must not say it is done early.
    c = own(settings={"allow_dangerous_commands": "[config, debug]"}, node_extra=("--enable-debug-command", "yes"))
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    pipe = r.pipeline(transaction=False)
    for i in range(30000):
        pipe.set(f"aof:{i}", "x" * 100)
    pipe.execute()
    assert raw(r, "CONFIG", "SET", "appendonly", "yes") == "OK"
    # As the harness of Redis's tests waits: only on aof_rewrite_in_progress.
    deadline = time.time() + 60
    while True:
        p = r.info("persistence")
        if p["aof_rewrite_in_progress"] == 0:
            break
        assert time.time() < deadline, p
        time.sleep(0.05)
    assert p["aof_enabled"] == 1
    assert raw(r, "DEBUG", "LOADAOF") == "OK"
    for n in c.nodes:
        assert n.up() and n.client.ping()
    assert sum(n.client.dbsize() for n in c.nodes) == 30000
    assert r.get("aof:7") == "x" * 100

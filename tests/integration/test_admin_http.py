"""The admin HTTP port (proxy/admin_http.h) against a real headroom and real servers:
/metrics checked by promtool and scraped by a real Prometheus, the JSON API and its
token, and bad HTTP input (malformed, huge headers, a huge body, a trickle) answered
with its status while the data path keeps serving."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
import redis

from cluster import Cluster, free_port, wait_for

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def admin():
    port = free_port()
    c = Cluster(settings={"admin": f"{{listen: 127.0.0.1:{port}, token: {TOKEN}, max_header_bytes: 2kb, "
                                   f"max_body_bytes: 1kb, request_timeout_ms: 1000}}"})
    c.admin_port = port
    yield c
    c.close()


def http(c, path, method="GET", token=None, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{c.admin_port}{path}", method=method, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def raw(c, data, read=True):
    s = socket.create_connection(("127.0.0.1", c.admin_port), timeout=10)
    s.sendall(data)
    out = b""
    if read:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    s.close()
    return out


def test_metrics_are_prometheus_text_that_promtool_accepts(admin):
    r = admin.proxy.client()
    for i in range(50):
        r.set(f"m{i}", i)
    status, ctype, body = http(admin, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert "headroom_commands_total" in text and 'headroom_node_keys{node="node1"}' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()


def test_stats_and_nodes_match_what_the_nodes_hold(admin):
    r = admin.proxy.client()
    for i in range(100):
        r.set(f"s{i}", i)

    def keys_match():
        _, _, body = http(admin, "/nodes")
        nodes = {n["name"]: n for n in json.loads(body)}
        return all(nodes[n.name]["keys"] == n.client.dbsize() for n in admin.nodes)
    wait_for(keys_match, 30, "/nodes key counts match the nodes")
    status, ctype, body = http(admin, "/stats")
    assert status == 200 and ctype == "application/json"
    stats = json.loads(body)
    assert stats["headroom_commands_total"] >= 100
    assert {m["labels"]["node"] for m in stats["headroom_node_used_memory_bytes"]} == {n.name for n in admin.nodes}


def test_posts_need_the_token_and_drain_and_rebalance_answer_what_they_did(admin):
    status, _, body = http(admin, "/nodes/node2/drain", "POST")
    assert status == 401 and "token" in json.loads(body)["error"]
    status, _, body = http(admin, "/nodes/node2/drain", "POST", token="wrong")
    assert status == 401
    status, _, body = http(admin, "/nodes/node2/drain", "POST", token=TOKEN)
    assert status == 200 and json.loads(body) == {"ok": True, "node": "node2", "draining": True}
    wait_for(lambda: admin.main.client.sismember("hr:draining", "node2"), 10, "recorded")
    assert any(n["name"] == "node2" and n["draining"] for n in json.loads(http(admin, "/nodes")[2]))
    status, _, body = http(admin, "/nodes/node2/drain?off", "POST", token=TOKEN)
    assert status == 200 and json.loads(body)["draining"] is False
    status, _, body = http(admin, "/nodes/nope/drain", "POST", token=TOKEN)
    assert status == 404 and "nope" in json.loads(body)["error"]
    status, _, body = http(admin, "/rebalance", "POST", token=TOKEN)
    assert status == 200 and json.loads(body)["rebalancing"] is True
    status, _, body = http(admin, "/reload", "POST", token=TOKEN)
    assert status == 200 and json.loads(body)["ok"] is True
    assert http(admin, "/metrics", "POST", token=TOKEN)[0] == 405
    assert http(admin, "/nope")[0] == 404


def test_bad_http_gets_its_status_and_the_data_path_keeps_serving(admin):
    r = admin.proxy.client()
    assert raw(admin, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    huge = b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n"
    assert raw(admin, huge).startswith(b"HTTP/1.1 431")
    body = b"x" * 4096
    big = b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert raw(admin, big).startswith(b"HTTP/1.1 413")
    # A trickle (slowloris): answered 408 at request_timeout_ms, closed; meanwhile the
    # data path and other admin requests are served.
    s = socket.create_connection(("127.0.0.1", admin.admin_port), timeout=10)
    s.sendall(b"GET /stats HTTP/1.1\r\nHo")
    assert r.set("during", "trickle") and r.get("during") == b"trickle"
    assert http(admin, "/nodes")[0] == 200
    t0 = time.time()
    out = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    assert out.startswith(b"HTTP/1.1 408"), out
    assert time.time() - t0 < 9  # the 1 s bound honoured, with a wide margin
    s.close()


def test_a_real_prometheus_scrapes_headroom(admin, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("prometheus (Debian's package) is not installed")
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global: {scrape_interval: 1s}\n"
                   "scrape_configs:\n"
                   f"  - job_name: headroom\n    static_configs: [{{targets: ['127.0.0.1:{admin.admin_port}']}}]\n")
    log = open(tmp_path / "prometheus.log", "w")
    p = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def has_series():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query=headroom_node_up",
                                            timeout=5) as r:
                    data = json.loads(r.read())
                return len(data["data"]["result"]) == 4
            except (OSError, ValueError, KeyError):
                return False
        wait_for(has_series, 90, lambda: "no headroom series in Prometheus:\n" + open(tmp_path / "prometheus.log").read()[-2000:])
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()


def test_the_live_page_is_served_whole(admin):
    status, ctype, body = http(admin, "/")
    assert status == 200 and ctype.startswith("text/html")
    page = body.decode()
    assert "/stats" in page and "/nodes" in page and "http" not in page.replace("http-equiv", "")



def chromium(args, timeout=120):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium (Debian's package) is not installed")
    home = tempfile.mkdtemp(prefix="headroom-chromium-")
    try:
        p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            f"--user-data-dir={home}", *args], capture_output=True, timeout=timeout)
        return p.stdout.decode(errors="replace")
    finally:
        shutil.rmtree(home, ignore_errors=True)


class Load(threading.Thread):
    """About `rate` SETs a second over keys that exist (key counts stay put)."""

    def __init__(self, client, keys, rate=400):
        super().__init__(daemon=True)
        self.client, self.keys, self.rate = client, keys, rate
        self.stop = threading.Event()

    def run(self):
        t = time.perf_counter()
        i = 0
        while not self.stop.is_set():
            self.client.set(self.keys[i % len(self.keys)], i)
            i += 1
            t += 1 / self.rate
            time.sleep(max(0.0, t - time.perf_counter()))


def test_the_live_page_in_chromium_shows_what_stats_says(admin):
    r = admin.proxy.client()
    keys = [f"page{i}" for i in range(300)]
    for k in keys:
        r.set(k, "v")
    load = Load(admin.proxy.client(), keys)
    load.start()
    try:
        def counts_settled():
            nodes = json.loads(http(admin, "/nodes")[2])
            return all(n["keys"] == admin.nodes[i].client.dbsize() for i, n in enumerate(nodes))
        wait_for(counts_settled, 30, "/nodes shows the nodes' key counts")
        # The rate by the counters over two seconds around the page's look.
        s1 = json.loads(http(admin, "/stats")[2])
        time.sleep(1)
        url = f"http://127.0.0.1:{admin.admin_port}/"
        dom = chromium(["--window-size=1280,800", "--virtual-time-budget=4000", "--dump-dom", url])
        time.sleep(max(0.0, 2 - (json.loads(http(admin, "/stats")[2])["headroom_uptime_seconds"] -
                                 s1["headroom_uptime_seconds"])))
        s2 = json.loads(http(admin, "/stats")[2])
        nodes = json.loads(http(admin, "/nodes")[2])
        rate = (s2["headroom_commands_total"] - s1["headroom_commands_total"]) / \
            (s2["headroom_uptime_seconds"] - s1["headroom_uptime_seconds"])
        shown = {}
        for m in re.finditer(r'data-node="([^"]+)".*?<span class="keys">(\d+)</span>', dom, re.S):
            shown[m.group(1)] = int(m.group(2))
        assert shown == {n["name"]: n["keys"] for n in nodes}, (shown, nodes)
        rps = int(re.search(r'id="rps">(-?\d+)<', dom).group(1))
        # The page shows the last whole second's rate (headroom_commands_per_second) as of
        # its last poll: within 10 % of the counters' rate around it, or of that figure in
        # the snapshot just before or just after (a stall of the load, chromium starting on
        # two busy cores, can make one second differ from the window's mean).
        near = [rate, s1["headroom_commands_per_second"], s2["headroom_commands_per_second"]]
        assert any(abs(rps - x) <= 0.10 * x + 5 for x in near), (rps, near)
        assert int(re.search(r'data-updates="(\d+)"', dom).group(1)) >= 2  # it updated itself
        # A phone's width: no horizontal scrolling.
        phone = chromium(["--window-size=390,844", "--virtual-time-budget=2500", "--dump-dom", url])
        sw = int(re.search(r'data-scroll-width="(\d+)"', phone).group(1))
        iw = int(re.search(r'data-inner-width="(\d+)"', phone).group(1))
        assert sw <= iw, (sw, iw)
        out = os.environ.get("HEADROOM_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "headroom-artifacts")
        os.makedirs(out, exist_ok=True)
        for w, h in ((1280, 800), (390, 844)):
            path = os.path.join(out, f"admin-page-{w}x{h}.png")
            chromium([f"--window-size={w},{h}", "--virtual-time-budget=2500", f"--screenshot={path}", url])
            assert os.path.getsize(path) > 1000, path
    finally:
        load.stop.set()
        load.join()


def test_slowlog_and_latency_answer_as_redis_does_from_headroom_s_own_figures():
    c = Cluster(settings={"slowlog": "{slower_than_us: 0, max_len: 3}"})
    try:
        r = c.proxy.client()
        r.slowlog_reset()
        r.set("sk", "v")
        r.get("sk")
        assert len(r.slowlog_get(2)) == 2  # redis-py parses the entries
        raw_entries = r.execute_command("SLOWLOG", "GET", "10")
        assert len(raw_entries) == 3  # max_len
        newest = raw_entries[0]
        assert len(newest) == 6 and isinstance(newest[2], int) and newest[3] == [b"slowlog", b"get"]
        assert b"get" in [e[3][0] for e in raw_entries]
        assert r.slowlog_len() == 3
        assert r.execute_command("SLOWLOG", "RESET") == b"OK"
        assert r.slowlog_len() <= 1  # the RESET itself may be logged after
        assert r.execute_command("LATENCY", "LATEST") == []
        assert r.execute_command("LATENCY", "HISTORY", "command") == []
        with pytest.raises(redis.ResponseError, match="count should be greater than or equal to -1"):
            r.execute_command("SLOWLOG", "GET", "-5")
    finally:
        c.close()


def test_metrics_have_latency_histograms_by_command_class(admin):
    r = admin.proxy.client()
    for i in range(20):
        r.set(f"h{i}", i)
        r.mget(f"h{i}", f"h{i + 1}")
    text = http(admin, "/metrics")[2].decode()
    for cls in ("single", "split", "local"):
        assert f'headroom_request_duration_seconds_count{{class="{cls}"}}' in text
    assert 'headroom_request_duration_seconds_bucket{class="single",le="+Inf"}' in text
    count = [line for line in text.splitlines() if line.startswith('headroom_request_duration_seconds_count{class="split"}')]
    assert int(float(count[0].split()[-1])) >= 20


def test_prometheus_redis_exporter_scrapes_headroom_without_errors(admin):
    exe = shutil.which("prometheus-redis-exporter")
    if exe is None:
        pytest.skip("prometheus-redis-exporter (Debian's package) is not installed")
    port = free_port()
    # -export-client-list: it sends CLIENT LIST and parses each line
    p = subprocess.Popen([exe, "-redis.addr", f"redis://127.0.0.1:{admin.proxy.port}",
                          "-web.listen-address", f"127.0.0.1:{port}", "-export-client-list"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        def scraped():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    return r.read().decode()
            except OSError:
                return None
        wait_for(lambda: scraped() is not None, 30, "the exporter answers")
        text = scraped()
        assert "redis_up 1" in text, text[-2000:]
        assert 'redis_exporter_last_scrape_error{err=""} 0' in text, [
            line for line in text.splitlines() if "scrape_error" in line]
        details = [line for line in text.splitlines() if line.startswith("redis_connected_clients_details{")]
        assert any('cmd="client|list"' in line and 'name="redis_exporter"' in line for line in details), details
    finally:
        p.terminate()
        out = p.communicate(timeout=10)[0].decode()
    assert "level=error" not in out, out[-2000:]


def test_commandstats_count_calls_and_failures_by_command(admin):
    r = admin.proxy.client()

    before = r.info("commandstats").get("cmdstat_incr", {}).get("calls", 0)
    failed_before = r.info("commandstats").get("cmdstat_incr", {}).get("failed_calls", 0)
    r.set("cs:str", "not a number")
    for i in range(5):
        r.execute_command("INCR", "cs:n")  # (redis-py's incr() sends INCRBY)
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCR", "cs:str")
    stats = r.info("commandstats")["cmdstat_incr"]
    assert stats["calls"] == before + 6 and stats["failed_calls"] == failed_before + 1
    assert "cmdstat_incr" not in r.info()  # not a default section, as in Redis
    text = http(admin, "/metrics")[2].decode()
    assert 'headroom_command_calls_total{command="incr"}' in text
    assert 'headroom_command_failed_total{command="incr"}' in text


def metric(text, name, **labels):
    """The value of one series of /metrics (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_metrics_show_backend_connections_per_node_and_state_and_placements():
    port = free_port()
    c = Cluster(settings={"admin": f"{{listen: 127.0.0.1:{port}}}", "backend_connections": 2})
    c.admin_port = port
    try:
        r = c.proxy.client()
        for i in range(40):
            r.set(f"p{i}", i)
        text = http(c, "/metrics")[2].decode()
        for n in ("node1", "node2", "node3", "node4"):
            assert metric(text, "headroom_backend_connections", node=n, kind="shared", state="connected") >= 2
            assert metric(text, "headroom_backend_connections", node=n, kind="shared", state="down") == 0
            assert metric(text, "headroom_backend_inflight_commands", node=n) == 0
        on_other = next(f"p{i}" for i in range(40) if c.node_of(f"p{i}") in (["node1"], ["node3"], ["node4"]))
        # Every placement waited for the main server once: one sample each.
        placed = metric(text, "headroom_placements_total")
        assert placed == 40
        assert metric(text, "headroom_placement_duration_seconds_count") == placed
        assert metric(text, "headroom_placement_duration_seconds_bucket", le="+Inf") == placed
        assert metric(text, "headroom_placement_failures_total") == 0

        # A node that stops: its shared connections show as down (reconnecting).
        c.nodes[1].stop()

        def down():
            t = http(c, "/metrics")[2].decode()
            return metric(t, "headroom_backend_connections", node="node2", kind="shared", state="connected") == 0 \
                and metric(t, "headroom_backend_connections", node="node2", kind="shared", state="down") >= 2
        wait_for(down, timeout=30, what=lambda: http(c, "/metrics")[2].decode())

        # A WATCH holds a leased connection until EXEC.
        tx = c.proxy.client()
        tx.execute_command("WATCH", on_other)

        def leased():
            t = http(c, "/metrics")[2].decode()
            return sum(metric(t, "headroom_backend_connections", node=n, kind="leased", state="connected") or 0
                       for n in ("node1", "node3", "node4")) >= 1
        wait_for(leased, timeout=30, what=lambda: http(c, "/metrics")[2].decode())
        tx.execute_command("UNWATCH")
    finally:
        c.close()

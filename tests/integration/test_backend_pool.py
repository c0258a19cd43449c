"""backend_connections > 1: a node is reached over several pipelined connections, yet
one client's commands to one node stay in the order it sent them, whatever the pool
size (a SET then a GET of the same key must read that SET)."""
import threading

import pytest

from cluster import Cluster
from test_pipeline import commands, run_pipeline


@pytest.fixture(scope="module")
def pooled():
    c = Cluster(settings={"backend_connections": "3"})
    yield c
    c.close()


def test_a_pipeline_over_three_connections_matches_one_redis(pooled):
    pooled.flushall()
    r = pooled.proxy.client(decode_responses=True)
    ref = pooled.reference.client
    for seed in range(3):
        cmds = commands(3000, seed=100 + seed)
        got = run_pipeline(r, cmds)
        want = [w.decode() if isinstance(w, bytes) else w for w in run_pipeline(ref, cmds)]
        want = [[x.decode() if isinstance(x, bytes) else x for x in w] if isinstance(w, list) else w for w in want]
        diffs = [(i, cmds[i], g, w) for i, (g, w) in enumerate(zip(got, want)) if str(g) != str(w)]
        assert len(got) == len(want) and not diffs, diffs[:10]


def test_set_then_get_in_every_pipeline_reads_the_set(pooled):
    errors = []

    def worker(wid):
        c = pooled.proxy.client(decode_responses=True)
        for rnd in range(200):
            p = c.pipeline(transaction=False)
            for i in range(10):
                p.set(f"order:{wid}", f"{rnd}:{i}")
                p.get(f"order:{wid}")
            res = p.execute()
            for i in range(10):
                if res[2 * i + 1] != f"{rnd}:{i}":
                    errors.append((wid, rnd, i, res[2 * i + 1]))
        if c.get(f"order:{wid}") != "199:9":
            errors.append((wid, "final", c.get(f"order:{wid}")))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:10]

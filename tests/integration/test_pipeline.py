"""Pipelines of thousands of mixed commands: replies come back in request order,
exactly as one Redis server gives them."""
import random


def commands(n, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        k = f"p:{rnd.randrange(300)}"
        kind = rnd.randrange(10)
        if kind == 0:
            out.append(("SET", k, f"v{i}"))
        elif kind == 1:
            out.append(("GET", k))
        elif kind == 2:
            out.append(("INCR", f"cnt:{rnd.randrange(50)}"))
        elif kind == 3:
            out.append(("RPUSH", f"list:{rnd.randrange(50)}", str(i)))
        elif kind == 4:
            out.append(("MGET", *[f"p:{rnd.randrange(300)}" for _ in range(rnd.randrange(1, 8))]))
        elif kind == 5:
            out.append(("DEL", k))
        elif kind == 6:
            out.append(("HSET", f"hash:{rnd.randrange(50)}", f"f{i % 7}", str(i)))
        elif kind == 7:
            out.append(("EXISTS", k, f"p:{rnd.randrange(300)}"))
        elif kind == 8:
            out.append(("PING",))
        else:
            out.append(("MSET", k, str(i), f"p:{rnd.randrange(300)}", str(-i)))
    return out


def run_pipeline(client, cmds):
    p = client.pipeline(transaction=False)
    for c in cmds:
        p.execute_command(*c)
    return p.execute(raise_on_error=False)


def test_thousands_of_mixed_commands_in_order(r, ref):
    cmds = commands(5000, seed=7)
    got = run_pipeline(r, cmds)
    want = run_pipeline(ref, cmds)
    assert len(got) == len(want) == 5000
    diffs = [(i, cmds[i], g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not diffs, diffs[:10]


def test_several_pipelining_clients_at_once(clean):
    import threading
    errors = []

    def worker(wid):
        c = clean.proxy.client(decode_responses=True)
        for rnd in range(5):
            p = c.pipeline(transaction=False)
            for i in range(500):
                p.set(f"w{wid}:{i}", f"{rnd}:{i}")
                p.get(f"w{wid}:{i}")
            res = p.execute()
            for i in range(500):
                if res[2 * i + 1] != f"{rnd}:{i}":
                    errors.append((wid, rnd, i, res[2 * i + 1]))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]

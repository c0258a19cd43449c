#!/usr/bin/python3
"""A correctness checker for headroom with several proxies in front of the same nodes.

Clients (threads, each with its own connections) drive a few hundred hot keys through
several headroom instances at once; every operation is recorded with its start and
end; afterwards the history is verified against what one Redis could have answered,
and the data nodes and the directory on the main server are checked directly.

    result = run_checker(cluster, cluster.proxies, clients=8, ops=100_000, keys=300, seed=1, flushes=2)
    assert result.ok, result.report()

    /usr/bin/python3 tests/integration/checker.py --help

The workload
============

Keys come in five disjoint families, so every operation is type-correct (half the
keys are registers, an eighth each of the other four families):

- registers ``<run>r<i>`` (a fifth of them share hash tags, ``{<run>g<j>}r<i>``, three
  keys a tag): SET of a value no other write uses, SET ... EX <ttl> (1 or 2 s, also a
  unique value), GET, DEL;
- counters ``<run>c<i>``: INCR, GET, DEL;
- append logs ``<run>l<i>``: APPEND of a unique token ``<client>.<seq>;``, GET, DEL;
- lists ``<run>q<i>``: LPUSH of a unique token ``<client>.<seq>``, LRANGE 0 -1, DEL;
- hashes ``<run>h<i>``: HSET of one field (f0 .. f3, at random) to a unique value
  ``<client>:<seq>``, HGETALL, DEL;

and FLUSHALL, through a random proxy, ``flushes`` times per run (spread over the run).
Per family the mix is 40 % reads (GET, LRANGE, HGETALL), 15 % DEL and 45 % writes
(registers: 33 % SET, 12 % SET EX), so DEL is 15 % of all operations. Each client starts on proxy
``client % proxies`` and moves to a random proxy about once every 500 operations.
``<run>`` is a random prefix per run, so every key starts absent.

Every operation is recorded: client, proxy, kind, key, argument, start and end
(``time.monotonic_ns()`` taken just before the command is sent and just after its
reply is read; all clients share one clock) and its outcome: ok with the reply, a
Redis error, or a timeout or connection error. After the clients stop, every key is
read (GET, LRANGE 0 -1 or HGETALL, by family) through every proxy and "directly" (the
main server's entry names the node; the key is read there; no entry reads as an
absent key). These final reads are part of the history.

Legal histories
===============

Notation: each operation o has an interval [s(o), e(o)]. An operation whose outcome
is ok is *acknowledged*. One that failed (a Redis error) or whose reply never came
(timeout, connection error) may or may not have taken effect, at any time after it
started: its e(o) is taken as infinity. A failed read tells nothing and is not checked.
o1 *precedes* o2 when e(o1) < s(o2). A *reset* R of key k is a DEL k, a FLUSHALL, or
(registers only) the expiry of a SET EX. A reset R *could be ordered between* o1 and
o2 (o1 before o2) when s(o1) < e(R) and s(R) < e(o2): some choice of points t1 < tR < t2
inside the three intervals exists.

Per key, the history is legal when it is linearizable: every operation can be given
one point inside its interval such that the replies are those of one Redis key that
is a register (registers), a counter (counters) or an append log (logs), starting
absent. A full search is exponential; the checks below are sufficient conditions for
illegality, each answered with sorted indexes and binary search (scans reach back only
to the last reset), so every anomaly reported is a real one (no legal history explains
it, given the expiry slack), while some illegal histories may pass unnoticed.

Expiry. SET k v EX t, with interval [s, e], makes a reset that happens at some point in
[s + t - slack, e + t + slack] (slack: 1 s by default, generous against the servers'
clock and lazy expiry), and only if v is still the key's value then. So: a read that
returns v and starts after e + t + slack is stale; and any expiry window counts as a
reset that could be ordered between two operations (whoever wrote last).

Registers (unique values). A GET r returning v, written by the SET w:
  - no SET wrote v to this key, or s(w) > e(r) (written after the read ended): a read
    of a value never written;
  - some acknowledged SET, DEL or FLUSHALL x with e(w) < s(x) and e(x) < s(r) (x
    certainly came after w and before r), or w was a SET EX whose expiry window ended
    before s(r): a stale read.
  A GET r returning nil: let w be the acknowledged SET with e(w) < s(r) that started
  last; if no reset (DEL or FLUSHALL with any outcome, or any expiry window) could be
  ordered between w and r, the read is stale: some value was certainly there.

Counters. A counter's value is the number of INCRs since the last reset; GET of an
absent counter is nil, which reads as 0; INCR answers the new value. For a read r
(a GET, or an INCR's answer):
  - lower bound: every acknowledged INCR i with e(i) < s(r) such that no reset could
    be ordered between i and r: a GET answers at least i's result, an INCR more than it
    (otherwise stale: increments missing);
  - upper bound: let D be the latest start of an acknowledged reset that ended before
    s(r) (the last reset before r happened after D); r's value is at most the number
    of INCRs (any outcome) that started before e(r) and did not end before D
    (otherwise: a value never written);
  - distinct results: two acknowledged INCRs with the same answer need a reset that
    could be ordered between them, in one order or the other (otherwise one
    increment was lost: a lost write).

Append logs. A value is a sequence of tokens (each ends with ';'). A GET r:
  - every token was appended to this key by an APPEND that started before e(r), and
    appears once, and the tokens' order is consistent with real time (if APPEND a
    precedes APPEND b, a's token comes first): otherwise a value never written;
  - no token's APPEND ended before D (as for counters: an acknowledged reset certainly
    between the APPEND and r would have removed it): otherwise stale;
  - every acknowledged APPEND that ended before s(r), with no reset that could be
    ordered between it and r, has its token in the value: otherwise stale;
  - an earlier read r1 (e(r1) < s(r)) with no reset that could be ordered between r1
    and r reads a prefix of r's value: tokens missing are stale, tokens in another
    order are a value never written.
  APPEND answers the log's length: at least the lengths of the tokens an acknowledged
  APPEND put there before s(r) with no possible reset between, plus its own
  (otherwise stale); at most the lengths of every token appended since D (otherwise
  never written).

Lists. LPUSH puts its token at the head, so an LRANGE 0 -1 read backwards (oldest
first) is a sequence of tokens just as a log's GET is, and the same checks apply to it
word for word, with LPUSH for APPEND: every element was pushed to this key by an LPUSH
that started before e(r), once, in an order consistent with real time (if LPUSH a
precedes LPUSH b, a's element is nearer the tail); none was pushed by an LPUSH that
ended before D; every acknowledged LPUSH that ended before s(r), with no reset that
could be ordered between, is there; an earlier read with no possible reset between
lists the oldest part of this one. LPUSH answers the list's length in elements: at
least the acknowledged LPUSHes before it with no possible reset between, plus one; at
most the LPUSHes since D.

Hashes. Each field is a register (HSET of unique values; HSET is its only writer),
a DEL or FLUSHALL resets every field at once, and HGETALL reads every field at one
point. For an HGETALL r:
  - each field it returns is checked as a register's GET: a value no HSET wrote to
    that field of this key, or one written after e(r), was never written; one with an
    acknowledged HSET of the same field, DEL or FLUSHALL certainly after its HSET and
    before r is stale;
  - each field it lacks is checked as a register's nil: the acknowledged HSET of that
    field with e(w) < s(r) that started last, with no reset that could be ordered
    between w and r, makes the read stale;
  - one snapshot: when a field it lacks has such a w (so the last reset R before r
    came after w) and a field it returns has the HSET p (which came after R), R needs
    s(R) < min(e(p), e(r)) and e(R) > s(w): with no such reset (for the w that started
    last and the p that ended first) the read is stale, fields from before and after
    a reset.
  HSET answers 1 when the field was new: stale when an acknowledged HSET of the field
  ended before it began with no possible reset between (as a nil read); 0 when the
  field was there: never written when no other HSET of the field started before it
  ended and did not end before D.

Final reads (through each proxy and directly, after every client stopped) are checked
the same way; a final read that misses an acknowledged write (nil, an older value, a
lower count, missing tokens, elements or fields) counts as a *lost write* instead of a
stale read.

Placement (on the servers directly, not through headroom), for every key of the run:
which data nodes hold it (EXISTS on each), and its entry on the main server, the field
``directory_key(key)`` (the key, or its hash tag with the braces, ``{t}``) of hash
``bucket_of(directory_key)``. The entry's node is the first space-separated word of
its value (today ``<node>``; ``<node> <version>`` or ``<node> <version> R`` after the
directory rewrite). Anomalies: a key on two or more nodes; a key on a node while its
entry is missing or names another node (an orphan). An entry without its key is not an
anomaly here.

The counts a run prints: operations (the clients' and the final reads), acknowledged
writes (SET, SET EX, DEL, INCR, APPEND, LPUSH, HSET, FLUSHALL answered without error),
reads checked (GET, LRANGE and HGETALL replies, and the answers of INCR, APPEND, LPUSH
and HSET, each checked as above), the acknowledged operations per command, failed or
indeterminate operations (a run with more of them than `max_failed`, 1 % by default,
or without an acknowledged FLUSHALL, fails: it checked too little; so does one whose
final reads failed: keys not readable once everything settled), and each kind of
anomaly. A read is counted once, under the first check it fails; one key that went
wrong usually fails many reads after it, so the keys affected are counted too.
"""
import argparse
import bisect
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import redis  # noqa: E402

from cluster import bucket_of  # noqa: E402

INF = 1 << 62
NEG = -(1 << 62)
OK, ERR, UNKNOWN = "ok", "error", "unknown"
REG, CTR, LOG, LIST, HASH = "register", "counter", "log", "list", "hash"
HASH_FIELDS = ("f0", "f1", "f2", "f3")
# The read each family's keys get (the clients' and the final reads).
READ_KIND = {REG: "get", CTR: "get", LOG: "get", LIST: "lrange", HASH: "hgetall"}

LOST, STALE, NEVER, ORPHAN, TWO = "lost write", "stale read", "read of a value never written", \
    "key on a node no entry names", "key on two nodes"
KINDS = (LOST, STALE, NEVER, ORPHAN, TWO)
LABELS = {LOST: "lost writes", STALE: "stale reads", NEVER: "reads of values never written",
          ORPHAN: "orphans (key on a node no entry names)", TWO: "keys on two nodes"}
WRITES = ("set", "setex", "del", "incr", "append", "lpush", "hset", "flushall")


def directory_key(key):
    """The directory's field for `key` (balancer/directory.cpp): its hash tag with the
    braces when it has a non-empty one, else the key itself."""
    o = key.find("{")
    if o < 0:
        return key
    c = key.find("}", o + 1)
    if c < 0 or c == o + 1:
        return key
    return key[o:c + 1]


def entry_node(value):
    """The node a directory entry names: the first space-separated word of its value
    ("node2" today; "node2 17" or "node2 17 R" once entries are versioned)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    words = value.split()
    return words[0] if words else None


class Op:
    """One operation of the history. `e` is the end the checks use: `end` when the
    operation was acknowledged, INF when it may have happened at any later time."""
    __slots__ = ("id", "client", "proxy", "kind", "key", "arg", "ttl", "start", "end", "status", "result", "final",
                 "e")

    def __init__(self, client, proxy, kind, key, arg, ttl, start, end, status, result, final=False):
        self.id = 0
        self.client, self.proxy, self.kind, self.key, self.arg, self.ttl = client, proxy, kind, key, arg, ttl
        self.start, self.end, self.status, self.result, self.final = start, end, status, result, final
        self.e = end if status == OK else INF

    def as_list(self):
        return [self.client, self.proxy, self.kind, self.key, self.arg, self.ttl, self.start, self.end, self.status,
                _plain(self.result), self.final]

    def describe(self, t0=0, proxies=None):
        def ms(t):
            return "inf" if t >= INF else f"{(t - t0) / 1e6:.3f}"
        who = "final read" if self.final and self.client is None else f"client {self.client}"
        via = (proxies[self.proxy] if proxies and isinstance(self.proxy, int) and 0 <= self.proxy < len(proxies)
               else ("direct" if self.proxy == -1 else str(self.proxy)))
        if self.kind == "hset":
            cmd = f"HSET {self.key} {self.arg[0]} {self.arg[1]}"
        else:
            cmd = {"set": f"SET {self.key} {self.arg}", "setex": f"SET {self.key} {self.arg} EX {self.ttl}",
                   "get": f"GET {self.key}", "del": f"DEL {self.key}", "incr": f"INCR {self.key}",
                   "append": f"APPEND {self.key} {self.arg}", "lpush": f"LPUSH {self.key} {self.arg}",
                   "lrange": f"LRANGE {self.key} 0 -1", "hgetall": f"HGETALL {self.key}",
                   "flushall": "FLUSHALL"}[self.kind]
        res = _plain(self.result)
        out = "-> " + (repr(res) if self.status == OK else f"{self.status}: {res}")
        return f"#{self.id} {who} via {via}: {cmd} [{ms(self.start)} .. {ms(self.end)} ms] {out}"


class Anomaly:
    def __init__(self, kind, key, text, ops=()):
        self.kind, self.key, self.text, self.ops = kind, key, text, list(ops)

    def at(self):
        return min((o.start for o in self.ops), default=INF)


class Result:
    def __init__(self, counts, anomalies, problems=(), t0=0, proxies=None, details=3):
        self.counts = counts
        self.anomalies = anomalies
        self.problems = list(problems)
        self.t0 = t0
        self.proxies = proxies or []
        self.details = details

    @property
    def ok(self):
        return not self.anomalies and not self.problems

    def count(self, kind):
        return sum(1 for a in self.anomalies if a.kind == kind)

    def summary(self):
        c = self.counts
        ops, finals = c.get("operations", 0), c.get("final_reads", 0)
        lines = [f"operations: {ops:,} ({ops - finals:,} by {c.get('clients', '?')} clients + {finals:,} final "
                 f"reads; {c.get('proxies', '?')} proxies, {c.get('keys', '?')} keys, "
                 f"{c.get('flushall', 0)} FLUSHALL acknowledged)"]
        if "seconds" in c:
            lines.append(f"run: {c['seconds']:.1f} s ({(ops - finals) / max(c['seconds'], 1e-9):,.0f} ops/s), "
                         f"verification {c.get('verify_seconds', 0):.1f} s")
        lines.append(f"acknowledged writes: {c.get('acked_writes', 0):,}   reads checked: {c.get('reads', 0):,}   "
                     f"failed or indeterminate: {c.get('indeterminate', 0):,}")
        if c.get("by_kind"):
            lines.append("acknowledged: " + ", ".join(f"{k.upper() if k != 'setex' else 'SET EX'} {n:,}"
                                                      for k, n in sorted(c["by_kind"].items())))
        if c.get("errors"):
            for msg, n in sorted(c["errors"].items(), key=lambda kv: -kv[1])[:5]:
                lines.append(f"  {n:>7,}  {msg}")
        lines.append(f"keys placed checked: {c.get('placement_keys', 0):,}")
        lines.append("   ".join(f"{LABELS[k]}: {self.count(k)}" for k in KINDS[:3]))
        lines.append("   ".join(f"{LABELS[k]}: {self.count(k)}" for k in KINDS[3:]))
        affected = {k: len({a.key for a in self.anomalies if a.kind == k}) for k in KINDS[:3]}
        if any(affected.values()):
            lines.append("keys affected: " + ", ".join(f"{n} by {LABELS[k]}" for k, n in affected.items() if n))
        return "\n".join(lines)

    def report(self):
        lines = [self.summary()]
        for p in self.problems:
            lines.append(f"problem: {p}")
        for kind in KINDS:
            found = sorted((a for a in self.anomalies if a.kind == kind), key=Anomaly.at)
            if not found:
                continue
            lines.append(f"--- {kind}: {len(found)} (first {min(len(found), self.details)})")
            for a in found[:self.details]:
                lines.append(f"  {a.key}: {a.text}")
                for o in a.ops:
                    lines.append(f"      {o.describe(self.t0, self.proxies)}")
        lines.append("OK: no anomaly" if self.ok else "FAILED")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Verification

def running_max(rows, field):
    """For rows (start, end, _, op) in order: the largest rows[..i][field] so far, and
    the op that has it, for each i."""
    best, best_op = NEG, None
    out, out_op = [], []
    for row in rows:
        if row[field] > best:
            best, best_op = row[field], row[3]
        out.append(best)
        out_op.append(best_op)
    return out, out_op


class _Resets:
    """Resets of one key: (s, e, definite, op). Answers, in O(log n):
    latest_end_before(t): the largest e over resets with s < t (a reset could be
    ordered after x and before an operation ending at t iff this exceeds s(x));
    latest_start_definite_before(t): the largest s over acknowledged, definite resets
    with e < t (the last reset before an operation starting at t happened after it)."""

    def __init__(self, items):
        by_s = sorted(items, key=lambda x: x[0])
        self.starts = [x[0] for x in by_s]
        self.pre_e, self.pre_e_op = running_max(by_s, 1)
        defs = sorted((x for x in items if x[2] and x[1] < INF), key=lambda x: x[1])
        self.ends = [x[1] for x in defs]
        self.pre_s, self.pre_s_op = running_max(defs, 0)

    def latest_end_before(self, t):
        i = bisect.bisect_left(self.starts, t)
        return (self.pre_e[i - 1], self.pre_e_op[i - 1]) if i else (NEG, None)

    def latest_start_definite_before(self, t):
        i = bisect.bisect_left(self.ends, t)
        return (self.pre_s[i - 1], self.pre_s_op[i - 1]) if i else (NEG, None)


class _Forcing:
    """Acknowledged operations (s, e, op) that change a register: answers the earliest
    end among those starting after a time (suffix minimum)."""

    def __init__(self, items):
        by_s = sorted(items, key=lambda x: x[0])
        self.starts = [x[0] for x in by_s]
        self.suf = [(INF, None)] * (len(by_s) + 1)
        for i in range(len(by_s) - 1, -1, -1):
            s, e, op = by_s[i]
            self.suf[i] = (e, op) if e < self.suf[i + 1][0] else self.suf[i + 1]

    def earliest_end_starting_after(self, t):
        return self.suf[bisect.bisect_right(self.starts, t)]


def _text(v):
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _plain(v):
    """A reply as JSON can hold it: bytes as text, inside lists and dicts too."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {_text(k): _plain(x) for k, x in v.items()}
    return _text(v)


def _fields(res):
    """An HGETALL reply (a dict, as redis-py's client answers, or the flat list RESP2
    sends) as {field: value} in text, or None when it is not one."""
    if res is None:
        return {}
    if isinstance(res, dict):
        return {_text(f): _text(v) for f, v in res.items()}
    if not isinstance(res, (list, tuple)) or len(res) % 2:
        return None
    out = {_text(f): _text(v) for f, v in zip(res[0::2], res[1::2])}
    return out if len(out) * 2 == len(res) else None


class _Seq:
    """One kind of sequence the checks below share: append logs (APPEND of "<token>;",
    GET of the concatenation, APPEND answering the length in bytes) and lists (LPUSH of
    a token, LRANGE 0 -1 answering the newest first, LPUSH answering the length in
    elements). parse(reply) gives the tokens oldest first, each as its write's
    argument, or None when the reply is not a sequence of tokens."""

    def __init__(self, write, read, cmd, unit, verb, units, weight, parse):
        self.write, self.read, self.cmd, self.unit, self.verb, self.units = write, read, cmd, unit, verb, units
        self.weight, self.parse = weight, parse


def _parse_log(res):
    v = _text(res)
    tokens = [] if v is None else v.split(";")
    if tokens and tokens[-1] != "":
        return None
    return [t + ";" for t in tokens[:-1]]


def _parse_list(res):
    if res is None:
        return []
    if not isinstance(res, (list, tuple)):
        return None
    return [_text(x) for x in reversed(res)]


LOG_SEQ = _Seq("append", "get", "APPEND", "token", "appended", "bytes", lambda a: len(a.arg), _parse_log)
LIST_SEQ = _Seq("lpush", "lrange", "LPUSH", "element", "pushed", "elements", lambda a: 1, _parse_list)


class Verifier:
    def __init__(self, ops, families=None, slack_s=1.0):
        self.ops = ops
        self.slack = int(slack_s * 1e9)
        self.anomalies = []
        self.reads = 0
        self.by_key = {}
        self.flushes = []
        for o in ops:
            if o.kind == "flushall":
                self.flushes.append(o)
            else:
                self.by_key.setdefault(o.key, []).append(o)
        self.families = dict(families or {})
        for k, kops in self.by_key.items():
            if k not in self.families:
                kinds = {o.kind for o in kops}
                self.families[k] = (CTR if "incr" in kinds else LOG if "append" in kinds else
                                    LIST if kinds & {"lpush", "lrange"} else
                                    HASH if kinds & {"hset", "hgetall"} else REG)

    def add(self, kind, key, text, *ops):
        self.anomalies.append(Anomaly(kind, key, text, [o for o in ops if o is not None]))

    def late(self, r):
        return LOST if r.final else STALE

    def run(self):
        flush_resets = [(f.start, f.e, f.status == OK, f) for f in self.flushes]
        for key, kops in self.by_key.items():
            kops.sort(key=lambda o: o.start)
            fam = self.families[key]
            if fam == REG:
                self.register(key, kops, flush_resets)
            elif fam == CTR:
                self.counter(key, kops, flush_resets)
            elif fam == LOG:
                self.sequence(key, kops, flush_resets, LOG_SEQ)
            elif fam == LIST:
                self.sequence(key, kops, flush_resets, LIST_SEQ)
            else:
                self.hash(key, kops, flush_resets)
        return self.anomalies

    # Registers ------------------------------------------------------------
    def register(self, key, kops, flush_resets):
        writes = [o for o in kops if o.kind in ("set", "setex")]
        by_value = {}
        for w in writes:
            by_value[w.arg] = w
        resets = [(d.start, d.e, d.status == OK, d) for d in kops if d.kind == "del"] + flush_resets
        for w in writes:
            if w.kind == "setex":
                t = w.ttl * 1_000_000_000
                resets.append((w.start + t - self.slack, w.e + t + self.slack if w.e < INF else INF, False, w))
        resets = _Resets(resets)
        forcing = _Forcing([(o.start, o.e, o) for o in kops if o.status == OK and o.kind in ("set", "setex", "del")]
                           + [(f.start, f.e, f) for f in self.flushes if f.status == OK])
        acked = sorted((w for w in writes if w.status == OK), key=lambda w: w.e)
        acked_ends = [w.e for w in acked]
        pre_latest = []  # acked[:i+1]'s write that started last
        best = None
        for w in acked:
            if best is None or w.start > best.start:
                best = w
            pre_latest.append(best)
        for r in kops:
            if r.kind != "get" or r.status != OK:
                continue
            self.reads += 1
            v = _text(r.result)
            if v is None:
                i = bisect.bisect_left(acked_ends, r.start)
                if not i:
                    continue
                w = pre_latest[i - 1]
                latest, _ = resets.latest_end_before(r.e)
                if latest <= w.start:
                    self.add(self.late(r), key, "nil, but a write was acknowledged before the read began and no "
                             "DEL, FLUSHALL or expiry could come between", w, r)
                continue
            w = by_value.get(v)
            if w is None:
                self.add(NEVER, key, f"value {v!r} was never written to this key", r)
            elif w.start > r.e:
                self.add(NEVER, key, f"value {v!r} was written only after the read ended", w, r)
            else:
                e, x = forcing.earliest_end_starting_after(w.e)
                if e < r.start:
                    self.add(self.late(r), key, "an older value: another write, DEL or FLUSHALL was acknowledged "
                             "after it and before the read began", w, x, r)
                elif w.kind == "setex" and w.e < INF and w.e + w.ttl * 1_000_000_000 + self.slack < r.start:
                    self.add(self.late(r), key, f"the value should have expired ({w.ttl} s TTL, "
                             f"{self.slack / 1e9:g} s slack) before the read began", w, r)

    # Counters -------------------------------------------------------------
    def counter(self, key, kops, flush_resets):
        resets = _Resets([(d.start, d.e, d.status == OK, d) for d in kops if d.kind == "del"] + flush_resets)
        incrs = [o for o in kops if o.kind == "incr"]  # sorted by start
        starts = [i.start for i in incrs]
        ends_all = sorted(i.e for i in incrs)
        for r in kops:
            if r.status != OK or r.kind not in ("get", "incr"):
                continue
            self.reads += 1
            if r.kind == "get":
                raw = _text(r.result)
                try:
                    n = 0 if raw is None else int(raw)
                except ValueError:
                    self.add(NEVER, key, f"{raw!r} is not a count", r)
                    continue
            else:
                n = r.result
            latest, _ = resets.latest_end_before(r.e)
            lo, lo_op = None, None
            a = bisect.bisect_left(starts, latest)
            b = bisect.bisect_left(starts, r.start)
            for i in incrs[a:b]:
                if i is not r and i.status == OK and i.e < r.start and (lo is None or i.result > lo):
                    lo, lo_op = i.result, i
            if lo is not None and (n < lo or (r.kind == "incr" and n <= lo)):
                self.add(self.late(r), key, f"{n}, but INCR answered {lo} before this began and no DEL or "
                         "FLUSHALL could come between", lo_op, r)
            d, d_op = resets.latest_start_definite_before(r.start)
            upper = bisect.bisect_left(starts, r.e) - bisect.bisect_right(ends_all, d)
            if n > upper:
                self.add(NEVER, key, f"{n}, but at most {upper} INCRs could follow the last reset", d_op, r)
        # Two INCRs that overlap and answered the same: no order without a reset between.
        by_result = {}
        for i in incrs:
            if i.status == OK:
                by_result.setdefault(i.result, []).append(i)
        for group in by_result.values():
            for x, a in enumerate(group):
                for b in group[x + 1:]:
                    if b.start >= a.e:
                        break
                    ab, _ = resets.latest_end_before(b.e)
                    ba, _ = resets.latest_end_before(a.e)
                    if ab <= a.start and ba <= b.start:
                        self.add(LOST, key, f"two INCRs answered {a.result}: one increment was lost", a, b)

    # Append logs and lists -------------------------------------------------
    def sequence(self, key, kops, flush_resets, sq):
        """Append logs (sq = LOG_SEQ) and lists (LIST_SEQ): the same checks, on the
        tokens oldest first (a list's LRANGE reversed)."""
        resets = _Resets([(d.start, d.e, d.status == OK, d) for d in kops if d.kind == "del"] + flush_resets)
        writes = [o for o in kops if o.kind == sq.write]  # sorted by start
        by_token = {a.arg: a for a in writes}
        starts = [a.start for a in writes]
        pre_len = [0]
        for a in writes:
            pre_len.append(pre_len[-1] + sq.weight(a))
        by_e = sorted(writes, key=lambda a: a.e)
        ends = [a.e for a in by_e]
        pre_len_e = [0]
        for a in by_e:
            pre_len_e.append(pre_len_e[-1] + sq.weight(a))
        reads, read_starts = [], []  # acknowledged reads (start, end, tokens, op), by start
        for r in kops:
            if r.status != OK or r.kind not in (sq.read, sq.write):
                continue
            self.reads += 1
            latest, _ = resets.latest_end_before(r.e)
            a0 = bisect.bisect_left(starts, latest)
            a1 = bisect.bisect_left(starts, r.start)
            required = [a for a in writes[a0:a1] if a is not r and a.status == OK and a.e < r.start]
            d, d_op = resets.latest_start_definite_before(r.start)
            if r.kind == sq.write:
                need = sum(sq.weight(a) for a in required) + sq.weight(r)
                most = pre_len[bisect.bisect_left(starts, r.e)] - pre_len_e[bisect.bisect_right(ends, d)]
                if not isinstance(r.result, int):
                    self.add(NEVER, key, f"{sq.cmd} answered {r.result!r}, not a length", r)
                elif r.result < need:
                    self.add(self.late(r), key, f"{sq.cmd} answered length {r.result}, but the acknowledged "
                             f"{sq.cmd}s before it make at least {need}", *(required[-3:]), r)
                elif r.result > most:
                    self.add(NEVER, key, f"{sq.cmd} answered length {r.result}, but at most {most} {sq.units} could "
                             "have been added since the last reset", d_op, r)
                continue
            tokens = sq.parse(r.result)
            if tokens is None:
                self.add(NEVER, key, f"{_plain(r.result)!r} is not a sequence of {sq.unit}s", r)
                continue
            bad = False
            seen = set()
            max_s, max_s_op = NEG, None
            for t in tokens:
                a = by_token.get(t)
                if a is None or a.start > r.e:
                    self.add(NEVER, key, f"{sq.unit} {t!r} was never {sq.verb} to this key before the read ended",
                             a, r)
                    bad = True
                    break
                if t in seen:
                    self.add(NEVER, key, f"{sq.unit} {t!r} appears twice", a, r)
                    bad = True
                    break
                seen.add(t)
                if a.e < max_s:
                    self.add(NEVER, key, f"{sq.unit} {t!r} comes after one whose {sq.cmd} began after it ended",
                             max_s_op, a, r)
                    bad = True
                    break
                if a.start > max_s:
                    max_s, max_s_op = a.start, a
                if a.e < d:
                    self.add(self.late(r), key, f"{sq.unit} {t!r} should have been removed by a reset acknowledged "
                             "before the read began", a, d_op, r)
                    bad = True
                    break
            if bad:
                continue
            missing = [a for a in required if a.arg not in seen]
            if missing:
                self.add(self.late(r), key, f"{len(missing)} acknowledged {sq.cmd}(s) missing, with no DEL or "
                         "FLUSHALL that could come between", missing[0], r)
                continue
            # Earlier reads with no possible reset between them and this one: prefixes.
            i0 = bisect.bisect_left(read_starts, latest)
            for s1, e1, t1, r1 in reads[i0:]:
                if s1 >= r.start:
                    break
                if e1 >= r.start:
                    continue
                if tokens[:len(t1)] != t1:
                    if set(t1) - seen:
                        self.add(self.late(r), key, f"an earlier read (no reset could come between) saw {sq.unit}s "
                                 "this one lacks", r1, r)
                    else:
                        self.add(NEVER, key, f"{sq.unit}s in another order than an earlier read's", r1, r)
                    break
            reads.append((r.start, r.end, tokens, r))  # kops is sorted by start
            read_starts.append(r.start)

    # Hashes ---------------------------------------------------------------
    def hash(self, key, kops, flush_resets):
        """Each field a register (HSET of unique values) inside a read of the whole
        hash; a DEL or FLUSHALL resets every field at once."""
        resets = _Resets([(d.start, d.e, d.status == OK, d) for d in kops if d.kind == "del"] + flush_resets)
        hsets = [o for o in kops if o.kind == "hset"]  # sorted by start
        by_value = {(w.arg[0], w.arg[1]): w for w in hsets}
        fields = sorted({w.arg[0] for w in hsets})
        clears = [(o.start, o.e, o) for o in kops if o.status == OK and o.kind == "del"] + \
            [(f.start, f.e, f) for f in self.flushes if f.status == OK]
        forcing, acked_ends, pre_latest, starts, ends = {}, {}, {}, {}, {}
        for f in fields:
            mine = [w for w in hsets if w.arg[0] == f]
            forcing[f] = _Forcing([(w.start, w.e, w) for w in mine if w.status == OK] + clears)
            acked = sorted((w for w in mine if w.status == OK), key=lambda w: w.e)
            acked_ends[f] = [w.e for w in acked]
            pre, best = [], None  # acked[:i+1]'s HSET that started last
            for w in acked:
                if best is None or w.start > best.start:
                    best = w
                pre.append(best)
            pre_latest[f] = pre
            starts[f] = [w.start for w in mine]
            ends[f] = sorted(w.e for w in mine)

        def witness(f, r):
            """The acknowledged HSET of f that ended before r began and started last:
            if no reset could be ordered after it and before r, f is certainly there."""
            i = bisect.bisect_left(acked_ends.get(f, ()), r.start)
            return pre_latest[f][i - 1] if i else None

        for r in kops:
            if r.status != OK or r.kind not in ("hgetall", "hset"):
                continue
            self.reads += 1
            latest, _ = resets.latest_end_before(r.e)
            if r.kind == "hset":
                # Its answer reads the field: 1 when it was absent, 0 when it was there.
                f = r.arg[0]
                if r.result == 1:
                    w = witness(f, r)
                    if w is not None and latest <= w.start:
                        self.add(self.late(r), key, f"HSET answered 1 (a new field {f}), but an HSET of it was "
                                 "acknowledged before this began and no DEL or FLUSHALL could come between", w, r)
                elif r.result == 0:
                    d, d_op = resets.latest_start_definite_before(r.start)
                    since = bisect.bisect_left(starts[f], r.e) - bisect.bisect_right(ends[f], d) - 1  # not r
                    if since <= 0:
                        self.add(NEVER, key, f"HSET answered 0 (field {f} was there), but no other HSET of it could "
                                 "follow the last reset", d_op, r)
                else:
                    self.add(NEVER, key, f"HSET answered {r.result!r}", r)
                continue
            got = _fields(r.result)
            if got is None:
                self.add(NEVER, key, f"{_plain(r.result)!r} is not a hash", r)
                continue
            bad = False
            present = []  # the HSETs that wrote what the read saw
            for f, v in sorted(got.items()):
                w = by_value.get((f, v))
                if w is None:
                    self.add(NEVER, key, f"field {f} = {v!r} was never written to this key", r)
                elif w.start > r.e:
                    self.add(NEVER, key, f"field {f} = {v!r} was written only after the read ended", w, r)
                else:
                    e, x = forcing[f].earliest_end_starting_after(w.e)
                    if e < r.start:
                        self.add(self.late(r), key, f"field {f}: an older value: another HSET of it, a DEL or a "
                                 "FLUSHALL was acknowledged after it and before the read began", w, x, r)
                    else:
                        present.append(w)
                        continue
                bad = True
                break
            if bad:
                continue
            absent = []  # for each field the read lacks, the HSET a reset must have followed
            for f in fields:
                if f in got:
                    continue
                w = witness(f, r)
                if w is None:
                    continue
                if latest <= w.start:
                    self.add(self.late(r), key, f"field {f} missing, but an HSET of it was acknowledged before the "
                             "read began and no DEL or FLUSHALL could come between", w, r)
                    bad = True
                    break
                absent.append(w)
            if bad or not present or not absent:
                continue
            # One snapshot: the last reset before the read came after every missing
            # field's HSET and before every present field's.
            a = max(absent, key=lambda w: w.start)
            p = min(present, key=lambda w: w.e)
            before, _ = resets.latest_end_before(min(r.e, p.e))
            if before <= a.start:
                self.add(self.late(r), key, f"field {a.arg[0]} missing (a DEL or FLUSHALL must have followed its "
                         f"HSET) while field {p.arg[0]} holds a value written before any could", a, p, r)


def verify(ops, placement=None, families=None, slack_s=1.0):
    """Checks a history (a list of Op) and, when given, placement observations
    ({key: (nodes holding it, entry's node or None)}). Returns (anomalies, reads)."""
    for i, o in enumerate(ops):
        o.id = i
    v = Verifier(ops, families, slack_s)
    anomalies = v.run()
    for key, (holders, entry) in sorted((placement or {}).items()):
        if len(holders) >= 2:
            anomalies.append(Anomaly(TWO, key, f"on {', '.join(holders)} (entry: {entry or 'none'})"))
        elif len(holders) == 1 and entry != holders[0]:
            anomalies.append(Anomaly(ORPHAN, key, f"on {holders[0]}, entry " +
                                     (f"names {entry}" if entry else "missing")))
    return anomalies, v.reads


def count_ops(ops):
    acked = sum(1 for o in ops if o.status == OK and o.kind in WRITES)
    indeterminate = sum(1 for o in ops if o.status != OK)
    errors = {}
    for o in ops:
        if o.status != OK:
            msg = f"{o.status}: {str(o.result)[:80]}"
            errors[msg] = errors.get(msg, 0) + 1
    flushes = sum(1 for o in ops if o.kind == "flushall" and o.status == OK)
    by_kind = {}  # acknowledged operations per command, final reads included
    for o in ops:
        if o.status == OK:
            by_kind[o.kind] = by_kind.get(o.kind, 0) + 1
    return {"operations": len(ops), "final_reads": sum(1 for o in ops if o.final), "acked_writes": acked,
            "indeterminate": indeterminate, "errors": errors, "flushall": flushes, "by_kind": by_kind}


class History:
    """Hand-made histories for the verifier's own tests; times in milliseconds.
    status: "ok", "error" or "unknown" (a timeout: may or may not have happened)."""

    def __init__(self):
        self.ops = []
        self.placement = {}

    def _op(self, kind, key, arg, s, e, result, status="ok", ttl=0, client=0, proxy=0, final=False):
        o = Op(client, proxy, kind, key, arg, ttl, int(s * 1e6), int(e * 1e6), status,
               result.encode() if isinstance(result, str) else result, final)
        self.ops.append(o)
        return o

    def set(self, key, value, s, e, **kw):
        return self._op("set", key, value, s, e, "OK", **kw)

    def setex(self, key, value, ttl, s, e, **kw):
        return self._op("setex", key, value, s, e, "OK", ttl=ttl, **kw)

    def get(self, key, result, s, e, **kw):
        return self._op("get", key, None, s, e, result, **kw)

    def delete(self, key, s, e, result=1, **kw):
        return self._op("del", key, None, s, e, result, **kw)

    def incr(self, key, result, s, e, **kw):
        return self._op("incr", key, None, s, e, result, **kw)

    def append(self, key, token, result, s, e, **kw):
        return self._op("append", key, token, s, e, result, **kw)

    def lpush(self, key, token, result, s, e, **kw):
        """LPUSH key token, answered `result` (the list's length)."""
        return self._op("lpush", key, token, s, e, result, **kw)

    def lrange(self, key, result, s, e, **kw):
        """LRANGE key 0 -1, answered `result`: the elements as Redis lists them, the
        newest (the last pushed) first."""
        return self._op("lrange", key, None, s, e, result, **kw)

    def hset(self, key, field, value, s, e, result=1, **kw):
        """HSET key field value, answered `result` (1: the field was new, 0: it was there)."""
        return self._op("hset", key, (field, value), s, e, result, **kw)

    def hgetall(self, key, result, s, e, **kw):
        """HGETALL key, answered `result` ({field: value}; {} for an absent key)."""
        return self._op("hgetall", key, None, s, e, result, **kw)

    def flushall(self, s, e, **kw):
        return self._op("flushall", None, None, s, e, "OK", **kw)

    def place(self, key, holders, entry):
        self.placement[key] = (list(holders), entry)

    def verify(self, slack_s=1.0):
        anomalies, reads = verify(self.ops, self.placement, slack_s=slack_s)
        counts = count_ops(self.ops)
        counts["reads"] = reads
        return Result(counts, anomalies, details=10)


# ---------------------------------------------------------------------------
# The run

class Target:
    """What the checker drives and inspects: proxies [(name, redis.Redis factory)],
    data nodes [(name, redis.Redis)], the main server (redis.Redis)."""

    def __init__(self, proxies, nodes, main):
        self.proxies, self.nodes, self.main = proxies, nodes, main

    @classmethod
    def from_cluster(cls, cluster, proxies=None):
        proxies = list(proxies if proxies is not None else cluster.proxies)
        ps = []
        for i, p in enumerate(proxies):
            name = os.path.basename(getattr(p, "dir", "")) or f"proxy{i}"
            ps.append((name, (lambda p=p: lambda **kw: p.client(**kw))()))
        nodes = [(n.name, n.client) for n in cluster.nodes if getattr(n, "up", lambda: True)()]
        return cls(ps, nodes, cluster.main.client)

    @classmethod
    def from_addresses(cls, proxies, nodes, main, password=None):
        def addr(a):
            h, _, p = a.rpartition(":")
            return (h or "127.0.0.1"), int(p)
        ps = []
        for a in proxies:
            h, p = addr(a)
            ps.append((f"{h}:{p}", (lambda h=h, p=p: lambda **kw: redis.Redis(host=h, port=p, password=password,
                                                                                **kw))()))
        ns = []
        for spec in nodes:
            name, _, a = spec.partition("=")
            h, p = addr(a)
            ns.append((name, redis.Redis(host=h, port=p, socket_timeout=10)))
        h, p = addr(main)
        return cls(ps, ns, redis.Redis(host=h, port=p, socket_timeout=10))


def make_keys(n, prefix):
    """n keys: half registers (a fifth of those in hash-tag groups of three), an eighth
    each counters, append logs, lists and hashes."""
    nreg = n - 4 * (n // 8)
    ntag = (nreg // 5) // 3 * 3
    keys, fams = [], []
    for i in range(nreg):
        keys.append(f"{{{prefix}g{i // 3}}}r{i}" if i < ntag else f"{prefix}r{i}")
        fams.append(REG)
    for letter, fam in (("c", CTR), ("l", LOG), ("q", LIST), ("h", HASH)):
        for i in range(n // 8):
            keys.append(f"{prefix}{letter}{i}")
            fams.append(fam)
    return keys, fams


class _Client(threading.Thread):
    def __init__(self, run, cid):
        super().__init__(daemon=True, name=f"checker-client-{cid}")
        self.run_ = run
        self.cid = cid
        self.rnd = random.Random(run.seed * 7919 + cid)
        self.history = []
        self.conns = {}
        self.flush_at = []  # op numbers (ops mode) or ns after the start (duration mode)
        self.failure = None

    def conn(self, p):
        c = self.conns.get(p)
        if c is None:
            client = self.run_.target.proxies[p][1](socket_timeout=self.run_.timeout,
                                                    socket_connect_timeout=self.run_.timeout)
            c = self.conns[p] = client.connection_pool.make_connection()  # connects at its first command
        return c

    def run(self):
        try:
            self._run()
        except BaseException as e:  # noqa: BLE001 - reported by the run
            self.failure = e
            self.run_.barrier.abort()

    def _run(self):
        run, rnd, cid = self.run_, self.rnd, self.cid
        keys, fams, nkeys = run.keys, run.fams, len(run.keys)
        nproxies = len(run.target.proxies)
        ttls = run.ttls
        p = cid % nproxies
        conn = self.conn(p)
        conn.connect()
        out = self.history.append
        mono = time.monotonic_ns
        rand = rnd.random
        n = 0
        seq = 0
        run.barrier.wait()
        # Set by run_checker before it released the barrier:
        by_time = run.duration_ns is not None
        deadline = run.t_begin + run.duration_ns if by_time else None
        flush_at = [run.t_begin + f for f in self.flush_at] if by_time else list(self.flush_at)
        while not run.stop.is_set():
            if by_time:
                if mono() >= deadline:
                    break
            elif n >= run.per_client[cid]:
                break
            n += 1
            if rand() < run.switch:
                p = rnd.randrange(nproxies)
                conn = self.conn(p)
            arg, ttl, key = None, 0, None
            if flush_at and (mono() >= flush_at[0] if by_time else n >= flush_at[0]):
                flush_at.pop(0)
                fp = rnd.randrange(nproxies)
                c = self.conn(fp)
                kind, cmd = "flushall", ("FLUSHALL",)
            else:
                c, fp = conn, p
                k = rnd.randrange(nkeys)
                key, fam = keys[k], fams[k]
                x = rand()
                if x < 0.40:
                    if fam == LIST:
                        kind, cmd = "lrange", ("LRANGE", key, 0, -1)
                    elif fam == HASH:
                        kind, cmd = "hgetall", ("HGETALL", key)
                    else:
                        kind, cmd = "get", ("GET", key)
                elif x < 0.55:
                    kind, cmd = "del", ("DEL", key)
                else:
                    seq += 1
                    if fam == REG:
                        arg = f"{cid}:{seq}"
                        if x < 0.88:
                            kind, cmd = "set", ("SET", key, arg)
                        else:
                            ttl = rnd.choice(ttls)
                            kind, cmd = "setex", ("SET", key, arg, "EX", ttl)
                    elif fam == CTR:
                        kind, cmd = "incr", ("INCR", key)
                    elif fam == LOG:
                        arg = f"{cid}.{seq};"
                        kind, cmd = "append", ("APPEND", key, arg)
                    elif fam == LIST:
                        arg = f"{cid}.{seq}"
                        kind, cmd = "lpush", ("LPUSH", key, arg)
                    else:
                        arg = (rnd.choice(HASH_FIELDS), f"{cid}:{seq}")
                        kind, cmd = "hset", ("HSET", key, *arg)
            t0 = mono()
            try:
                c.send_command(*cmd)
                res = c.read_response()
                status = OK
            except redis.ResponseError as e:
                res, status = str(e), ERR
            except (redis.RedisError, OSError) as e:
                res, status = f"{type(e).__name__}: {e}", UNKNOWN
                c.disconnect()
            t1 = mono()
            out(Op(cid, fp, kind, key, arg, ttl, t0, t1, status, res))
        for c in self.conns.values():
            c.disconnect()


class _Run:
    pass


def run_checker(cluster=None, proxies=None, clients=8, ops=100_000, keys=300, seed=1, flushes=2, duration=None,
                ttls=(1, 2), slack_s=1.0, switch=0.002, timeout=10.0, progress=None, details=3, target=None,
                save=None, during=None, max_failed=0.01):
    """Runs the workload through `proxies` (default: every proxy of `cluster`; or a
    Target), verifies the history and the placement, and returns a Result.
    ops: operations in all (split over the clients), or duration: seconds to run.
    flushes: FLUSHALLs in the run (at least 1 is required). progress: a callable
    given a line of text every few seconds (e.g. print). during: a callable run in a
    thread of its own while the clients run, given the run's keys and an Event set
    when they are done (it returns once its work has settled: moves, say).
    max_failed: the fraction of the clients' operations that may fail or time out
    before the run counts as having checked too little (a run that kills a node on
    purpose allows more: its keys' commands fail while it is down)."""
    if target is None:
        target = Target.from_cluster(cluster, proxies)
        for p in (proxies if proxies is not None else cluster.proxies):
            if hasattr(p, "wait_nodes_up"):
                p.wait_nodes_up()
    if flushes < 1:
        raise ValueError("a run needs at least one FLUSHALL")
    run = _Run()
    run.target, run.seed, run.timeout, run.switch, run.ttls = target, seed, timeout, switch, tuple(ttls)
    rnd = random.Random(seed)
    prefix = f"hc{rnd.getrandbits(32) ^ (os.getpid() << 8) ^ time.monotonic_ns() & 0xffffff:x}:"
    run.keys, run.fams = make_keys(keys, prefix)
    run.stop = threading.Event()
    run.barrier = threading.Barrier(clients + 1)
    run.duration_ns = None if duration is None else int(duration * 1e9)
    run.per_client = [ops // clients + (1 if i < ops % clients else 0) for i in range(clients)]
    workers = [_Client(run, i) for i in range(clients)]
    # FLUSHALLs spread over the run, each by a random client (through a random proxy).
    for j in range(flushes):
        c = rnd.randrange(clients)
        frac = (j + 0.5 + (rnd.random() - 0.5) * 0.5) / flushes
        if duration is not None:
            workers[c].flush_at.append(int(run.duration_ns * frac))
        else:
            workers[c].flush_at.append(max(1, int(run.per_client[c] * frac)))
    for w in workers:
        w.flush_at.sort()
        w.start()
    try:
        run.t_begin = time.monotonic_ns()  # the clients read it once the barrier opens
        run.barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        run.stop.set()
        raise RuntimeError("checker clients did not start: " + "; ".join(
            repr(w.failure) for w in workers if w.failure))
    t0 = run.t_begin
    helper = None
    if during is not None:
        done = threading.Event()
        helper = threading.Thread(target=during, args=(list(run.keys), done), daemon=True, name="checker-during")
        helper.start()
    last = time.monotonic()
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(timeout=0.2)
        if progress and time.monotonic() - last >= 5:
            last = time.monotonic()
            done = sum(len(w.history) for w in workers)
            errs = sum(1 for w in workers for o in w.history[-2000:] if o.status != OK)
            progress(f"  {(time.monotonic_ns() - t0) / 1e9:6.0f} s  {done:>10,} operations  "
                     f"({errs} failed among the latest)")
    if helper is not None:
        done.set()
        helper.join(timeout=120)
        if helper.is_alive():
            raise RuntimeError("the checker's `during` callable did not return")
    t1 = time.monotonic_ns()
    failures = [w.failure for w in workers if w.failure]
    if failures:
        raise RuntimeError(f"checker client failed: {failures[0]!r}") from failures[0]
    history = []
    for w in workers:
        history.extend(w.history)
        w.history = None
    history.sort(key=lambda o: o.start)

    # Final reads: every key through every proxy, then directly.
    finals = []
    for pi, (_, factory) in enumerate(target.proxies):
        c = factory(socket_timeout=timeout)
        for k, fam in zip(run.keys, run.fams):
            finals.append(_timed_read(lambda k=k, fam=fam: _read(c, fam, k), None, pi, k, READ_KIND[fam]))
    nodes = dict(target.nodes)
    for k, fam in zip(run.keys, run.fams):
        def direct(k=k, fam=fam):
            field = directory_key(k)
            node = entry_node(target.main.hget(bucket_of(field), field))
            return _read(nodes[node], fam, k) if node in nodes else _read(None, fam, k)
        finals.append(_timed_read(direct, None, -1, k, READ_KIND[fam]))
    history.extend(finals)
    placement = observe_placement(target, run.keys)
    t2 = time.monotonic_ns()
    anomalies, reads = verify(history, placement, dict(zip(run.keys, run.fams)), slack_s)
    t3 = time.monotonic_ns()
    counts = count_ops(history)
    counts.update(clients=clients, proxies=len(target.proxies), keys=len(run.keys), reads=reads,
                  seconds=(t1 - t0) / 1e9, verify_seconds=(t3 - t2) / 1e9, placement_keys=len(placement))
    problems = []
    if counts["flushall"] < 1:
        problems.append("no FLUSHALL was acknowledged")
    run_ops = len(history) - len(finals)
    unread = sum(1 for o in finals if o.status != OK)
    if unread:
        problems.append(f"{unread:,} of {len(finals):,} final reads failed: keys not readable after the run")
    if counts["indeterminate"] > max_failed * max(run_ops, 1):
        problems.append(f"{counts['indeterminate']:,} of {run_ops:,} operations failed (more than "
                        f"{max_failed * 100:g} %): the run checked little")
    result = Result(counts, anomalies, problems, t0=t0, proxies=[n for n, _ in target.proxies], details=details)
    if save:
        save_history(save, history, placement, result.proxies, t0, dict(zip(run.keys, run.fams)), clients)
    return result


def _read(client, fam, key):
    """The read of `key` its family uses, through `client` (None: an absent key's answer)."""
    kind = READ_KIND[fam]
    if client is None:
        return {"get": None, "lrange": [], "hgetall": {}}[kind]
    if kind == "lrange":
        return client.lrange(key, 0, -1)
    if kind == "hgetall":
        return client.hgetall(key)
    return client.get(key)


def _timed_read(fn, client, proxy, key, kind="get"):
    t0 = time.monotonic_ns()
    try:
        res, status = fn(), OK
    except redis.ResponseError as e:
        res, status = str(e), ERR
    except (redis.RedisError, OSError) as e:
        res, status = f"{type(e).__name__}: {e}", UNKNOWN
    return Op(client, proxy, kind, key, None, 0, t0, time.monotonic_ns(), status, res, final=True)


def observe_placement(target, keys):
    """{key: (data nodes holding it, the node its directory entry names or None)},
    read on the servers directly."""
    holders = {k: [] for k in keys}
    for name, node in target.nodes:
        try:
            p = node.pipeline(transaction=False)
            for k in keys:
                p.exists(k)
            for k, n in zip(keys, p.execute()):
                if n:
                    holders[k].append(name)
        except (redis.RedisError, OSError):
            continue  # a node that is down holds nothing we can see
    p = target.main.pipeline(transaction=False)
    for k in keys:
        field = directory_key(k)
        p.hget(bucket_of(field), field)
    entries = [entry_node(v) for v in p.execute()]
    return {k: (holders[k], e) for k, e in zip(keys, entries)}


def save_history(path, history, placement, proxies, t0, families, clients=None):
    with open(path, "w") as f:
        f.write(json.dumps({"proxies": proxies, "t0": t0, "families": families, "clients": clients,
                            "placement": {k: [h, e] for k, (h, e) in placement.items()}}) + "\n")
        for o in history:
            f.write(json.dumps(o.as_list()) + "\n")


def load_history(path):
    with open(path) as f:
        meta = json.loads(f.readline())
        ops = []
        for line in f:
            x = json.loads(line)
            if isinstance(x[9], str) and x[2] == "get" and x[8] == OK:
                x[9] = x[9].encode()
            if x[2] == "hset":
                x[4] = tuple(x[4])
            ops.append(Op(*x))
    return meta, ops


# ---------------------------------------------------------------------------
# Command line

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Drive headroom proxies with concurrent clients, record every operation, and verify the "
                    "history (lost writes, stale reads, values never written) and the placement (orphans, keys on "
                    "two nodes). Without --proxy it starts its own servers and proxies (tests/integration/cluster.py;"
                    " HEADROOM_BIN names the binary). Exit status 1 on any anomaly.",
        epilog="The module's docstring defines the legal histories: pydoc3 tests/integration/checker.py")
    ap.add_argument("--proxies", type=int, default=3, help="proxies to start (without --proxy; default 3)")
    ap.add_argument("--proxy", action="append", default=[], metavar="HOST:PORT", help="a running headroom (repeat)")
    ap.add_argument("--node", action="append", default=[], metavar="NAME=HOST:PORT",
                    help="a data node as the directory names it (repeat; with --proxy)")
    ap.add_argument("--main", metavar="HOST:PORT", help="the main server (with --proxy)")
    ap.add_argument("--password", help="headroom's requirepass (with --proxy)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--ops", type=int, default=100_000, help="operations in all (default 100000)")
    ap.add_argument("--minutes", type=float, help="run for this long instead of --ops")
    ap.add_argument("--keys", type=int, default=300)
    ap.add_argument("--flushes", type=int, help="FLUSHALLs in the run (default 2, or one a minute with --minutes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--slack", type=float, default=1.0, help="expiry slack in seconds (default 1)")
    ap.add_argument("--details", type=int, default=3, help="anomalies shown per kind (default 3)")
    ap.add_argument("--save", metavar="FILE", help="write the history (JSON lines) to FILE")
    ap.add_argument("--load", metavar="FILE", help="verify a saved history instead of running")
    args = ap.parse_args(argv)
    if args.load:
        meta, ops = load_history(args.load)
        placement = {k: (h, e) for k, (h, e) in meta["placement"].items()}
        anomalies, reads = verify(ops, placement, meta["families"], args.slack)
        counts = count_ops(ops)
        counts.update(proxies=len(meta["proxies"]), keys=len(meta["families"]), reads=reads,
                      clients=meta.get("clients", "?"),
                      placement_keys=len(placement))
        result = Result(counts, anomalies, t0=meta["t0"], proxies=meta["proxies"], details=args.details)
        print(result.report())
        return 0 if result.ok else 1
    duration = args.minutes * 60 if args.minutes else None
    flushes = args.flushes or (max(1, round(args.minutes)) if args.minutes else 2)
    kw = dict(clients=args.clients, ops=args.ops, keys=args.keys, seed=args.seed, flushes=flushes,
              duration=duration, slack_s=args.slack, details=args.details, save=args.save,
              progress=lambda s: print(s, file=sys.stderr, flush=True))
    if args.proxy:
        if not args.main or not args.node:
            ap.error("--proxy needs --main and --node")
        result = run_checker(target=Target.from_addresses(args.proxy, args.node, args.main, args.password), **kw)
    else:
        from cluster import Cluster
        cluster = Cluster()
        try:
            for i in range(1, args.proxies):
                cluster.add_proxy(f"headroom-{i + 1}")
            result = run_checker(cluster, cluster.proxies, **kw)
        finally:
            cluster.close()
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

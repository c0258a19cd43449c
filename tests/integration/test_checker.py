"""The correctness checker (checker.py): first its verifier on hand-made histories, so
it is shown to catch each kind of anomaly and to accept legal histories; then the
real run, three headroom instances under eight clients (select it with
`-k checker_run`). Times in the hand-made histories are milliseconds."""
import pytest

from checker import (LOST, NEVER, ORPHAN, STALE, TWO, History, directory_key, entry_node, load_history, run_checker,
                     save_history)
from cluster import Cluster


def kinds(h, **kw):
    """The anomaly kinds the verifier finds in `h`, one per anomaly, in order found."""
    return [a.kind for a in h.verify(**kw).anomalies]


def legal(h, **kw):
    r = h.verify(**kw)
    assert r.ok, r.report()
    return r


# Registers ---------------------------------------------------------------

def test_register_sequential_history_is_legal():
    h = History()
    h.get("r", None, 0, 1)
    h.set("r", "a", 2, 3)
    h.get("r", "a", 4, 5)
    h.set("r", "b", 6, 7)
    h.get("r", "b", 8, 9)
    h.delete("r", 10, 11)
    h.get("r", None, 12, 13)
    r = legal(h)
    assert r.counts["reads"] == 4 and r.counts["acked_writes"] == 3


def test_register_stale_read_after_a_newer_acknowledged_write():
    h = History()
    h.set("r", "a", 0, 1)
    h.set("r", "b", 2, 3)
    h.get("r", "a", 4, 5)
    assert kinds(h) == [STALE]


def test_register_stale_read_after_an_acknowledged_del_or_flushall():
    h = History()
    h.set("r", "a", 0, 1)
    h.delete("r", 2, 3)
    h.get("r", "a", 4, 5)
    assert kinds(h) == [STALE]
    h = History()
    h.set("r", "a", 0, 1)
    h.flushall(2, 3)
    h.get("r", "a", 4, 5)
    assert kinds(h) == [STALE]


def test_register_nil_read_after_an_acknowledged_write_is_stale_and_at_the_end_lost():
    h = History()
    h.set("r", "a", 0, 1)
    h.get("r", None, 2, 3)
    h.get("r", None, 20, 21, final=True)
    assert kinds(h) == [STALE, LOST]


def test_register_read_of_a_value_never_written():
    h = History()
    h.set("r", "a", 0, 1)
    h.get("r", "zz", 2, 3)       # nobody wrote it
    h.get("r", "b", 4, 5)        # written only after this read ended
    h.set("r", "b", 6, 7)
    h.set("other", "c", 0, 1)
    h.get("r", "c", 8, 9)        # written, but to another key
    assert kinds(h) == [NEVER, NEVER, NEVER]


def test_register_concurrent_history_is_legal():
    h = History()
    h.set("r", "a", 0, 10)
    h.set("r", "b", 1, 9)
    h.get("r", "b", 2, 3)        # b first ...
    h.get("r", "a", 4, 5)        # ... then a (a's write was still running)
    h.delete("r", 11, 30)
    h.get("r", "a", 12, 13)      # the DEL has not happened yet
    h.get("r", None, 14, 15)     # now it has
    h.set("r", "c", 40, 41)
    h.set("r", "d", 42, 50)
    h.get("r", "c", 43, 44)      # d's write may still be under way
    legal(h)


def test_register_failed_or_timed_out_operations_may_or_may_not_have_happened():
    h = History()
    h.set("r", "a", 0, 1)
    h.set("r", "b", 2, 3, status="unknown")   # timed out
    h.get("r", "a", 4, 5)                      # ... not yet applied
    h.get("r", "b", 6, 7)                      # ... applied now
    h.delete("r", 8, 9, status="error")       # failed: may have happened
    h.get("r", None, 10, 11)
    h.set("r", "c", 12, 13)
    h.delete("r", 14, 15, status="unknown")
    h.get("r", "c", 100, 101, final=True)      # it never happened
    legal(h)


def test_register_expiry_is_a_delete_within_its_window():
    # SET EX 2 acknowledged in [0, 1]: it expires somewhere in [2000 - slack, 2001 + slack].
    h = History()
    h.setex("r", "a", 2, 0, 1)
    h.get("r", "a", 1500, 1501)              # inside the window: either answer is right
    h.get("r", None, 1600, 1601)
    legal(h)
    h = History()
    h.setex("r", "a", 2, 0, 1)
    h.get("r", None, 10, 11)                 # long before the window: the value must be there
    assert kinds(h) == [STALE]
    h = History()
    h.setex("r", "a", 2, 0, 1)
    h.get("r", "a", 3100, 3101)              # after the window: it must have expired
    assert kinds(h) == [STALE]
    h = History()
    h.setex("r", "a", 2, 0, 1)
    h.get("r", "a", 3100, 3101)
    assert kinds(h, slack_s=1.5) == []       # a wider slack accepts it
    h = History()
    h.setex("r", "a", 2, 0, 1)
    h.set("r", "b", 100, 101)                # a plain SET clears the TTL ...
    h.get("r", "b", 5000, 5001)              # ... so b is still there
    h.setex("r", "c", 1, 6000, 6001)
    h.get("r", None, 6500, 6501)             # TTL 1 s, slack 1 s: may already be gone
    legal(h)


# Counters -------------------------------------------------------------------

def test_counter_sequential_and_concurrent_histories_are_legal():
    h = History()
    h.get("c", None, 0, 1)
    h.incr("c", 1, 2, 3)
    h.incr("c", 2, 4, 5)
    h.get("c", "2", 6, 7)
    h.incr("c", 4, 8, 20)        # concurrent INCRs, answered in either order
    h.incr("c", 3, 9, 19)
    h.get("c", "3", 10, 11)      # the 4th increment had not happened yet
    h.get("c", "4", 21, 22)
    h.delete("c", 23, 24)
    h.get("c", None, 25, 26)
    h.incr("c", 1, 27, 28)
    h.incr("c", 2, 29, 30, status="unknown")   # timed out
    h.get("c", "2", 31, 32)      # ... but happened
    legal(h)


def test_counter_read_below_an_acknowledged_incr_is_stale():
    h = History()
    h.incr("c", 1, 0, 1)
    h.incr("c", 2, 2, 3)
    h.get("c", "1", 4, 5)
    h.incr("c", 2, 6, 7)         # INCR answered no more than an INCR acknowledged before it
    h.get("c", None, 8, 9)
    assert kinds(h) == [STALE, STALE, STALE]


def test_counter_value_no_history_produces_is_never_written():
    h = History()
    h.incr("c", 1, 0, 1)
    h.get("c", "2", 2, 3)        # one INCR, counter 2
    h.delete("c", 4, 5)
    h.incr("c", 1, 6, 7)
    h.incr("c", 3, 8, 9)         # two INCRs since the DEL, answered 3
    assert kinds(h) == [NEVER, NEVER]


def test_counter_two_incrs_with_one_answer_lost_an_increment():
    h = History()
    h.incr("c", 1, 0, 10)
    h.incr("c", 1, 1, 9)
    assert kinds(h) == [LOST]
    h = History()
    h.incr("c", 1, 0, 10)
    h.delete("c", 2, 3)          # a DEL between the two explains it
    h.incr("c", 1, 1, 9)
    legal(h)


def test_counter_final_read_missing_increments_is_a_lost_write():
    h = History()
    h.incr("c", 1, 0, 1)
    h.incr("c", 2, 2, 3)
    h.get("c", "1", 50, 51, final=True)
    assert kinds(h) == [LOST]


# Append logs -----------------------------------------------------------------

def test_log_sequential_and_concurrent_histories_are_legal():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 4, 2, 3)
    h.get("l", "a;b;", 4, 5)
    h.append("l", "c;", 8, 6, 20)    # c and d concurrent: either order
    h.append("l", "d;", 6, 7, 19)
    h.get("l", "a;b;d;", 8, 9)
    h.get("l", "a;b;d;c;", 21, 22)
    h.delete("l", 23, 24)
    h.get("l", None, 25, 26)
    h.append("l", "e;", 2, 27, 28, status="unknown")
    h.get("l", "e;", 29, 30)
    legal(h)


def test_log_missing_an_acknowledged_token_is_stale_and_at_the_end_lost():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 4, 2, 3)
    h.get("l", "a;", 4, 5)
    h.get("l", "b;", 6, 7)
    h.get("l", "a;", 40, 41, final=True)
    assert kinds(h) == [STALE, STALE, LOST]


def test_log_tokens_never_appended_duplicated_or_out_of_order():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 4, 2, 3)
    h.get("l", "a;x;b;", 4, 5)       # x never appended
    h.get("l", "b;a;", 6, 7)         # a's APPEND ended before b's began
    h.get("l", "a;a;b;", 8, 9)       # a appended once
    h.get("l", "a;b", 10, 11)        # not a sequence of tokens
    h.get("l", "a;b;c;", 12, 13)     # c appended after this read ended
    h.append("l", "c;", 6, 14, 15)
    assert kinds(h) == [NEVER] * 5


def test_log_token_surviving_an_acknowledged_reset_is_stale():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.delete("l", 2, 3)
    h.append("l", "b;", 2, 4, 5)
    h.get("l", "a;b;", 6, 7)
    assert kinds(h) == [STALE]


def test_log_later_reads_extend_earlier_ones():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 4, 0, 30)
    h.append("l", "c;", 6, 0, 30)
    h.get("l", "a;b;", 2, 3)
    h.get("l", "a;c;", 4, 5)         # lost b, which an earlier read saw
    h.get("l", "a;c;b;", 6, 7)       # b, c in another order than the first read's
    assert kinds(h) == [STALE, NEVER]


def test_log_append_answers_a_length_history_explains():
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 2, 2, 3)     # a is missing from the log it appended to
    assert kinds(h) == [STALE]
    h = History()
    h.append("l", "a;", 2, 0, 1)
    h.append("l", "b;", 9, 2, 3)     # more bytes than were ever appended
    assert kinds(h) == [NEVER]


# Lists (LRANGE lists the newest first) ---------------------------------------

def test_list_sequential_and_concurrent_histories_are_legal():
    h = History()
    h.lrange("q", [], 0, 1)
    h.lpush("q", "a", 1, 2, 3)
    h.lpush("q", "b", 2, 4, 5)
    h.lrange("q", ["b", "a"], 6, 7)
    h.lpush("q", "c", 4, 8, 20)      # c and d concurrent: either order
    h.lpush("q", "d", 3, 9, 19)
    h.lrange("q", ["d", "b", "a"], 10, 11)       # c not pushed yet
    h.lrange("q", ["c", "d", "b", "a"], 21, 22)
    h.delete("q", 23, 24)
    h.lrange("q", [], 25, 26)
    h.lpush("q", "e", 1, 27, 28, status="unknown")   # timed out ...
    h.lrange("q", [], 29, 30)                         # ... not applied yet
    h.lrange("q", ["e"], 31, 32)                      # ... applied now
    h.lpush("q", "f", 2, 33, 34)
    h.lrange("q", ["f", "e"], 60, 61, final=True)
    r = legal(h)
    assert r.counts["reads"] == 13 and r.counts["acked_writes"] == 6
    assert r.counts["by_kind"] == {"lrange": 8, "lpush": 5, "del": 1}


def test_list_resets_that_may_have_happened_explain_missing_elements():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.delete("q", 2, 3, status="error")     # failed: may have happened
    h.lrange("q", [], 4, 5)
    h.lpush("q", "b", 1, 6, 7)
    h.delete("q", 8, 20)                    # concurrent with the reads
    h.lrange("q", ["b"], 9, 10)
    h.lrange("q", [], 11, 12)
    h.lpush("q", "c", 1, 30, 31)
    h.flushall(32, 40, status="unknown")
    h.lrange("q", ["c"], 41, 42)            # the FLUSHALL never happened ...
    h.lrange("q", [], 43, 44)               # ... or happened now
    legal(h)


def test_list_missing_an_acknowledged_push_is_stale_and_at_the_end_lost():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lpush("q", "b", 2, 2, 3)
    h.lrange("q", ["a"], 4, 5)               # b lost
    h.lrange("q", [], 6, 7)                  # both lost
    h.lrange("q", ["b"], 40, 41, final=True)
    assert kinds(h) == [STALE, STALE, LOST]


def test_list_elements_never_pushed_duplicated_or_reordered():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lpush("q", "b", 2, 2, 3)
    h.lpush("other", "x", 1, 0, 1)
    h.lrange("q", ["b", "x", "a"], 4, 5)     # x was pushed to another key
    h.lrange("q", ["a", "b"], 6, 7)          # reordered: a's LPUSH ended before b's began
    h.lrange("q", ["b", "a", "a"], 8, 9)     # a pushed once
    h.lrange("q", ["c", "b", "a"], 10, 11)   # c pushed after this read ended
    h.lrange("q", b"not a list", 12, 13)
    h.lpush("q", "c", 3, 14, 15)
    assert kinds(h) == [NEVER] * 5


def test_list_element_surviving_an_acknowledged_reset_is_stale():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.delete("q", 2, 3)
    h.lpush("q", "b", 1, 4, 5)
    h.lrange("q", ["b", "a"], 6, 7)
    h.lpush("q", "c", 2, 10, 11)
    h.flushall(12, 13)
    h.lrange("q", ["c"], 14, 15)
    assert kinds(h) == [STALE, STALE]


def test_list_later_reads_extend_earlier_ones():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lpush("q", "b", 2, 0, 30)
    h.lpush("q", "c", 3, 0, 30)
    h.lrange("q", ["b", "a"], 2, 3)
    h.lrange("q", ["c", "a"], 4, 5)          # lost b, which an earlier read saw
    h.lrange("q", ["b", "c", "a"], 6, 7)     # b, c in another order than the first read's
    assert kinds(h) == [STALE, NEVER]


def test_list_lpush_answers_a_length_history_explains():
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lpush("q", "b", 1, 2, 3)               # a is missing from the list it pushed to
    assert kinds(h) == [STALE]
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lpush("q", "b", 3, 2, 3)               # more elements than were ever pushed
    assert kinds(h) == [NEVER]
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.delete("q", 2, 10)
    h.lpush("q", "b", 1, 3, 4)               # the DEL may have come between
    legal(h)


# Hashes ----------------------------------------------------------------------

def test_hash_sequential_and_concurrent_histories_are_legal():
    h = History()
    h.hgetall("h", {}, 0, 1)
    h.hset("h", "f0", "a", 2, 3)
    h.hset("h", "f1", "b", 4, 5)
    h.hgetall("h", {"f0": "a", "f1": "b"}, 6, 7)
    h.hset("h", "f0", "c", 8, 20, result=0)     # concurrent HSETs of f0: either order
    h.hset("h", "f0", "d", 9, 19, result=0)
    h.hgetall("h", {"f0": "d", "f1": "b"}, 10, 11)
    h.hgetall("h", {"f0": "c", "f1": "b"}, 12, 13)
    h.delete("h", 21, 22)
    h.hgetall("h", {}, 23, 24)
    h.hset("h", "f2", "e", 25, 26, status="unknown")   # timed out ...
    h.hgetall("h", {}, 27, 28)                          # ... not applied yet
    h.hgetall("h", {"f2": "e"}, 29, 30)                 # ... applied now
    h.hset("h", "f2", "f", 31, 32, result=0)
    h.hset("h", "f3", "g", 33, 34, result=1)
    h.hgetall("h", {"f2": "f", "f3": "g"}, 60, 61, final=True)
    r = legal(h)
    assert r.counts["reads"] == 14 and r.counts["acked_writes"] == 7
    assert r.counts["by_kind"] == {"hgetall": 8, "hset": 6, "del": 1}


def test_hash_resets_that_may_have_happened_explain_missing_fields():
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.delete("h", 2, 20)                     # concurrent with what follows
    h.hset("h", "f1", "b", 3, 4)
    h.hgetall("h", {"f0": "a", "f1": "b"}, 5, 6)   # the DEL has not happened yet
    h.hgetall("h", {"f1": "b"}, 7, 8)        # it came between the two HSETs ...
    h.hset("h", "f2", "c", 30, 31)
    h.flushall(32, 33, status="error")
    h.hgetall("h", {}, 34, 35)               # the failed FLUSHALL happened
    h.hset("h", "f2", "d", 36, 37, result=1)   # so f2 was new again
    legal(h)
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.delete("h", 2, 10)
    h.hset("h", "f1", "b", 3, 4)
    h.hgetall("h", {}, 5, 6)                 # the DEL came after both
    legal(h)


def test_hash_missing_an_acknowledged_field_is_stale_and_at_the_end_lost():
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.hset("h", "f1", "b", 2, 3)
    h.hgetall("h", {"f0": "a"}, 4, 5)        # f1 lost
    h.hgetall("h", {}, 6, 7)
    h.hgetall("h", {"f1": "b"}, 40, 41, final=True)
    assert kinds(h) == [STALE, STALE, LOST]


def test_hash_older_field_value_is_stale():
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.hset("h", "f1", "x", 0, 1)
    h.hset("h", "f0", "b", 2, 3, result=0)
    h.hgetall("h", {"f0": "a", "f1": "x"}, 4, 5)    # a newer f0 was acknowledged
    h.delete("h", 6, 7)
    h.hgetall("h", {"f0": "b"}, 8, 9)               # f0 deleted
    h.hset("h", "f2", "c", 10, 11)
    h.flushall(12, 13)
    h.hgetall("h", {"f2": "c"}, 14, 15)             # f2 flushed
    assert kinds(h) == [STALE, STALE, STALE]


def test_hash_field_values_never_written():
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.hset("other", "f0", "z", 0, 1)
    h.hgetall("h", {"f0": "zz"}, 2, 3)       # nobody wrote it
    h.hgetall("h", {"f1": "a"}, 4, 5)        # a was written to f0, not f1
    h.hgetall("h", {"f0": "z"}, 6, 7)        # written to another key
    h.hgetall("h", {"f0": "a", "f3": "b"}, 8, 9)    # b written only after the read ended
    h.hgetall("h", [b"f0"], 10, 11)          # not a hash
    h.hset("h", "f3", "b", 12, 13)
    assert kinds(h) == [NEVER] * 5


def test_hash_read_mixing_fields_from_before_and_after_a_reset_is_stale():
    # f1's HSET ended before the read, so a DEL (the only possible one) came after it;
    # but then f0's value, written before that DEL could begin, would be gone too.
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.delete("h", 2, 10)
    h.hset("h", "f1", "b", 3, 4)
    h.hgetall("h", {"f0": "a"}, 5, 6)
    assert kinds(h) == [STALE]
    h = History()
    h.hset("h", "f1", "b", 0, 1)
    h.delete("h", 2, 10)
    h.hset("h", "f0", "a", 3, 4)
    h.hgetall("h", {"f0": "a"}, 5, 6)        # the DEL came between: legal
    legal(h)


def test_hash_hset_answers_a_presence_history_explains():
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.hset("h", "f0", "b", 2, 3, result=1)   # f0 was there
    assert kinds(h) == [STALE]
    h = History()
    h.hset("h", "f0", "a", 0, 1)
    h.hset("h", "f1", "b", 2, 3, result=0)   # f1 was never written
    h.delete("h", 4, 5)
    h.hset("h", "f0", "c", 6, 7, result=0)   # f0 was deleted
    assert kinds(h) == [NEVER, NEVER]
    h = History()
    h.hset("h", "f0", "a", 0, 10, status="unknown")
    h.hset("h", "f0", "b", 2, 3, result=0)   # the timed-out HSET came first
    h.delete("h", 4, 20)
    h.hset("h", "f0", "c", 5, 6, result=1)   # the DEL came first
    h.hset("h", "f0", "d", 7, 8, result=0)
    legal(h)


def test_saved_histories_of_every_family_load_and_verify_the_same(tmp_path):
    h = History()
    h.lpush("q", "a", 1, 0, 1)
    h.lrange("q", [b"a"], 2, 3)
    h.lrange("q", [], 4, 5)                  # stale
    h.hset("h", "f0", "a", 0, 1)
    h.hgetall("h", {b"f0": b"a"}, 2, 3)
    h.hgetall("h", [b"f0", b"zz"], 4, 5)     # never written (a raw RESP2 reply)
    h.set("r", "v", 0, 1)
    h.get("r", "v", 2, 3)
    path = str(tmp_path / "history.jsonl")
    save_history(path, h.ops, {}, ["p0"], 0, None)
    _, ops = load_history(path)
    again = History()
    again.ops = ops
    assert kinds(h) == kinds(again) == [STALE, NEVER]
    text = again.verify().report()
    assert "LPUSH q a" in text and "LRANGE q 0 -1" in text and "HGETALL h" in text


# Placement -------------------------------------------------------------------

def test_placement_anomalies():
    h = History()
    h.place("k1", ["node1"], "node1")
    h.place("k2", [], "node3")               # an entry without its key: hygiene, not here
    h.place("k3", [], None)
    h.place("k4", ["node2"], None)           # orphan: no entry
    h.place("k5", ["node2"], "node1")        # orphan: the entry names another node
    h.place("k6", ["node1", "node4"], "node1")
    assert sorted(kinds(h)) == sorted([ORPHAN, ORPHAN, TWO])


def test_directory_fields_and_entry_values():
    assert directory_key("plain") == "plain"
    assert directory_key("{user:1}:cart") == "{user:1}"
    assert directory_key("a{t}b{u}") == "{t}"
    assert directory_key("{}x") == "{}x"      # an empty tag is no tag
    assert directory_key("{open") == "{open"
    assert entry_node(b"node2") == "node2"
    assert entry_node(b"node2 17") == "node2"
    assert entry_node("node3 9 R") == "node3"
    assert entry_node(None) is None


def test_report_names_the_operations_involved():
    h = History()
    h.set("r", "a", 0, 1, client=3, proxy=1)
    h.set("r", "b", 2, 3)
    h.get("r", "a", 4, 5, client=5, proxy=2)
    r = h.verify()
    assert not r.ok
    text = r.report()
    assert "stale reads: 1" in text and "SET r a" in text and "GET r" in text and "client 5" in text
    assert "[4.000 .. 5.000 ms]" in text


# The real run -----------------------------------------------------------------

@pytest.fixture(scope="module")
def three_proxies():
    c = Cluster()
    try:
        c.add_proxy("headroom-2")
        c.add_proxy("headroom-3")
    except BaseException:
        c.close()
        raise
    yield c
    c.close()


def test_checker_run(three_proxies):
    """Three proxies, eight clients, 100,000 operations, two FLUSHALLs: no anomaly."""
    c = three_proxies
    result = run_checker(c, c.proxies, clients=8, ops=100_000, keys=300, seed=1, flushes=2)
    print(result.report())
    counts = result.counts
    assert counts["operations"] - counts["final_reads"] >= 100_000
    assert counts["flushall"] >= 1
    assert result.ok, result.report()

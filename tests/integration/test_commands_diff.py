#!/usr/bin/env python3
"""test_commands_diff.py -- issue 13's commands in kvs-server against redis-server 7.

Usage: python3 test_commands_diff.py PATH_TO_kvs-server [--seed N] [--commands N]
                                     [--engine kvs|lmdb]... [--only fixed|random]

The string data model (expiry, the INCR family, APPEND, SETRANGE, bits, GETSET/GETDEL/GETEX,
MSETNX, RENAME/COPY, MULTI/EXEC/WATCH, SCAN/KEYS) as test_differential.py checks the basic
commands: a redis-server 7 on a unix socket beside kvs-server, the same requests to both, and
every reply compared byte for byte -- with these exceptions, which depend on the clock or on how
a store lays out its keys: TTL/PTTL/EXPIRETIME/PEXPIRETIME compare as -2, -1 or "a time", and
within EXPIRE_SLACK of each other; SCAN and KEYS compare as sets, SCAN after a full iteration;
RANDOMKEY must name a key that exists; TIME and INFO are not compared.

The fixed part: hand-written edge cases (overflow, non-integers, zero/negative/past expiry
times, SET ... GET on a missing key, NX/XX/GT/LT combinations, GETRANGE with negative indices,
SETRANGE padding and its size limit, BITCOUNT ranges, RENAME of a missing key, COPY onto an
existing key, MULTI/EXEC/DISCARD/EXECABORT, WATCH touched by another connection). The random
part: a generator seeded with --seed (random by default, always printed) builds pipelines of
the new commands, valid and not, over a few keys; after each pipeline every key's value and
time class, DBSIZE and the SCAN set must match. Exit status 0 only if every check passed.
"""
import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvstest import Server, show  # noqa: E402
from test_differential import REDIS_SERVER, Conn, RedisServer, multibulk  # noqa: E402

# every key the random part writes: compare_state's MGET reads each, which makes Redis drop the
# ones whose time has passed (as kvs already has) before DBSIZE counts them
KEYS = [b"k0", b"k1", b"k2", b"n", b"f", b"b", b"x"]
EXPIRE_SLACK = 2000  # ms two servers' expiry times may differ by (queue time vs. now)
TIMED = {b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"}
UNORDERED = {b"KEYS"}
NOT_COMPARED = {b"TIME", b"INFO", b"RANDOMKEY", b"SCAN", b"CLIENT"}


def parse_int(raw):
    return int(raw[1:-2]) if raw.startswith(b":") else None


def same_reply(args, kraw, kval, rraw, rval):
    name = args[0].upper()
    if name in NOT_COMPARED:
        return True
    if name in TIMED:
        k, r = parse_int(kraw), parse_int(rraw)
        if k is None or r is None or k < 0 or r < 0:
            return kraw == rraw
        scale = 1 if name in (b"PTTL", b"PEXPIRETIME") else 1000
        return abs(k - r) * scale <= EXPIRE_SLACK + scale
    if name in UNORDERED and isinstance(kval, list) and isinstance(rval, list):
        return sorted(kval) == sorted(rval)
    return kraw == rraw


class Failures:
    def __init__(self):
        self.items = []

    def add(self, what):
        self.items.append(what)
        if len(self.items) <= 20:
            print("FAIL " + what, flush=True)


def run_cmds(kc, rc, cmds, failures, where):
    """Send cmds (lists of bytes) to both as one pipeline; compare the replies."""
    wire = b"".join(multibulk(c) for c in cmds)
    kr, kerr = kc.exchange([wire], len(cmds))
    rr, rerr = rc.exchange([wire], len(cmds))
    if kerr or rerr:
        failures.add("%s: no full answer: kvs %s, redis %s" % (where, kerr, rerr))
        return False
    ok = True
    for c, (kraw, kval), (rraw, rval) in zip(cmds, kr, rr):
        if not same_reply(c, kraw, kval, rraw, rval):
            failures.add("%s: %s\n  kvs:   %s\n  redis: %s"
                         % (where, show(b" ".join(c), 120), show(kraw, 200), show(rraw, 200)))
            ok = False
    return ok


def scan_set(conn):
    keys, cursor = set(), b"0"
    for _ in range(10000):
        _, (cursor, batch) = conn.call(b"SCAN", cursor, b"COUNT", b"3")
        keys.update(batch)
        if cursor == b"0":
            return keys
    raise AssertionError("SCAN did not end")


def compare_state(kc, rc, failures, where):
    for conn_cmds in ([b"MGET"] + KEYS, [b"DBSIZE"]):
        k, r = kc.call(*conn_cmds), rc.call(*conn_cmds)
        if k[0] != r[0]:
            failures.add("%s: %s: kvs %s, redis %s" % (where, conn_cmds[0], show(k[0], 200),
                                                        show(r[0], 200)))
    for key in KEYS:
        k, r = kc.call(b"PTTL", key), rc.call(b"PTTL", key)
        if not same_reply([b"PTTL"], k[0], k[1], r[0], r[1]):
            failures.add("%s: PTTL %s: kvs %s, redis %s" % (where, key, k[0], r[0]))
    ks, rs = scan_set(kc), scan_set(rc)
    if ks != rs:
        failures.add("%s: SCAN sets differ: kvs %s, redis %s" % (where, sorted(ks), sorted(rs)))


def B(*words):
    return [w if isinstance(w, bytes) else str(w).encode() for w in words]


FIXED = [
    ("INCR family", [B("SET", "n", "10"), B("INCR", "n"), B("DECR", "n"), B("INCRBY", "n", -5),
                     B("DECRBY", "n", "3"), B("INCR", "missing"), B("SET", "n", "abc"),
                     B("INCR", "n"), B("SET", "n", " 1"), B("INCR", "n"), B("SET", "n", "01"),
                     B("INCR", "n"), B("SET", "n", "9223372036854775807"), B("INCR", "n"),
                     B("SET", "n", "-9223372036854775808"), B("DECR", "n"),
                     B("DECRBY", "n", "-9223372036854775808"), B("INCRBY", "n", "1.5"),
                     B("INCRBY", "n", "99999999999999999999"), B("GET", "n"),
                     B("SET", "n", "-0"), B("INCR", "n"), B("DEL", "missing")]),
    ("INCRBYFLOAT", [B("SET", "f", "10.50"), B("INCRBYFLOAT", "f", "0.1"),
                     B("INCRBYFLOAT", "f", "-5.0e3"), B("INCRBYFLOAT", "f", "abc"),
                     B("INCRBYFLOAT", "nf", "3"), B("SET", "f", "1e400"),
                     B("INCRBYFLOAT", "f", "1"), B("SET", "f", "x"), B("INCRBYFLOAT", "f", "1"),
                     B("SET", "f", "5"), B("INCRBYFLOAT", "f", "inf"), B("GET", "f"),
                     B("INCRBYFLOAT", "f", " 1"), B("DEL", "nf")]),
    ("SET options", [B("SET", "k0", "v", "NX"), B("SET", "k0", "w", "NX"),
                     B("SET", "k0", "w", "XX"), B("SET", "k1", "w", "XX"),
                     B("SET", "k1", "v", "GET"), B("SET", "k1", "w", "GET"),
                     B("SET", "k1", "x", "NX", "GET"), B("SET", "k2", "x", "XX", "GET"),
                     B("SET", "k0", "v", "NX", "XX"), B("SET", "k0", "v", "EX", "0"),
                     B("SET", "k0", "v", "EX", "-5"), B("SET", "k0", "v", "EX", "abc"),
                     B("SET", "k0", "v", "EX", "10", "PX", "100"), B("SET", "k0", "v", "EX"),
                     B("SET", "k0", "v", "KEEPTTL", "EX", "5"), B("SET", "k0", "v", "EX", 100),
                     B("TTL", "k0"), B("SET", "k0", "w", "KEEPTTL"), B("TTL", "k0"),
                     B("SET", "k0", "w"), B("TTL", "k0"), B("SET", "k0", "v", "EXAT", 1),
                     B("EXISTS", "k0"), B("SET", "k0", "v", "PXAT", 4102444800000),
                     B("PEXPIRETIME", "k0"), B("EXPIRETIME", "k0"),
                     B("SET", "k0", "v", "EX", "9223372036854775807"),
                     B("SET", "k0", "v", "PX", "9223372036854775807"),
                     B("SET", "k0", "v", "BOGUS"), B("SETNX", "k0", "x"), B("SETNX", "k2", "x"),
                     B("SETEX", "k1", "0", "x"), B("SETEX", "k1", "100", "x"), B("TTL", "k1"),
                     B("PSETEX", "k1", "-1", "x"), B("PSETEX", "k1", "100000", "y"),
                     B("PTTL", "k1"), B("GETSET", "k1", "z"), B("TTL", "k1"),
                     B("GETSET", "missing", "z"), B("GETDEL", "missing"), B("DEL", "missing")]),
    ("expiry", [B("SET", "k0", "v"), B("EXPIRE", "k0", 100), B("TTL", "k0"),
                B("EXPIRE", "k0", 50, "NX"), B("EXPIRE", "k0", 50, "XX"), B("TTL", "k0"),
                B("EXPIRE", "k0", 10, "GT"), B("EXPIRE", "k0", 1000, "GT"), B("TTL", "k0"),
                B("EXPIRE", "k0", 2000, "LT"), B("EXPIRE", "k0", 20, "LT"), B("TTL", "k0"),
                B("EXPIRE", "k0", 20, "NX", "XX"), B("EXPIRE", "k0", 20, "GT", "LT"),
                B("EXPIRE", "k0", 20, "FOO"), B("EXPIRE", "k0", "x"), B("PERSIST", "k0"),
                B("PERSIST", "k0"), B("TTL", "k0"), B("EXPIRE", "k0", 10, "GT"),
                B("EXPIRE", "k0", 10, "LT"), B("TTL", "k0"), B("EXPIRE", "k0", 10, "XX"),
                B("EXPIRE", "missing", 10), B("TTL", "missing"), B("PTTL", "missing"),
                B("EXPIRETIME", "missing"), B("PERSIST", "missing"),
                B("EXPIRE", "k0", -1), B("EXISTS", "k0"), B("SET", "k0", "v"),
                B("PEXPIRE", "k0", 0), B("GET", "k0"), B("SET", "k0", "v"),
                B("EXPIREAT", "k0", 1), B("GET", "k0"), B("SET", "k0", "v"),
                B("PEXPIREAT", "k0", 4102444800000), B("PEXPIRETIME", "k0"),
                B("EXPIRE", "k0", "9223372036854775807"),
                B("PEXPIRE", "k0", "9223372036854775807"),
                B("EXPIREAT", "k0", "-9223372036854775808"),
                B("GETEX", "k0"), B("GETEX", "k0", "PERSIST"), B("TTL", "k0"),
                B("GETEX", "k0", "EX", 100), B("TTL", "k0"), B("GETEX", "k0", "EX", 0),
                B("GETEX", "k0", "PERSIST", "EX", 3), B("GETEX", "missing", "EX", 10),
                B("GETEX", "k0", "PXAT", 1), B("EXISTS", "k0"), B("EXPIRE", "k0"),
                B("GETEX", "missing", "EX", 0), B("SET", "k0", "v"), B("GETEX", "k0", "EX", 0),
                B("SET", "k0", b"1\x00"), B("INCRBYFLOAT", "k0", 1), B("INCR", "k0")]),
    ("ranges", [B("SET", "k0", "Hello World"), B("GETRANGE", "k0", 0, 4),
                B("GETRANGE", "k0", -5, -1), B("GETRANGE", "k0", -1, -5),
                B("GETRANGE", "k0", 5, 2), B("GETRANGE", "k0", -100, 100),
                B("GETRANGE", "k0", "a", 1), B("GETRANGE", "missing", 0, -1),
                B("SETRANGE", "k1", 5, "abc"), B("GET", "k1"), B("SETRANGE", "k0", 6, "Redis"),
                B("GET", "k0"), B("SETRANGE", "k0", -1, "x"), B("SETRANGE", "k0", 1, ""),
                B("SETRANGE", "missing", 3, ""), B("EXISTS", "missing"),
                B("SETRANGE", "k0", 536870911, "xy"), B("SETRANGE", "k0", "x", "y"),
                B("APPEND", "k2", "ab"), B("APPEND", "k2", "cd"), B("STRLEN", "k2"),
                B("STRLEN", "missing"), B("SUBSTR", "k2", 1, 2)]),
    ("bits", [B("SETBIT", "b", 7, 1), B("SETBIT", "b", 7, 0), B("SETBIT", "b", 100, 1),
              B("GETBIT", "b", 100), B("GETBIT", "b", 1000), B("GETBIT", "missing", 3),
              B("SETBIT", "b", -1, 1), B("SETBIT", "b", 1, 2), B("SETBIT", "b", 4294967296, 1),
              B("GET", "b"), B("SET", "b", "foobar"), B("BITCOUNT", "b"),
              B("BITCOUNT", "b", 0, 0), B("BITCOUNT", "b", 1, 1), B("BITCOUNT", "b", -2, -1),
              B("BITCOUNT", "b", 5, 30, "BIT"), B("BITCOUNT", "b", 0, -1, "BYTE"),
              B("BITCOUNT", "b", 2, 1), B("BITCOUNT", "b", 0), B("BITCOUNT", "b", 0, 1, "X"),
              B("BITCOUNT", "b", "a", 1), B("BITCOUNT", "missing"),
              B("BITCOUNT", "b", -100, -50), B("BITCOUNT", "b", -2, -100),
              B("SET", "b", "x"), B("BITCOUNT", "b", -2, -100), B("BITCOUNT", "b", -1, -3)]),
    ("keys", [B("SET", "k0", "a"), B("SET", "k1", "b"), B("RENAME", "missing", "k2"),
              B("RENAMENX", "missing", "k2"), B("RENAME", "k0", "k2"), B("GET", "k2"),
              B("EXISTS", "k0"), B("RENAMENX", "k2", "k1"), B("RENAMENX", "k2", "k0"),
              B("RENAME", "k0", "k0"), B("RENAMENX", "k0", "k0"), B("COPY", "k0", "k1"),
              B("COPY", "k0", "k1", "REPLACE"), B("GET", "k1"), B("COPY", "k0", "k0"),
              B("COPY", "missing", "k1"), B("COPY", "k0", "k2", "BOGUS"), B("COPY", "k0", "k2"), B("EXPIRE", "k0", 100),
              B("COPY", "k0", "n", "REPLACE"), B("TTL", "n"), B("RENAME", "k0", "f"),
              B("TTL", "f"), B("TYPE", "f"), B("TYPE", "missing"), B("TOUCH", "f", "n", "x"),
              B("UNLINK", "f", "n", "x"), B("MSETNX", "k0", "1", "k1", "2"),
              B("MSETNX", "k0", "1", "n", "2"), B("MSETNX", "n", "1", "f", "2"),
              B("MGET", "n", "f"), B("MSETNX", "x"), B("MSETNX", "a", "1", "b"),
              B("KEYS", "*"), B("KEYS", "k?"), B("KEYS", "[kn]*"), B("DBSIZE"),
              B("FLUSHDB"), B("DBSIZE"), B("SET", "k0", "x"), B("FLUSHALL", "SYNC"),
              B("FLUSHALL", "BAD"), B("RANDOMKEY"), B("SELECT", "0")]),
    ("multi", [B("MULTI"), B("SET", "k0", "1"), B("INCR", "k0"), B("GET", "k0"),
               B("INCR", "k1"), B("SET", "k1", "x"), B("INCR", "k1"), B("MGET", "k0", "k1"),
               B("EXEC"), B("MULTI"), B("MULTI"), B("SET", "k0", "2"), B("DISCARD"),
               B("GET", "k0"), B("EXEC"), B("DISCARD"), B("MULTI"), B("SET", "k0", "3"),
               B("NOSUCH"), B("EXEC"), B("GET", "k0"), B("MULTI"), B("SET", "k0"), B("EXEC"),
               B("MULTI"), B("SET", "k0", "v", "BOGUS"), B("GET", "k0"), B("EXEC"),
               B("MULTI"), B("WATCH", "k0"), B("EXEC"), B("MULTI"), B("EXEC"),
               B("WATCH", "k0"), B("MULTI"), B("PING"), B("EXISTS", "k0", "k1"),
               B("DBSIZE"), B("EXEC"), B("UNWATCH"), B("MULTI"), B("RENAME", "k0", "k2"),
               B("COPY", "k2", "k0"), B("MSETNX", "k0", "a", "n", "b"), B("TTL", "k2"),
               B("EXEC")]),
]


def watch_case(kc, rc, kc2, rc2, failures):
    """WATCH, then another connection writes the key: EXEC answers nil and applies nothing;
    untouched, it applies."""
    for setup, touch, where in (
            ([B("SET", "k0", "v")], [B("SET", "k0", "other")], "WATCH touched"),
            ([B("SET", "k0", "v")], [B("GET", "k0")], "WATCH untouched"),
            ([B("SET", "k0", "v")], [B("DEL", "k0")], "WATCH deleted"),
            ([B("SET", "k0", "v")], [B("EXPIRE", "k0", 100)], "WATCH expiry"),
            ([B("SET", "k0", "v")], [B("SET", "k9", "x"), B("DEL", "k9")], "WATCH other key"),
            # the key's version is the same before and after: only the write itself tells
            ([B("DEL", "k0")], [B("SET", "k0", "x"), B("DEL", "k0")], "WATCH created, deleted"),
            ([B("DEL", "k0")], [B("FLUSHDB")], "WATCH absent, flushed"),
            ([B("SET", "k0", "v")], [B("FLUSHALL")], "WATCH flushed")):
        run_cmds(kc, rc, setup + [B("WATCH", "k0")], failures, where)
        run_cmds(kc2, rc2, touch, failures, where + " (other)")
        run_cmds(kc, rc, [B("MULTI"), B("SET", "k0", "mine"), B("INCR", "n"), B("EXEC"),
                          B("MGET", "k0", "n")], failures, where)
    # the watching connection's own write between WATCH and MULTI refuses EXEC as well
    run_cmds(kc, rc, [B("DEL", "k0"), B("WATCH", "k0"), B("SET", "k0", "1"), B("DEL", "k0"),
                      B("MULTI"), B("SET", "k0", "mine"), B("EXEC"), B("EXISTS", "k0")],
             failures, "WATCH own write")
    run_cmds(kc, rc, [B("WATCH", "missing"), B("MULTI"), B("SET", "missing", "1"), B("EXEC"),
                      B("GET", "missing"), B("DEL", "missing")], failures, "WATCH absent")


def run_fixed(kc, rc, kc2, rc2, failures):
    n0 = len(failures.items)
    for where, cmds in FIXED:
        run_cmds(kc, rc, [B("FLUSHALL")], failures, where)
        run_cmds(kc, rc, cmds, failures, where)
        compare_state(kc, rc, failures, where)
    run_cmds(kc, rc, [B("FLUSHALL")], failures, "watch")
    watch_case(kc, rc, kc2, rc2, failures)
    # kvs has one database (docs/commands.md): other numbers are refused, not sent to Redis
    for cmd in (B("SELECT", 1), B("COPY", "k0", "k2", "DB", 1)):
        got = kc.call(*cmd)[0]
        if got != b"-ERR DB index is out of range\r\n":
            failures.add("%s: %s" % (b" ".join(cmd), got))
    # RANDOMKEY names a key that exists; TIME is two numbers near ours
    kc.call(b"FLUSHALL")
    kc.call(b"SET", b"k0", b"1")
    rk = kc.call(b"RANDOMKEY")[1]
    if rk != b"k0":
        failures.add("RANDOMKEY with one key: %s" % rk)
    t = kc.call(b"TIME")[1]
    if not (isinstance(t, list) and abs(int(t[0]) - time.time()) < 5):
        failures.add("TIME: %s" % t)
    return len(failures.items) - n0


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def key(self):
        return self.r.choice(KEYS)

    def num(self):
        r = self.r
        return r.choice([b"0", b"1", b"-1", b"42", b"9223372036854775807",
                         b"-9223372036854775808", b"01", b"-0", b"1.5", b"abc", b"",
                         str(r.randrange(-1000, 1000)).encode(), b" 3", b"3e2"])

    def value(self):
        r = self.r
        return r.choice([self.num(), b"hello", b"", bytes(r.randrange(256) for _ in range(8)),
                         b"10.5", b"-3.25e1", str(r.randrange(-99, 99)).encode()])

    def ttl(self):
        # at least 100 s even as ms: a key that expires between the two servers' replies
        # would differ by timing alone
        return self.r.choice([b"0", b"-1", b"100000", b"abc", b"9223372036854775807",
                              str(self.r.randrange(100000, 10000000)).encode()])

    def at(self):
        now = int(time.time())
        return self.r.choice([b"1", str(now + self.r.randrange(100, 10000)).encode(),
                              str(now - 100).encode(), b"-5"])

    def idx(self):
        return str(self.r.choice([0, 1, 2, -1, -2, 5, -100, 100, 3])).encode()

    def one(self, in_multi=False):
        r, k = self.r, self.key
        c = r.randrange(30)
        while in_multi and c in (14, 23):  # inside EXEC's array: compared exactly
            c = r.randrange(30)
        if c == 0:
            opts = r.sample([[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], [b"EX", self.ttl()],
                             [b"PX", self.ttl()], [b"EXAT", self.at()], [b"BAD"]],
                            r.randrange(3))
            return [b"SET", k(), self.value()] + [w for o in opts for w in o]
        if c == 1:
            return [b"SETNX", k(), self.value()]
        if c == 2:
            return [r.choice([b"SETEX", b"PSETEX"]), k(), self.ttl(), self.value()]
        if c == 3:
            return [r.choice([b"INCR", b"DECR"]), k()]
        if c == 4:
            return [r.choice([b"INCRBY", b"DECRBY"]), k(), self.num()]
        if c == 5:
            return [b"INCRBYFLOAT", k(), self.value()]
        if c == 6:
            return [b"APPEND", k(), self.value()]
        if c == 7:
            return [b"GETRANGE", k(), self.idx(), self.idx()]
        if c == 8:
            return [b"SETRANGE", k(), r.choice([b"0", b"3", b"-1", b"x"]), self.value()]
        if c == 9:
            return [b"SETBIT", k(), r.choice([b"0", b"9", b"-1", b"x"]), r.choice([b"0", b"1",
                                                                               b"2"])]
        if c == 10:
            return [b"GETBIT", k(), r.choice([b"0", b"9", b"70", b"-1"])]
        if c == 11:
            return [b"BITCOUNT", k()] + r.choice([[], [self.idx(), self.idx()],
                                                  [self.idx(), self.idx(), b"BIT"]])
        if c == 12:
            flags = r.sample([b"NX", b"XX", b"GT", b"LT"], r.randrange(3))
            cmd = r.choice([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
            when = self.at() if cmd.endswith(b"AT") else self.ttl()
            return [cmd, k(), when] + flags
        if c == 13:
            return [b"PERSIST", k()]
        if c == 14:
            return [r.choice(sorted(TIMED)), k()]
        if c == 15:
            return [r.choice([b"GETSET", b"GETDEL"]), k()] + ([self.value()] if r.random() < .5
                                                             else [])
        if c == 16:
            opts = r.choice([[], [b"PERSIST"], [b"EX", self.ttl()], [b"PXAT", self.at()]])
            return [b"GETEX", k()] + opts
        if c == 17:
            return [b"MSETNX"] + [w for _ in range(r.randrange(1, 3)) for w in (k(), self.value())]
        if c == 18:
            return [r.choice([b"RENAME", b"RENAMENX"]), k(), k()]
        if c == 19:
            return [b"COPY", k(), k()] + ([b"REPLACE"] if r.random() < 0.5 else [])
        if c == 20:
            return [r.choice([b"DEL", b"UNLINK", b"TOUCH", b"EXISTS"]), k(), k()]
        if c == 21:
            return [b"TYPE", k()]
        if c == 22:
            return [b"STRLEN", k()]
        if c == 23:
            return [b"KEYS", r.choice([b"*", b"k*", b"?", b"[a-m]*", b"k[^0]"])]
        if c == 24:
            return [b"MSET", k(), self.value(), k(), self.value()]
        return [r.choice([b"GET", b"MGET"]), k()]

    def pipeline(self):
        cmds = []
        for _ in range(self.r.randrange(10, 60)):
            if self.r.random() < 0.08:
                cmds.append([b"MULTI"])
                cmds += [self.one(True) for _ in range(self.r.randrange(0, 5))]
                if self.r.random() < 0.1:
                    cmds.append([b"NOSUCHCMD"])
                cmds.append([self.r.choice([b"EXEC", b"EXEC", b"DISCARD"])])
            else:
                cmds.append(self.one())
        return cmds


def run_random(kc, rc, seed, n, failures):
    gen, done, pipes = Gen(seed), 0, 0
    n0 = len(failures.items)
    while done < n and len(failures.items) - n0 < 50:
        cmds = gen.pipeline()
        run_cmds(kc, rc, cmds, failures, "seed=%d pipeline %d" % (seed, pipes))
        compare_state(kc, rc, failures, "seed=%d after pipeline %d" % (seed, pipes))
        done += len(cmds)
        pipes += 1
    return done, pipes, len(failures.items) - n0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("server")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--commands", type=int, default=4000)
    ap.add_argument("--engine", action="append", choices=["kvs", "lmdb"])
    ap.add_argument("--only", choices=["fixed", "random"])
    args = ap.parse_args()
    if not os.access(REDIS_SERVER, os.X_OK):
        sys.exit("missing %s (Debian package redis-server)" % REDIS_SERVER)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print("seed=%d (replay: --seed %d)" % (seed, seed), flush=True)
    failures = Failures()
    with tempfile.TemporaryDirectory(prefix="kvs-cdiff-") as rd:
        redis_srv = RedisServer(rd).start()
        try:
            for engine in args.engine or ["kvs", "lmdb"]:
                with tempfile.TemporaryDirectory(prefix="kvs-cdiff-") as d, \
                        Server(os.path.abspath(args.server), d, "--engine", engine) as kvs:
                    kc, kc2 = (Conn(kvs.connect(timeout=10)) for _ in range(2))
                    rc, rc2 = redis_srv.connect(), redis_srv.connect()
                    try:
                        if args.only in (None, "fixed"):
                            f = run_fixed(kc, rc, kc2, rc2, failures)
                            print("engine=%s fixed: %d failures" % (engine, f), flush=True)
                        if args.only in (None, "random"):
                            run_cmds(kc, rc, [B("FLUSHALL")], failures, "flush")
                            n, p, f = run_random(kc, rc, seed, args.commands, failures)
                            print("engine=%s random: %d commands in %d pipelines, %d failures"
                                  % (engine, n, p, f), flush=True)
                    finally:
                        for c in (kc, kc2, rc, rc2):
                            c.close()
                    if kvs.stop(check=False) != 0:
                        failures.add("engine=%s: kvs-server did not stop cleanly:\n%s"
                                     % (engine, kvs.stderr_text()[-3000:]))
        finally:
            redis_srv.stop()
    print("seed=%d: %d failures" % (seed, len(failures.items)), flush=True)
    sys.exit(1 if failures.items else 0)


if __name__ == "__main__":
    main()

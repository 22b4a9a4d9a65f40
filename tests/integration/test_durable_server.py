#!/usr/bin/env python3
"""test_durable_server.py -- issue 14 through kvs-server: replies to writes held until durable,
kill -9 under many writers, WAITAOF, one fsync for a MSET or DEL of many keys, and INFO's
durability figures.

Usage: python3 test_durable_server.py PATH_TO_kvs-server PATH_TO_libcrashsim.so [unittest opts]

Most servers here run under the power-cut shim (tests/crashsim/crashsim.c, LD_PRELOAD), which
counts every sync ("events") and records when each one began and ended on CLOCK_MONOTONIC
("synced", the clock of time.monotonic()); CRASHSIM_SYNC_DELAY_US makes each sync slow. The
tests order replies against those records, never against wall-clock upper bounds:

  HeldReplies      --sync always, syncs of 0.4 s: every reply on a connection -- the SET's own
                   and every GET and SET pipelined after it, over several batches that need
                   several syncs -- arrives only after a log sync that began after that SET was
                   sent had ended, and holds the value the model says (order kept); the values
                   are in what the shim holds durable when they arrive. A GET on another
                   connection (one loop thread, syncs of 1 s) sees a held SET's value before the
                   SET's own reply arrives: visible before acknowledged.
  KillNine         50 connections, each writing its own keys with increasing values, --sync
                   always, kvs and lmdb: kill -9 at a random moment, then every acknowledged
                   write is there (value >= the last acknowledged) both in the directory a power
                   cut at that moment could have left (crashsim.rebuild) and in the directory
                   itself on restart; 3 rounds per engine.
  WaitAof          [1,0] at once with nothing pending; under everysec and never a SET then
                   WAITAOF gives [1,0] (everysec: within a timeout shorter than its tick, again
                   and again) and INFO's fsyncs grew; a sync slower than the timeout gives [0,0]
                   no earlier than the timeout, and the connection goes on in order; numreplicas
                   > 0 answers at its timeout; the errors; inside MULTI it does not block.
  OneBatch         MSET of 100 pairs and DEL of 100 keys under --sync always, both engines:
                   fsyncs +1, durable_syncs +1 and commit_batches +1 each (kvs: one fdatasync
                   of the log in the shim's events too).
  InfoPersistence  the fields are there and plausible after writes: 20 connections writing
                   beside syncs of 50 ms share them (writes_per_fsync > 1), p50 <= p99 <= p999,
                   commit latency at least the sync's; durable_lag_* nonzero while a write waits
                   for a sync of 1 s, zero after; under lmdb too, durable_syncs and
                   writes_per_fsync count its commits.

Environment: KVS_DURABLE_SEED (default random; always printed). Every server is stopped by
pid; only 127.0.0.1, ports the kernel picks; every wait is bounded.
"""
import os
import random
import select
import shutil
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crashsim"))
import crashsim  # noqa: E402
from kvstest import ReplyError, RespConn, Server, resp  # noqa: E402

SERVER = None
CRASHSIM = None
SEED = int(os.environ.get("KVS_DURABLE_SEED") or random.randrange(1 << 32))
IO_TIMEOUT = 20.0

INFO_FIELDS = ("fsyncs", "durable_syncs", "writes_per_fsync", "durable_lag_bytes",
               "durable_lag_usec", "commit_batches", "commit_latency_p50_usec",
               "commit_latency_p99_usec", "commit_latency_p999_usec")


class Conn(RespConn):
    """A raw RESP connection: call() sends commands pipelined and returns their values."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        super().__init__(port, timeout)

    def call(self, *cmds):
        self.send(b"".join(resp(*c) for c in cmds))
        return [self.reply()[1] for _ in cmds]

    def one(self, *args):
        return self.call(args)[0]

    def readable(self):
        """Has anything come that is not read yet?"""
        if self.reader.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def info_persistence(self):
        text = self.one("INFO", "persistence")
        out = {}
        for line in text.decode().splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out


OK = ("+", b"OK")


class Base(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-dur-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.rng = random.Random("%d %s" % (SEED, self.id()))

    def path(self, name):
        return os.path.join(self.tmp, name)

    def start(self, data, *args, shadow=None, delay_us=0, engine="kvs", sync="always",
              threads=2, check_exit=True):
        """kvs-server on data (created if need be), under the shim when shadow is given."""
        os.makedirs(data, exist_ok=True)
        env = None
        if shadow:
            if delay_us and not os.listdir(data):   # made here, not in slow syncs
                Server(SERVER, data, "--engine", engine).start().stop()
            env = crashsim.env(CRASHSIM, data, shadow, sync_delay_us=delay_us)
        s = Server(SERVER, data, "--engine", engine, "--sync", sync, "--threads", str(threads),
                   *args, env=env, check_exit=check_exit)
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        if delay_us >= 10000:   # its clean stop would sleep in each of its syncs: kill it
            self.addCleanup(s.kill9)
        return s

    def conn(self, s, timeout=IO_TIMEOUT):
        c = Conn(s.port, timeout)
        self.addCleanup(c.close)
        return c


def log_syncs(shadow):
    """(begin, end) of every log sync that succeeded, as the shim recorded them."""
    return [(b, e) for (_, op, cls, _, b, e, err) in crashsim.synced(shadow)
            if cls == "log" and err == 0]


def log_sync_events(shadow):
    return sum(1 for (_, op, cls, _) in crashsim.events(shadow)
               if cls == "log" and op in ("fsync", "fdatasync", "msync"))


def durable_bytes(shadow):
    """Everything the shim holds durable, all files together (values are unique tokens)."""
    d = os.path.join(shadow, "files")
    out = []
    for name in os.listdir(d):
        if name.isdigit():
            try:
                with open(os.path.join(d, name), "rb") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
    return b"\0".join(out)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.005)


# ---------------------------------------------------------------------------------------------
# 1. No reply before its sync
# ---------------------------------------------------------------------------------------------

class HeldReplies(Base):
    DELAY_US = 400000

    def test_no_reply_before_its_sync(self):
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, delay_us=self.DELAY_US)
        c = self.conn(s)
        token = "%08x" % self.rng.randrange(1 << 32)
        model = {}
        sent = []        # (kind, key, value or expected, t_send) per command, in stream order
        arrived = []     # (t_arrival, value, durable bytes then)
        stop = []

        def reader():
            try:
                while len(arrived) < len(sent) or not stop:
                    if len(arrived) >= len(sent):
                        time.sleep(0.001)
                        continue
                    _, v = c.reply()
                    t = time.monotonic()
                    arrived.append((t, v, durable_bytes(shadow)))
            except (ReplyError, OSError) as e:
                arrived.append((time.monotonic(), ("exception", repr(e)), b""))

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        waves = 4
        for w in range(waves):
            n0 = log_sync_events(shadow)
            cmds = []
            for j in range(self.rng.randint(4, 8)):
                key = "k%d" % self.rng.randrange(6)
                if j == 0 or self.rng.random() < 0.5:   # each wave starts with a write
                    val = "v-%s-%d-%d" % (token, w, j)
                    model[key] = val.encode()
                    cmds.append(("SET", key, val))
                else:
                    cmds.append(("GET", key, model.get(key)))
            t = time.monotonic()
            sent.extend((op, k, v, t) for op, k, v in cmds)
            c.send(b"".join(resp(op, k, v) if op == "SET" else resp(op, k)
                            for op, k, v in cmds))
            # the next wave goes once a sync of the log has begun: it needs a later one
            wait_for(lambda: log_sync_events(shadow) > n0, 10, "a sync of the log")
        wait_for(lambda: len(arrived) >= len(sent), 15, "every reply")
        stop.append(1)
        th.join(5)
        syncs = log_syncs(shadow)
        print("# held: %d commands in %d waves, %d log syncs"
              % (len(sent), waves, len(syncs)), flush=True)
        used = set()
        for i, ((op, key, val, _), (t_arr, got, dur)) in enumerate(zip(sent, arrived)):
            if op == "SET":
                self.assertEqual(got, OK, "reply %d (SET %s)" % (i, key))
            else:
                self.assertEqual(got, val, "reply %d (GET %s): order or value" % (i, key))
            for k, (op2, key2, val2, t_send) in enumerate(sent[:i + 1]):
                if op2 != "SET":
                    continue
                covering = [(b, e) for b, e in syncs if b >= t_send and e <= t_arr]
                self.assertTrue(
                    covering, "reply %d (%s %s) arrived at %.6f, before any log sync that "
                    "began after SET #%d (sent %.6f) had ended; log syncs: %s"
                    % (i, op, key, t_arr, k, t_send,
                       ["%.6f-%.6f" % se for se in syncs]))
                self.assertIn(val2.encode(), dur, "reply %d arrived before SET #%d's value "
                              "was durable in the shim" % (i, k))
                if k == i:
                    used.add(min(covering, key=lambda se: se[1]))
        # several batches, several syncs: each wave's writes needed a sync of their own
        self.assertGreaterEqual(len(used), waves, "SETs' first covering syncs: %s" % used)

    def test_visible_before_acknowledged(self):
        shadow = self.path("shadow")
        # one loop thread: the reader's GET is served by the very loop holding the SET's reply
        s = self.start(self.path("data"), shadow=shadow, delay_us=1000000, threads=1)
        a, b = self.conn(s), self.conn(s)
        self.assertEqual(b.one("PING"), ("+", b"PONG"))
        val = b"seen-%08x" % self.rng.randrange(1 << 32)
        a.send(resp("SET", "vis", val))
        deadline = time.monotonic() + 10
        order = None
        while order is None:
            self.assertLess(time.monotonic(), deadline, "no GET saw the value in 10 s")
            if a.readable():
                order = "SET's reply first"
                break
            got = b.one("GET", "vis")
            if got == val:
                order = "GET first" if not a.readable() else "SET's reply first"
            elif got is not None:
                self.fail("GET vis gave %r" % (got,))
            else:
                time.sleep(0.005)
        self.assertEqual(order, "GET first", "a GET on another connection must see a write "
                         "before the write's own reply (held until its sync) arrives")
        self.assertEqual(a.reply()[1], OK)
        self.assertTrue(log_syncs(shadow), "the SET was acknowledged without a log sync")


# ---------------------------------------------------------------------------------------------
# 2. kill -9 under 50 writing connections
# ---------------------------------------------------------------------------------------------

class Writers:
    """N connections, each writing its own keys with increasing values, pipelined 1..3 SETs at
    a time; acked[key] is the highest value acknowledged."""
    N = 50
    KEYS = 4

    def __init__(self, port, rng, counters):
        self.port, self.counters = port, counters
        self.acked = {}
        self.lock = threading.Lock()
        self.errors = []
        self.nacked = 0
        self.threads = [threading.Thread(target=self.run, args=(i, random.Random(rng.random())),
                                         daemon=True) for i in range(self.N)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(IO_TIMEOUT + 5)
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, "%d writers still running after the kill" % len(alive)

    def run(self, i, rng):
        keys = ["c%02d-k%d" % (i, j) for j in range(self.KEYS)]
        try:
            c = Conn(self.port)
        except OSError as e:
            self.errors.append("connect: %r" % e)
            return
        try:
            while True:
                batch = []
                for _ in range(rng.randint(1, 3)):
                    key = rng.choice(keys)
                    self.counters[key] = self.counters.get(key, 0) + 1  # own keys: no race
                    n = self.counters[key]
                    batch.append((key, n, b"%d:%s" % (n, b"x" * rng.randint(0, 200))))
                c.send(b"".join(resp("SET", k, v) for k, _, v in batch))
                for key, n, _ in batch:
                    _, v = c.reply()
                    if v != OK:
                        self.errors.append("SET %s %d: %r" % (key, n, v))
                        return
                    with self.lock:
                        self.acked[key] = max(self.acked.get(key, 0), n)
                        self.nacked += 1
        except (ReplyError, OSError):
            pass  # the server is gone: what was in flight stays unknown
        finally:
            c.close()


class KillNine(Base):
    ROUNDS = 3
    FLAGS = ("--segment-size", "64kb", "--compact-min-bytes", "64kb")

    def check_store(self, port, acked, counters, where):
        c = Conn(port)
        try:
            keys = sorted(counters)
            for i in range(0, len(keys), 100):
                chunk = keys[i:i + 100]
                for key, v in zip(chunk, c.call(*[("GET", k) for k in chunk])):
                    have = int(v.split(b":", 1)[0]) if isinstance(v, bytes) else 0
                    if not isinstance(v, bytes) and v is not None:
                        self.fail("%s: GET %s gave %r" % (where, key, v))
                    self.assertGreaterEqual(
                        have, acked.get(key, 0), "%s: %s holds %d, but %d was acknowledged"
                        % (where, key, have, acked.get(key, 0)))
                    self.assertLessEqual(have, counters[key], "%s: %s holds %d, never written"
                                         % (where, key, have))
        finally:
            c.close()

    def run_engine(self, engine):
        rng = self.rng
        data = self.path("data-" + engine)
        counters, acked = {}, {}
        total = 0
        t0 = time.monotonic()
        for r in range(self.ROUNDS):
            shadow = self.path("shadow-%s-%d" % (engine, r))
            s = self.start(data, *self.FLAGS, shadow=shadow, delay_us=2000, engine=engine)
            if r:   # the restart after the last kill, on the same directory
                self.check_store(s.port, acked, counters, "%s round %d restart" % (engine, r))
            w = Writers(s.port, rng, counters).start()
            time.sleep(rng.uniform(0.4, 1.5))
            # a loaded machine acknowledges fewer writes in that time: kill once there are
            # enough to check (bounded), not after a fixed time only
            enough = time.monotonic() + 60
            while w.nacked <= self.N_MIN and time.monotonic() < enough:
                time.sleep(0.05)
            s.kill9()
            w.join()
            self.assertEqual(w.errors, [], "writers' errors")
            self.assertGreater(w.nacked, self.N_MIN, "%s round %d: too few writes acknowledged"
                               % (engine, r))
            total += w.nacked
            for k, n in w.acked.items():
                acked[k] = max(acked.get(k, 0), n)
            # the directory a power cut at the kill could have left
            cut = self.path("cut-%s-%d" % (engine, r))
            report = crashsim.rebuild(shadow, data, cut, random.Random(rng.random()))
            c = self.start(cut, *self.FLAGS, engine=engine)
            self.check_store(c.port, acked, counters,
                             "%s round %d power cut (%s)" % (engine, r, report))
            c.stop()
            shutil.rmtree(cut)
        s = self.start(data, *self.FLAGS, engine=engine)
        self.check_store(s.port, acked, counters, "%s final restart" % engine)
        s.stop()
        print("# kill -9 %s: %d rounds, %d writes acknowledged, %.1fs"
              % (engine, self.ROUNDS, total, time.monotonic() - t0), flush=True)

    N_MIN = 50

    def test_kvs(self):
        self.run_engine("kvs")

    def test_lmdb(self):
        self.run_engine("lmdb")


# ---------------------------------------------------------------------------------------------
# 3. WAITAOF
# ---------------------------------------------------------------------------------------------

class WaitAof(Base):
    def test_nothing_pending(self):
        s = self.start(self.path("data"))
        c = self.conn(s, timeout=5)
        before = int(c.info_persistence()["fsyncs"])
        # timeout 0 is forever: it must answer without waiting for anything
        self.assertEqual(c.one("WAITAOF", 1, 0, 0), [1, 0])
        self.assertEqual(c.one("SET", "a", "1"), OK)   # acknowledged: durable
        self.assertEqual(c.one("WAITAOF", 1, 0, 0), [1, 0])
        self.assertEqual(c.one("WAITAOF", 0, 0, 0), [1, 0])
        self.assertEqual(int(c.info_persistence()["fsyncs"]), before + 1, "one sync, the SET's")

    def sync_asked(self, sync):
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, sync=sync)
        c = self.conn(s)
        for i in range(5):
            before = int(c.info_persistence()["fsyncs"])
            self.assertEqual(c.one("SET", "k%d" % i, "v%d" % i), OK)
            # shorter than everysec's tick: only a sync asked for at once makes it in time,
            # every time (never has no tick at all)
            self.assertEqual(c.one("WAITAOF", 1, 0, 300), [1, 0], "%s, round %d" % (sync, i))
            after = int(c.info_persistence()["fsyncs"])
            self.assertGreater(after, before, "%s: WAITAOF did not sync" % sync)
        self.assertEqual(c.one("GET", "k4"), b"v4")

    def test_everysec_asks_for_a_sync(self):
        self.sync_asked("everysec")

    def test_never_asks_for_a_sync(self):
        self.sync_asked("never")

    def test_timeout_then_in_order(self):
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, delay_us=1500000, sync="everysec")
        c = self.conn(s)
        self.assertEqual(c.one("SET", "k", "v1"), OK)
        t = time.monotonic()
        self.assertEqual(c.one("WAITAOF", 1, 0, 200), [0, 0])
        self.assertGreaterEqual(time.monotonic() - t, 0.2, "answered before its timeout")
        # the connection goes on, replies in order
        self.assertEqual(c.call(("GET", "k"), ("SET", "k2", "v2"), ("GET", "k2"), ("PING",),
                                ("WAITAOF", 0, 0, 0)),
                         [b"v1", OK, b"v2", ("+", b"PONG"), [0, 0]])
        self.assertEqual(c.one("WAITAOF", 1, 0, 10000), [1, 0])

    def test_timeout_always_behind_held_reply(self):
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, delay_us=1000000)
        c = self.conn(s)
        self.assertEqual(c.call(("SET", "k", "v1"), ("WAITAOF", 1, 0, 100), ("GET", "k"),
                                ("WAITAOF", 1, 0, 0)),
                         [OK, [0, 0], b"v1", [1, 0]])
        # numlocal 0 still answers whether the connection's writes are durable: at the
        # timeout (numreplicas 1), its SET is not yet
        self.assertEqual(c.call(("SET", "k", "v2"), ("WAITAOF", 0, 1, 100)), [OK, [0, 0]])

    def test_numreplicas_waits_for_its_timeout(self):
        s = self.start(self.path("data"))
        c = self.conn(s)
        for args in ((0, 1, 200), (1, 1, 200)):
            t = time.monotonic()
            self.assertEqual(c.one("WAITAOF", *args), [1, 0])
            self.assertGreaterEqual(time.monotonic() - t, 0.2, "WAITAOF %s %s %s" % args)
        self.assertEqual(c.one("PING"), ("+", b"PONG"))

    def test_errors(self):
        s = self.start(self.path("data"))
        c = self.conn(s)
        cases = [
            (("WAITAOF", 1, 0, -1), b"ERR timeout is negative"),
            (("WAITAOF", "x", 0, 0), b"ERR value is not an integer or out of range"),
            (("WAITAOF", 1, "1.5", 0), b"ERR value is not an integer or out of range"),
            (("WAITAOF", 1, 0, "soon"), b"ERR timeout is not an integer or out of range"),
            (("WAITAOF", -1, 0, 0), b"ERR value is out of range, must be positive"),
            (("WAITAOF", 0, -1, 0), b"ERR value is out of range, must be positive"),
            (("WAITAOF", 1, 0), b"ERR wrong number of arguments for 'waitaof' command"),
        ]
        for args, err in cases:
            self.assertEqual(c.one(*args), ("-", err), args)
        self.assertEqual(c.one("PING"), ("+", b"PONG"))

    def test_multi_does_not_block(self):
        s = self.start(self.path("data"), sync="never")
        c = self.conn(s, timeout=5)
        # numreplicas > 0 and timeout 0 would wait for ever outside MULTI
        self.assertEqual(c.call(("MULTI",), ("SET", "m", "1"), ("WAITAOF", 0, 1, 0), ("EXEC",)),
                         [OK, ("+", b"QUEUED"), ("+", b"QUEUED"), [OK, [0, 0]]])
        self.assertEqual(c.call(("MULTI",), ("WAITAOF", 1, 1, 0), ("GET", "m"), ("EXEC",))[3][1],
                         b"1")


# ---------------------------------------------------------------------------------------------
# 4. MSET and DEL of many keys: one batch, one fsync
# ---------------------------------------------------------------------------------------------

class OneBatch(Base):
    def counts(self, c, shadow):
        i = c.info_persistence()
        return (int(i["fsyncs"]), int(i["durable_syncs"]), int(i["commit_batches"]),
                log_sync_events(shadow) if shadow else 0)

    def run_engine(self, engine):
        shadow = self.path("shadow") if engine == "kvs" else None
        s = self.start(self.path("data"), shadow=shadow, engine=engine)
        c = self.conn(s)
        keys = ["m%03d" % i for i in range(100)]
        # nothing pending: a write acknowledged (durable), and WAITAOF says so
        self.assertEqual(c.one("SET", "before", "x"), OK)
        self.assertEqual(c.one("WAITAOF", 1, 0, 0), [1, 0])
        for what, cmd, want in (
                ("MSET", ["MSET"] + [a for k in keys for a in (k, "val-" + k)], OK),
                ("DEL", ["DEL"] + keys, 100)):
            before = self.counts(c, shadow)
            self.assertEqual(c.one(*cmd), want)
            self.assertEqual(c.one("WAITAOF", 1, 0, 0), [1, 0])
            after = self.counts(c, shadow)
            d = [a - b for a, b in zip(after, before)]
            self.assertEqual(d[:3], [1, 1, 1], "%s %s of 100 keys: fsyncs, durable_syncs, "
                             "commit_batches grew by %s" % (engine, what, d[:3]))
            if shadow:
                self.assertEqual(d[3], 1, "kvs %s: log syncs in the shim's events" % what)
        self.assertEqual(c.one("EXISTS", *keys), 0)

    def test_kvs(self):
        self.run_engine("kvs")

    def test_lmdb(self):
        self.run_engine("lmdb")


# ---------------------------------------------------------------------------------------------
# 5. INFO persistence
# ---------------------------------------------------------------------------------------------

class InfoPersistence(Base):
    def test_fields_after_writes(self):
        delay_us = 50000
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, delay_us=delay_us)
        c = self.conn(s)
        i0 = c.info_persistence()
        for f in INFO_FIELDS:
            self.assertIn(f, i0)
        self.assertEqual(i0["sync_mode"], "always")
        # 20 connections, 10 SETs each one at a time, beside syncs of 50 ms
        errs = []

        def writer(n):
            try:
                w = Conn(s.port)
                for j in range(10):
                    if w.one("SET", "w%d-%d" % (n, j), "x" * 100) != OK:
                        errs.append((n, j))
                w.close()
            except (ReplyError, OSError) as e:
                errs.append(repr(e))
        ths = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(20)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(IO_TIMEOUT)
        self.assertEqual(errs, [])
        i = c.info_persistence()
        print("# info persistence: %s" % ", ".join("%s=%s" % (f, i[f]) for f in INFO_FIELDS),
              flush=True)
        num = {f: float(i[f]) for f in INFO_FIELDS}
        self.assertGreaterEqual(num["fsyncs"], num["durable_syncs"])
        self.assertGreaterEqual(num["durable_syncs"], 1)
        self.assertLessEqual(num["durable_syncs"], 200)
        # 200 writes over syncs of 50 ms each: most syncs carry several
        self.assertGreater(num["writes_per_fsync"], 1.0)
        self.assertGreaterEqual(num["commit_batches"] - float(i0["commit_batches"]), 200)
        p50, p99, p999 = (num["commit_latency_p%s_usec" % p] for p in ("50", "99", "999"))
        self.assertTrue(0 < p50 <= p99 <= p999, (p50, p99, p999))
        # every batch waited for a sync that took 50 ms (the histogram's buckets: a margin)
        self.assertGreaterEqual(p50, delay_us * 0.8)
        self.assertEqual((num["durable_lag_bytes"], num["durable_lag_usec"]), (0, 0))

    def test_lmdb(self):
        s = self.start(self.path("data"), engine="lmdb")
        c = self.conn(s)
        self.assertEqual(c.call(("SET", "a", "1"), ("MSET", "b", "2", "c", "3"), ("DEL", "a")),
                         [OK, OK, 1])
        i = c.info_persistence()
        num = {f: float(i[f]) for f in INFO_FIELDS}
        self.assertEqual(i["sync_mode"], "always")
        self.assertGreaterEqual(num["fsyncs"], num["durable_syncs"])
        self.assertGreaterEqual(num["durable_syncs"], 1, i)
        self.assertGreater(num["writes_per_fsync"], 0, i)
        p50, p99, p999 = (num["commit_latency_p%s_usec" % p] for p in ("50", "99", "999"))
        self.assertTrue(0 <= p50 <= p99 <= p999, (p50, p99, p999))

    def test_lag_while_a_write_waits(self):
        shadow = self.path("shadow")
        s = self.start(self.path("data"), shadow=shadow, delay_us=1000000)
        a, b = self.conn(s), self.conn(s)
        a.send(resp("SET", "slow", "y" * 1000))
        wait_for(lambda: log_sync_events(shadow) > 0, 10, "the SET's sync")
        time.sleep(0.05)
        i = b.info_persistence()
        self.assertFalse(a.readable(), "the SET was acknowledged within its sync of 1 s")
        self.assertGreaterEqual(int(i["durable_lag_bytes"]), 1000, i)
        self.assertGreater(int(i["durable_lag_usec"]), 0, i)
        self.assertEqual(a.reply()[1], OK)
        i = b.info_persistence()
        self.assertEqual((int(i["durable_lag_bytes"]), int(i["durable_lag_usec"])), (0, 0), i)
        self.assertGreaterEqual(float(i["commit_latency_p50_usec"]), 800000, i)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_durable_server.py PATH_TO_kvs-server PATH_TO_libcrashsim.so "
                 "[unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    CRASHSIM = os.path.abspath(sys.argv[2])
    print("# durable_server seed %d (KVS_DURABLE_SEED)" % SEED, flush=True)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])

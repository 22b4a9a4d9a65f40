#!/usr/bin/env python3
"""test_net_concurrency.py -- many clients at once against a real kvs-server.

Usage: python3 test_net_concurrency.py PATH_TO_kvs-server [unittest options]

For --sync everysec and (with less data) --sync always:

  1. 1000 simultaneous connections: 1000 raw sockets are connected first, then each sends
     SET key_i value_i, then every reply is read back: +OK each.
  2. While 4 writer connections (redis-py, pipelined) overwrite their own 64 keys of 4 KiB each
     (1 MiB of live data in all) with a fixed amount of data (64 MiB everysec, 32 MiB always) so
     that whole segments turn to garbage and the engine compacts meanwhile, 100 raw connections
     read the 1000 keys back, round after round until the writers are done (at most MAX_ROUNDS;
     10 pipelined GETs per connection, all sent before any reply is read): every reply is the
     value written in step 1.
  3. INFO engine reports compactions >= 1 (the amount written makes compaction due; the wait
     for the background run to finish is bounded), every writer key holds its last value, and
     after a clean stop and a restart on the same directory all of it is still there.

The test raises RLIMIT_NOFILE (soft) to min(hard, 8192) first; the server started from it
inherits the limit. Every wait is bounded; nothing asserts on time.
"""
import os
import resource
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvstest import RespReader, Server, resp  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

SERVER = None
CONNS = 1000         # simultaneous connections of step 1
READERS = 100        # connections that read the keys back in step 2
WRITERS = 4          # connections that overwrite in step 2
WKEYS = 64           # keys per writer: 4 x 64 keys x 4 KiB = a 1 MiB key set
WVAL = 4096          # bytes per written value
PIPE = 64            # SETs per writer round trip
MAX_ROUNDS = 1000    # read rounds of step 2 at most
IO_TIMEOUT = 60.0    # any single socket wait
COMPACT_WAIT = 60.0  # the background compaction finishing after the writes
MIB = 1 << 20


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def key(i):
    return b"conn:%04d" % i


def value(i):
    return b"value-%d-%08x" % (i, (i * 2654435761) & 0xFFFFFFFF)


def wkey(w, k):
    return b"w%d:%03d" % (w, k)


def wvalue(w, k, version):
    head = b"w%d:%03d:v%d:" % (w, k, version)
    fill = bytes((w * 31 + k * 7 + version + j) % 251 for j in range(64))
    body = (fill * (WVAL // len(fill) + 1))[: WVAL - len(head)]
    return head + body


def info_engine(r):
    """INFO engine as a dict of strings (redis-py parses INFO replies itself)."""
    return {k: str(v) for k, v in r.info("engine").items()}


class NetConcurrency(unittest.TestCase):
    def setUp(self):
        self.nofile = raise_nofile()
        if self.nofile != resource.RLIM_INFINITY and self.nofile < CONNS + READERS + 200:
            self.skipTest("RLIMIT_NOFILE is %d (hard limit too low for %d connections)"
                          % (self.nofile, CONNS))
        tmp = tempfile.TemporaryDirectory(prefix="kvs-netconc-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def start(self, *args):
        s = Server(SERVER, self.dir, *args)
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def connect_all(self, srv, n):
        socks = []
        try:
            for _ in range(n):
                socks.append(srv.connect(timeout=IO_TIMEOUT))
        except BaseException:
            for s in socks:
                s.close()
            raise
        return socks

    # ---- step 1 ----

    def many_sets(self, srv):
        socks = self.connect_all(srv, CONNS)
        try:
            for i, s in enumerate(socks):       # every connection is open before any command
                s.sendall(resp("SET", key(i), value(i)))
            bad = []
            for i, s in enumerate(socks):
                raw, _ = RespReader(s).reply()   # each wait bounded by IO_TIMEOUT
                if raw != b"+OK\r\n":
                    bad.append((i, raw))
            self.assertEqual(bad, [], "SET replies that were not +OK (first 5): %r" % bad[:5])
        finally:
            for s in socks:
                s.close()

    # ---- step 2 ----

    def writer(self, srv, w, total_bytes, done, errors):
        try:
            r = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=IO_TIMEOUT)
            writes = total_bytes // WVAL // WRITERS
            n = 0
            while n < writes:
                p = r.pipeline(transaction=False)
                batch = min(PIPE, writes - n)
                for j in range(batch):
                    k = (n + j) % WKEYS
                    p.set(wkey(w, k), wvalue(w, k, (n + j) // WKEYS))
                res = p.execute()
                if res != [True] * batch:
                    raise AssertionError("writer %d: SET replies %r" % (w, res[:3]))
                n += batch
                done[w] = n
            r.close()
        except BaseException as e:  # reported by the main thread
            errors.append("writer %d: %r" % (w, e))

    def read_back(self, srv, writers):
        """Rounds of reads over the same READERS connections: each round sends every GET (10 per
        connection, the 1000 keys in all) before reading any reply. Rounds go on while the
        writers run, at most MAX_ROUNDS; one more follows their end. Returns the rounds done."""
        socks = self.connect_all(srv, READERS)
        try:
            readers = [RespReader(s) for s in socks]
            per = CONNS // READERS
            rounds = 0
            while True:
                last = not any(t.is_alive() for t in writers) or rounds + 1 >= MAX_ROUNDS
                for c, s in enumerate(socks):
                    s.sendall(b"".join(resp("GET", key(c * per + j)) for j in range(per)))
                wrong = []
                for c, rd in enumerate(readers):
                    for j in range(per):
                        i = c * per + j
                        raw, got = rd.reply()
                        if got != value(i):
                            wrong.append((i, raw[:40]))
                self.assertEqual(wrong, [], "round %d: wrong GET replies (first 5): %r"
                                 % (rounds, wrong[:5]))
                rounds += 1
                if last:
                    return rounds
        finally:
            for s in socks:
                s.close()

    def check_writer_keys(self, r, total_bytes):
        writes = total_bytes // WVAL // WRITERS
        for w in range(WRITERS):
            keys = [wkey(w, k) for k in range(WKEYS)]
            got = r.mget(keys)
            for k in range(WKEYS):
                # the last write of key k was number n = the largest n < writes with n % WKEYS == k
                last = writes - 1 - ((writes - 1 - k) % WKEYS)
                self.assertEqual(got[k], wvalue(w, k, last // WKEYS), "key %r" % keys[k])

    def check_conn_keys(self, r):
        got = r.mget([key(i) for i in range(CONNS)])
        wrong = [i for i in range(CONNS) if got[i] != value(i)]
        self.assertEqual(wrong, [], "conn keys wrong after the run: %r" % wrong[:10])

    def run_mode(self, sync, total_bytes):
        srv = self.start("--sync", sync)
        self.many_sets(srv)

        done = [0] * WRITERS
        errors = []
        threads = [threading.Thread(target=self.writer, args=(srv, w, total_bytes, done, errors),
                                    daemon=True) for w in range(WRITERS)]
        for t in threads:
            t.start()
        # the readers start once the writers are under way (a bounded wait; they may even have
        # finished by then on a fast machine, which the reads do not depend on)
        deadline = time.monotonic() + IO_TIMEOUT
        while sum(done) * WVAL < 2 * MIB and any(t.is_alive() for t in threads) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        rounds = self.read_back(srv, threads)
        for t in threads:
            t.join(timeout=300)
            self.assertFalse(t.is_alive(), "a writer did not finish")
        self.assertEqual(errors, [])

        r = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=IO_TIMEOUT)
        deadline = time.monotonic() + COMPACT_WAIT
        info = info_engine(r)
        while int(info.get("compactions", "0")) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            info = info_engine(r)
        print("# --sync %s: %d MiB overwritten by %d writers while %d rounds of %d GETs on %d "
              "connections ran; INFO engine: compactions=%s segments=%s dead_bytes=%s "
              "disk_bytes=%s"
              % (sync, total_bytes // MIB, WRITERS, rounds, CONNS, READERS,
                 info.get("compactions"), info.get("segments"), info.get("dead_bytes"),
                 info.get("disk_bytes")), flush=True)
        self.assertEqual(info.get("engine"), "kvs")
        self.assertGreaterEqual(int(info.get("compactions", "0")), 1,
                                "no compaction after %d MiB of overwrites: %r"
                                % (total_bytes // MIB, info))
        self.check_conn_keys(r)
        self.check_writer_keys(r, total_bytes)
        r.close()
        self.assertEqual(srv.stop(), 0)

        srv2 = self.start("--sync", sync)
        r = redis.Redis(host="127.0.0.1", port=srv2.port, socket_timeout=IO_TIMEOUT)
        self.check_conn_keys(r)
        self.check_writer_keys(r, total_bytes)
        r.close()
        self.assertEqual(srv2.stop(), 0)

    def test_everysec(self):
        self.run_mode("everysec", 64 * MIB)

    def test_always(self):
        self.run_mode("always", 32 * MIB)


def main():
    global SERVER
    if len(sys.argv) < 2:
        sys.exit("usage: test_net_concurrency.py PATH_TO_kvs-server [unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()

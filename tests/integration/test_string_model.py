#!/usr/bin/env python3
"""test_string_model.py -- issue 13's data model in a live kvs-server, where it meets
concurrency, restarts, compaction and crashes.

Usage: python3 test_string_model.py PATH_TO_kvs-server [unittest options]

* INCR from two connections at once, 10,000 each (pipelined), ends at exactly 20,000: the read
  and the write of each INCR are one step in the engine's write order.
* SCAN while another connection adds thousands of new keys (the index grows under the scan):
  every key present from the start to the end is returned at least once.
* Expiry survives a restart (the time, not a fresh TTL) and a compaction; a key whose time has
  passed stays gone after both.
* MULTI's limits (commands, bytes): the crossing command and EXEC refused, nothing applied.
* MULTI/EXEC is all or nothing across kill -9: a writer sets N keys to one generation per
  transaction and the server is killed at random moments; after each restart every key holds
  the same generation.
Each test runs on both engines where the engine has what it needs (the lmdb engine: once its
update ops are merged).
"""
import os
import random
import socket
import threading
import time

import redis  # Debian: python3-redis
from kvstest import ServerTestCase, main, read_replies, resp

ENGINES = ["kvs", "lmdb"]


class StringModelTest(ServerTestCase):

    def incr_many(self, port, n, out, i):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            replies = []
            for start in range(0, n, 1000):
                k = min(1000, n - start)
                s.sendall(resp("INCR", "counter") * k)
                replies += [int(raw[1:-2]) for raw in read_replies(s, k, timeout=60)]
            out[i] = replies
        finally:
            s.close()

    def test_concurrent_incr(self):
        for engine in ENGINES:
            with self.subTest(engine=engine):
                d = os.path.join(self.dir, engine)
                os.mkdir(d)
                s = self.start("--engine", engine, "--threads", "2", dir=d)
                out = [None, None]
                ts = [threading.Thread(target=self.incr_many, args=(s.port, 10000, out, i))
                      for i in range(2)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(120)
                r = self.redis(s)
                self.assertEqual(r.get("counter"), b"20000")
                # every value was handed out exactly once
                self.assertEqual(sorted(out[0] + out[1]), list(range(1, 20001)))

    def test_watch_limits_and_repeats(self):
        """A key watched twice refuses EXEC exactly when Redis would (changed after the first
        WATCH), and a connection's watch list is bounded (kvs's own limit, docs/commands.md)."""
        s = self.start("--engine", "kvs")
        r = self.redis(s, single_connection_client=True)
        other = self.redis(s)
        r.set("w", "1")
        r.execute_command("WATCH", "w", "w")  # unchanged since: EXEC runs
        r.execute_command("MULTI")
        r.execute_command("SET", "x", "a")
        self.assertEqual(r.execute_command("EXEC"), [b"OK"])
        r.execute_command("WATCH", "w")
        other.set("w", "2")  # changed after the first WATCH ...
        r.execute_command("WATCH", "w")  # ... watched again: still refused, as in Redis
        r.execute_command("MULTI")
        r.execute_command("SET", "x", "b")
        self.assertIsNone(r.execute_command("EXEC"))
        self.assertEqual(r.get("x"), b"a")
        with self.assertRaises(redis.exceptions.ResponseError) as e:
            r.execute_command("WATCH", *["k%d" % i for i in range(100001)])
        self.assertIn("too many watched keys", str(e.exception))
        r.execute_command("WATCH", *["k%d" % i for i in range(100000)])  # at the limit: taken
        r.execute_command("UNWATCH")

    def test_multi_limits(self):
        """A MULTI past --max-multi-commands or --max-multi-bytes is refused: the command that
        crosses the limit answers an error, EXEC answers EXECABORT and nothing of it is applied;
        at the limit exactly it runs. The defaults (1,000,000 commands, 1 GiB) once too, with
        commands: 1,000,001 PINGs pipelined."""
        s = self.start("--engine", "kvs", "--max-multi-commands", "5",
                       "--max-multi-bytes", "100")
        c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        r = self.redis(s)

        def send(*cmds):
            c.sendall(b"".join(resp(*cmd) for cmd in cmds))
            return read_replies(c, len(cmds), timeout=30)

        try:
            got = send(("MULTI",), *[("SET", "m%d" % i, "v") for i in range(6)], ("EXEC",))
            self.assertEqual(got[:6], [b"+OK\r\n"] + [b"+QUEUED\r\n"] * 5)
            self.assertTrue(got[6].startswith(b"-ERR too many commands in one transaction"))
            self.assertTrue(got[7].startswith(b"-EXECABORT"), got[7])
            self.assertEqual(r.exists(*["m%d" % i for i in range(6)]), 0)
            # exactly at the limit: runs
            got = send(("MULTI",), *[("SET", "m%d" % i, "v") for i in range(5)], ("EXEC",))
            self.assertEqual(got[-1], b"*5\r\n" + b"+OK\r\n" * 5)
            got = send(("MULTI",), ("SET", "big", "x" * 60), ("SET", "big2", "y" * 60),
                       ("EXEC",))
            self.assertTrue(got[2].startswith(b"-ERR transaction too large"), got[2])
            self.assertTrue(got[3].startswith(b"-EXECABORT"), got[3])
            self.assertEqual(r.exists("big", "big2"), 0)
        finally:
            c.close()

        d = os.path.join(self.dir, "defaults")
        os.mkdir(d)
        s = self.start("--engine", "kvs", dir=d)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        try:
            n = 1000000
            c.sendall(resp("MULTI"))
            self.assertEqual(read_replies(c, 1, timeout=60), [b"+OK\r\n"])
            ping = resp("PING")
            for start in range(0, n + 1, 100000):
                k = min(100000, n + 1 - start)
                c.sendall(ping * k)
                got = read_replies(c, k, timeout=120)
                if start + k <= n:
                    self.assertEqual(set(got), {b"+QUEUED\r\n"})
            self.assertTrue(got[-1].startswith(b"-ERR too many commands"), got[-1])
            c.sendall(resp("EXEC"))
            self.assertTrue(read_replies(c, 1, timeout=60)[0].startswith(b"-EXECABORT"))
        finally:
            c.close()

    def test_scan_while_the_index_grows(self):
        for engine in ENGINES:
            with self.subTest(engine=engine):
                d = os.path.join(self.dir, engine)
                os.mkdir(d)
                s = self.start("--engine", engine, dir=d)
                r = self.redis(s)
                base = {b"base:%d" % i for i in range(3000)}
                for i in range(0, 3000, 500):
                    r.mset({b"base:%d" % j: b"v" for j in range(i, i + 500)})
                stop = threading.Event()

                def writer():
                    w = self.redis(s)
                    i = 0
                    while not stop.is_set() and i < 60000:
                        w.mset({b"new:%d" % j: b"x" for j in range(i, i + 200)})
                        i += 200

                t = threading.Thread(target=writer)
                t.start()
                try:
                    seen, cursor, steps = set(), 0, 0
                    while True:
                        cursor, keys = r.scan(cursor, count=50)
                        seen.update(keys)
                        steps += 1
                        time.sleep(0.001)
                        if cursor == 0:
                            break
                finally:
                    stop.set()
                    t.join(60)
                missing = base - seen
                self.assertFalse(missing, "%d keys present throughout never returned, e.g. %s"
                                 % (len(missing), sorted(missing)[:5]))
                self.assertGreater(steps, 10)

    def test_expiry_across_restart_and_compaction(self):
        for engine in ENGINES:
            with self.subTest(engine=engine):
                d = os.path.join(self.dir, engine)
                os.mkdir(d)
                args = ["--engine", engine]
                if engine == "kvs":
                    args += ["--segment-size", "65536", "--compact-min-bytes", "65536"]
                s = self.start(*args, dir=d)
                r = self.redis(s)
                r.set("long", "v", ex=1000)
                r.set("short", "v", px=1200)
                r.set("plain", "v")
                at = r.pexpiretime("long")
                self.assertEqual(s.stop(), 0)
                s = self.start(*args, dir=d)
                r = self.redis(s)
                self.assertEqual(r.pexpiretime("long"), at)  # the time, not a new TTL
                self.assertEqual(r.ttl("plain"), -1)
                time.sleep(1.3)
                self.assertIsNone(r.get("short"))
                # overwrite enough to make compaction run over the records of all three
                for i in range(60):
                    r.mset({b"fill:%d" % j: os.urandom(200) for j in range(100)})
                if engine == "kvs":
                    deadline = time.time() + 30
                    while (time.time() < deadline and
                           int(r.info("engine").get("compactions", 0)) == 0):
                        r.mset({b"fill:%d" % j: os.urandom(200) for j in range(100)})
                        time.sleep(0.05)
                    self.assertGreater(int(r.info("engine")["compactions"]), 0)
                self.assertEqual(r.pexpiretime("long"), at)
                self.assertIsNone(r.get("short"))
                self.assertEqual(r.exists("short"), 0)
                self.assertEqual(s.stop(), 0)
                s = self.start(*args, dir=d)
                r = self.redis(s)
                self.assertEqual(r.pexpiretime("long"), at)
                self.assertEqual(r.ttl("plain"), -1)
                self.assertIsNone(r.get("short"))
                self.assertNotIn(b"short", r.keys("*"))

    def test_exec_all_or_nothing_across_kill9(self):
        n = 300  # big transactions, pipelined: the server is mostly busy committing when killed
        keys = ["tx:%d" % i for i in range(n)]
        # one transaction, its generation to be filled in (built once: the writer must be
        # quicker than the server, so that a kill finds the server committing)
        tx = resp("MULTI") + b"".join(resp("SET", k, "GGGGGGGG") for k in keys) + resp("EXEC")
        rng = random.Random()
        for engine in ENGINES:
            with self.subTest(engine=engine):
                d = os.path.join(self.dir, engine)
                os.mkdir(d)
                gens_seen = 0
                for round_ in range(10):
                    s = self.start("--engine", engine, dir=d, check_exit=False)
                    r = self.redis(s)
                    vals = r.mget(keys)
                    self.assertEqual(len(set(vals)), 1, "round %d: keys of different "
                                     "generations after kill -9: %s" % (round_, vals))
                    start = int(vals[0] or 0)
                    stop = threading.Event()
                    done = [start]

                    def writer(port=s.port, start=start):
                        try:
                            sk = socket.create_connection(("127.0.0.1", port), timeout=10)
                        except OSError:
                            return
                        g = start
                        try:
                            while not stop.is_set():
                                req = b"".join(tx.replace(b"GGGGGGGG", b"%08d" % (g + j))
                                               for j in range(1, 6))
                                sk.sendall(req)
                                read_replies(sk, 5 * (n + 2), timeout=10)
                                g += 5
                                done[0] = g
                        except (OSError, AssertionError):
                            pass  # killed
                        finally:
                            sk.close()

                    t = threading.Thread(target=writer)
                    t.start()
                    time.sleep(rng.uniform(0.05, 0.3))
                    s.kill9()
                    stop.set()
                    t.join(30)
                    gens_seen = max(gens_seen, done[0])
                s = self.start("--engine", engine, dir=d)
                vals = self.redis(s).mget(keys)
                self.assertEqual(len(set(vals)), 1, vals)
                self.assertGreater(gens_seen, 0)
                # acknowledged transactions are there (the engine's sync mode allows losing
                # unsynced ones on power loss, not on kill -9)
                self.assertGreaterEqual(int(vals[0]), done[0])


class ClientCommandTest(ServerTestCase):
    """CLIENT across loop threads: LIST sees every connection, KILL closes one of another loop
    (posted to its thread), names and ids as Redis shows them."""

    def test_list_and_kill_across_loops(self):
        s = self.start("--threads", "2")
        conns = [self.redis(s, single_connection_client=True) for _ in range(4)]
        ids = []
        for i, r in enumerate(conns):
            r.client_setname("c%d" % i)
            ids.append(r.client_id())
        self.assertEqual(conns[1].client_getname(), "c1")
        listed = {c["name"]: c for c in conns[0].client_list()}
        for i in range(4):
            self.assertEqual(int(listed["c%d" % i]["id"]), ids[i])
            self.assertIn(":", listed["c%d" % i]["addr"])
        self.assertEqual(conns[2].client_info()["name"], "c2")
        # connections go to the loops in turn: c0 and c1 are on different threads
        self.assertEqual(conns[0].execute_command("CLIENT", "KILL", "ID", ids[1]), 1)
        self.assertEqual(conns[0].execute_command("CLIENT", "KILL", "ID", ids[1]), 0)
        addr = listed["c3"]["addr"]
        self.assertEqual(conns[0].execute_command("CLIENT", "KILL", addr), b"OK")
        deadline = time.time() + 5
        while time.time() < deadline:
            names = {c["name"] for c in conns[0].client_list()}
            if "c1" not in names and "c3" not in names:
                break
            time.sleep(0.05)
        self.assertEqual(names, {"c0", "c2"})
        with self.assertRaises(Exception):
            conns[1].ping()
        self.assertTrue(conns[2].ping())
        with self.assertRaises(Exception):
            conns[0].execute_command("CLIENT", "KILL", "127.0.0.1:1")


if __name__ == "__main__":
    main("test_string_model.py")

#!/usr/bin/env python3
"""test_server_safety.py -- regression tests for the server bugs of issue 8, against a real kvs-server.

Usage: python3 test_server_safety.py PATH_TO_kvs-server [unittest options]

Each case is a reproduction from the issue, turned into a check that fails on the code that had
the bug (902fe3e) and passes now:

  1. Pipelined inline writes hit the wrong key: the batch kept pointers into the inline parser's
     buffer, which the next inline command overwrote ("SET a 1 / SET bb 22" stored b = "b").
     Driven with redis-cli --pipe, and with long mixed inline/multibulk pipelines, on both
     engines and on the pool path (--sync always), where the batch outlives more parsing.
  2. A write that fails its checks inside a batch (a key over 64 KiB) was acknowledged with OK,
     and the whole batch was lost. Now: that command gets "-ERR key too large" and changes
     nothing, every other command of the batch takes effect with its own reply; MSET with one
     bad pair is refused whole (Redis's MSET is all or nothing); DEL and reads treat such a key
     as absent, since it cannot exist.
  3. Replies of batched writes ignored --max-output: a client pipelining DEL "" without reading
     is cut off, and the server's memory stays bounded.
  4. Before AUTH (with --requirepass) a client may announce at most 10 elements and 16 KiB
     bulks, as in Redis (CVE-2021-32675): past that, "-ERR Protocol error: unauthenticated ..."
     and the connection closes at once, without waiting for the announced bytes.
  6. Smaller differences from Redis: PING arity, COMMAND key positions, AUTH of the default user
     without a password, INFO with several sections, an inline line starting with '$'.

(5, the open-file limit, is test_fdlimit.py.) Memory and CPU figures are bounds with wide
margins, never timings. Every loop is bounded in count and time; all traffic is on 127.0.0.1.
"""
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server, read_replies, read_until_closed, resp  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

MIB = 1 << 20
BIG_KEY = b"K" * 70000  # over KVS_MAX_KEY (64 KiB)
REFUSAL = b"key too large"


class Base(kvstest.ServerTestCase):
    # the engine/sync variants each case runs on: the loop thread commits (kvs everysec), the
    # pool commits while the connection waits (kvs always, lmdb)
    VARIANTS = [("--engine", "kvs"), ("--engine", "kvs", "--sync", "always"),
                ("--engine", "lmdb")]

    def each_variant(self, case):
        """Run case(server) on a fresh server of each variant; it must then stop cleanly."""
        for v in self.VARIANTS:
            with self.subTest(variant=" ".join(v)):
                d = tempfile.TemporaryDirectory(prefix="kvs-safety-v-")
                self.addCleanup(d.cleanup)
                with Server(self.binary, d.name, *v) as s:
                    case(s)
                    self.assertEqual(s.stop(), 0, s.stderr_text())


class InlinePipelineTest(Base):
    def test_issue_reproductions(self):
        def case(s):
            r = self.redis(s)
            out = subprocess.run(["redis-cli", "-p", str(s.port), "--pipe"],
                                 input=b"SET a 1\r\nSET bb 22\r\n", capture_output=True,
                                 timeout=30)
            self.assertIn(b"errors: 0, replies: 2", out.stdout)
            self.assertEqual(r.get("a"), b"1")
            self.assertIsNone(r.get("b"))
            self.assertEqual(r.get("bb"), b"22")
            r.set("G", "keep")
            out = subprocess.run(["redis-cli", "-p", str(s.port), "--pipe"],
                                 input=b"DEL a\r\nPING\r\n", capture_output=True, timeout=30)
            self.assertIn(b"replies: 2", out.stdout)
            self.assertIsNone(r.get("a"))
            self.assertEqual(r.get("G"), b"keep")
            r.close()
        self.each_variant(case)

    def test_long_mixed_pipelines(self):
        """Hundreds of inline and multibulk writes of distinct keys in one send, split at
        random offsets: every key holds its own value afterwards."""
        seed = int(os.environ.get("KVS_TEST_SEED", random.randrange(1 << 30)))
        rnd = random.Random(seed)
        def case(s):
            want = {}
            data = b""
            n = 0
            for i in range(600):
                k = b"k%d-%s" % (i, b"x" * rnd.randrange(0, 40))
                v = b"v%d-%s" % (i, b"y" * rnd.randrange(0, 200))
                kind = rnd.randrange(4)
                if kind == 0:
                    data += b"SET " + k + b" " + v + b"\r\n"
                elif kind == 1:
                    data += resp("SET", k, v)
                elif kind == 2:
                    k2 = k + b"-2"
                    data += b"MSET " + k + b" " + v + b" " + k2 + b" " + v + b"\r\n"
                    want[k2] = v
                else:
                    data += b"SET " + k + b" gone\r\nDEL " + k + b"\r\n"
                    n += 1
                    v = None
                want[k] = v
                n += 1
            k = self.sock(s)
            pos = 0
            while pos < len(data):
                step = rnd.randrange(1, 4096)
                k.sendall(data[pos:pos + step])
                pos += step
            replies = read_replies(k, n)
            self.assertFalse([x for x in replies if x.startswith(b"-")], "seed=%d" % seed)
            r = self.redis(s)
            keys = list(want)
            got = r.mget(keys)
            for key, g in zip(keys, got):
                self.assertEqual(g, want[key], "seed=%d key=%r" % (seed, key))
            r.close()
        self.each_variant(case)


class BadMemberTest(Base):
    def test_issue_reproductions(self):
        def case(s):
            r = self.redis(s)
            with self.assertRaises(redis.ResponseError) as e:
                r.mset({"a": "1", BIG_KEY: "v", "b": "2"})
            self.assertIn("key too large", str(e.exception))
            self.assertEqual(r.mget("a", "b"), [None, None])  # all or nothing
            r.set("a", "1")
            self.assertEqual(r.delete("a", BIG_KEY), 1)
            self.assertEqual(r.exists("a"), 0)
            with self.assertRaises(redis.ResponseError):
                r.set(BIG_KEY, "v")
            self.assertIsNone(r.get(BIG_KEY))
            self.assertEqual(r.exists(BIG_KEY), 0)
            r.close()
        self.each_variant(case)

    def test_bad_command_inside_a_batch(self):
        """One bad write among good ones, in one send: its own error, the others done."""
        def case(s):
            k = self.sock(s)
            k.sendall(resp("SET", "x", "1") + resp("SET", BIG_KEY, "v") +
                      resp("MSET", "p", "1", BIG_KEY, "v") + resp("DEL", "x", BIG_KEY) +
                      resp("SET", "y", "2") + resp("MSET", "q", "3", "r", "4") +
                      resp("SET", "x", "again"))
            got = read_replies(k, 7)
            self.assertEqual(got[0], b"+OK\r\n")
            self.assertTrue(got[1].startswith(b"-ERR " + REFUSAL), got[1])
            self.assertTrue(got[2].startswith(b"-ERR " + REFUSAL), got[2])
            self.assertEqual(got[3], b":1\r\n")
            self.assertEqual(got[4:], [b"+OK\r\n"] * 3)
            r = self.redis(s)
            self.assertEqual(r.mget("x", "y", "p", "q", "r"),
                             [b"again", b"2", None, b"3", b"4"])
            self.assertEqual(r.dbsize(), 4)
            r.close()
        self.each_variant(case)

    def test_key_at_the_limit_is_stored(self):
        s = self.start()
        r = self.redis(s)
        edge = b"E" * (64 * 1024)
        self.assertTrue(r.mset({edge: "v", "z": "1"}))
        self.assertEqual(r.get(edge), b"v")
        self.assertEqual(r.delete(edge, "z"), 2)


class BatchedOutputLimitTest(Base):
    def test_pipelined_dels_never_read(self):
        s = self.start("--max-output", "1mb")
        k = self.sock(s, rcvbuf=4096)
        chunk = resp("DEL", "") * 50000  # ~1 MB of requests, 200 KB of replies
        sent, how = 0, "limit"
        deadline = time.monotonic() + 60
        k.settimeout(5)
        while sent < 400 * MIB and time.monotonic() < deadline:
            try:
                k.sendall(chunk)
            except (ConnectionResetError, BrokenPipeError):
                how = "closed"
                break
            except socket.timeout:
                how = "stalled"  # the server stopped reading: also a bound, check the log
                break
            sent += len(chunk)
            if s.rss_kb() > 300 * 1024:
                s.kill9()
                self.fail("kvs-server grew past 300 MB for a client that does not read")
        self.assertTrue(s.wait_for_stderr("output buffer past its limit", 20),
                        "sent %d MB (%s) and no cut-off" % (sent // MIB, how))
        self.assertLess(s.peak_rss_kb(), 100 * 1024)
        r = self.redis(s)
        self.assertTrue(r.ping())


class UnauthenticatedTest(Base):
    def test_limits_before_auth(self):
        s = self.start("--requirepass", "secret")
        cases = [
            (b"*1000000\r\n", b"-ERR Protocol error: unauthenticated multibulk length"),
            (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length"),
            (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000000\r\n",
             b"-ERR Protocol error: unauthenticated bulk length"),
            (b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length"),
        ]
        for payload, want in cases:
            with self.subTest(payload=payload[:30]):
                k = self.sock(s)
                k.sendall(payload)
                data, how = read_until_closed(k, timeout=10)
                self.assertTrue(data.startswith(want), data[:200])
                self.assertIn(how, ("eof", "reset"))
        # at the limits, and then an authenticated client may send large requests
        k = self.sock(s)
        k.sendall(resp("GET", "a", "b", "c", "d", "e", "f", "g", "h", "i") +
                  resp("AUTH", "secret") + resp("SET", "big", b"v" * MIB) +
                  resp("MSET", *[b"k%d" % i for i in range(40)]))
        got = read_replies(k, 4)
        self.assertTrue(got[0].startswith(b"-NOAUTH"), got[0])
        self.assertEqual(got[1:], [b"+OK\r\n"] * 3)

    def test_memory_of_unauthenticated_clients(self):
        """Four clients announce 200 MB bulks and fifty announce a million elements: each is
        refused at the announcement, so the server holds none of it."""
        s = self.start("--requirepass", "secret")
        socks = []
        for _ in range(4):
            k = self.sock(s)
            k.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$200000000\r\n")
            socks.append(k)
        for _ in range(50):
            k = self.sock(s)
            k.sendall(b"*1000000\r\n")
            socks.append(k)
        for k in socks:
            data, how = read_until_closed(k, timeout=10)
            self.assertIn(b"unauthenticated", data)
            self.assertIn(how, ("eof", "reset"))
        self.assertLess(s.peak_rss_kb(), 60 * 1024)


class DamagedRecordTest(Base):
    def test_damaged_newest_record_is_an_error(self):
        """Issue 9: SET k old; SET k new; SET z x; a byte of "new" flipped on disk; restart: GET k
        must be an error (never "old"), z intact, and INFO counts the damaged record."""
        s = self.start("--engine", "kvs")
        r = self.redis(s)
        r.set("k", "old-value-old")
        r.set("k", "new-value-new")
        r.set("z", "x")
        r.close()
        self.assertEqual(s.stop(), 0)
        seg = os.path.join(self.dir, "000001.log")
        with open(seg, "r+b") as f:
            data = f.read()
            at = data.index(b"new-value-new")
            f.seek(at + 4)
            f.write(bytes([data[at + 4] ^ 0x20]))
        s = self.start("--engine", "kvs")
        r = self.redis(s)
        with self.assertRaises(redis.ResponseError) as e:
            r.get("k")
        self.assertIn("corrupt", str(e.exception))
        self.assertEqual(r.get("z"), b"x")
        info = r.info("engine")
        self.assertEqual(info["corrupt_records"], 1)
        self.assertGreaterEqual(info["corrupt_reads"], 1)


class RedisDifferencesTest(Base):
    def test_without_password(self):
        s = self.start()
        r = self.redis(s)
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("PING", "a", "b")
        self.assertIn("wrong number of arguments for 'ping'", str(e.exception))
        cmds = r.execute_command("COMMAND")  # redis-py: name -> its fields

        def keys(name):
            c = cmds[name]
            return [c["first_key_pos"], c["last_key_pos"], c["step_count"]]
        self.assertEqual(keys("set"), [1, 1, 1])
        self.assertEqual(keys("get"), [1, 1, 1])
        self.assertEqual(keys("mset"), [1, -1, 2])
        self.assertEqual(keys("del"), [1, -1, 1])
        self.assertEqual(keys("ping"), [0, 0, 0])
        self.assertIn("write", cmds["set"]["flags"])
        self.assertTrue(r.execute_command("AUTH", "default", "anything"))
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("AUTH", "x")
        self.assertIn("called without any password configured", str(e.exception))
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("AUTH", "someone", "x")
        self.assertIn("WRONGPASS", str(e.exception))
        info = r.info("server", "clients")  # redis-py: the fields of the sections asked for
        self.assertIn("uptime_in_seconds", info)
        self.assertIn("connected_clients", info)
        self.assertNotIn("total_commands_processed", info)
        k = self.sock(s)
        k.sendall(b"$3\r\nPING\r\n" + resp("PING", "a") + resp("PING", "a", "b") +
                  resp("AUTH", "default", "x"))
        got = read_replies(k, 5)
        self.assertTrue(got[0].startswith(b"-ERR unknown command '$3'"), got[0])
        self.assertEqual(got[1:4], [b"+PONG\r\n", b"$1\r\na\r\n",
                                    b"-ERR wrong number of arguments for 'ping' command\r\n"])
        self.assertEqual(got[4], b"+OK\r\n")

    def test_with_password(self):
        s = self.start("--requirepass", "pw")
        r = self.redis(s)
        with self.assertRaises(redis.ResponseError) as e:
            r.execute_command("AUTH", "default", "anything")
        self.assertIn("WRONGPASS", str(e.exception))
        self.assertTrue(r.execute_command("AUTH", "default", "pw"))
        self.assertTrue(r.set("a", "1"))


if __name__ == "__main__":
    kvstest.main("test_server_safety.py")

#!/usr/bin/env python3
"""test_hostile.py -- clients that misbehave, against a real kvs-server.

Usage: python3 test_hostile.py PATH_TO_kvs-server [unittest options]

A server on a network must bound what any one client can make it hold and must keep serving
everyone else. Each test here is one kind of bad client, over raw sockets, and then checks that a
well-behaved client (redis-py) is still served:

  1. A client that pipelines GETs of a 1 MiB value and never reads: cut off at --max-output,
     with the server's memory (VmRSS/VmHWM from /proc) bounded and the cut-off in the log.
  2. 300 clients that each send half a command and go idle: the others are served meanwhile, and
     a half command finished later is answered. SIGTERM with idle clients and one sitting on
     unread replies still stops cleanly (exit 0, the drain is bounded).
  3. Protocol abuse: malformed requests are answered "-ERR Protocol error: ..." and the
     connection is closed, as Redis does.
  4. --maxclients: the client past the limit is refused with Redis's message.
  5. --max-bulk / --max-query: a bulk past the limit is a protocol error; a query buffer past
     the limit closes the connection.
  6. Protected mode (needs root and `ip netns`): bound to 0.0.0.0 without a password, a client
     from another network namespace gets -DENIED, one from loopback is served; with
     --requirepass the same client gets NOAUTH. The namespace and its veth pair (10.200.x.y/30,
     traffic only between this machine's own namespaces) are created and always removed here.

Every loop is bounded in count and time; nothing asserts on how fast anything is.
"""
import os
import select
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server, read_reply, read_until_closed, resp, run  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

MIB = 1 << 20


class Base(kvstest.ServerTestCase):
    def assertServes(self, s, r=None):
        """A well-behaved client is served: SET, GET, PING."""
        r = r or self.redis(s)
        key = "probe-%d" % time.monotonic_ns()
        self.assertTrue(r.set(key, "ok"))
        self.assertEqual(r.get(key), b"ok")
        self.assertTrue(r.ping())


class OutputBufferTest(Base):
    LIMIT_KB = 200 * 1024          # the server's resident memory must stay below 200 MB
    WATCHDOG_KB = 400 * 1024       # past this, kill the server rather than risk the machine

    def watch(self, s, pattern, timeout=20.0):
        """Wait (bounded) for a log line while watching the server's memory; a server that
        grows past WATCHDOG_KB is killed and the test fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = s.wait_for_stderr(pattern, 0.2)
            if m:
                return m
            if not s.running():
                self.fail("kvs-server died: %s\n%s" % (s.proc.returncode, s.stderr_text()))
            rss = s.rss_kb()
            if rss > self.WATCHDOG_KB:
                s.kill9()
                self.fail("kvs-server holds %d KiB for a client that does not read" % rss)
        return None

    def test_pipelined_gets_never_read(self):
        s = self.start("--max-output", "8mb")
        r = self.redis(s)
        big = os.urandom(MIB)
        self.assertTrue(r.set("big", big))
        k = self.sock(s, timeout=10, rcvbuf=64 * 1024)
        sent_all = True
        try:
            k.sendall(resp("GET", "big") * 2000)  # 2,000 MiB of replies asked for, none read
        except (socket.timeout, ConnectionError):
            sent_all = False  # the server may already have cut it off: fine
        m = self.watch(s, r"output buffer past its limit")
        self.assertTrue(m, "no output-buffer cut-off in the log:\n" + s.stderr_text())
        self.assertLess(s.peak_rss_kb(), self.LIMIT_KB)
        data, how = read_until_closed(k, timeout=20, limit=64 * MIB)
        self.assertIn(how, ("eof", "reset"), "the connection should have been closed (%s after "
                      "%d bytes, sent all: %s)" % (how, len(data), sent_all))
        self.assertLess(len(data), 64 * MIB)
        self.assertLess(s.peak_rss_kb(), self.LIMIT_KB)
        self.assertServes(s)
        self.assertEqual(r.get("big"), big)
        self.assertEqual(s.stop(), 0)

    def test_trickled_gets_never_read(self):
        """GETs sent a few at a time while earlier replies sit unread in the kernel: the limit
        counts what is queued and what is being written."""
        s = self.start("--max-output", "8mb")
        r = self.redis(s)
        big = os.urandom(MIB)
        self.assertTrue(r.set("big", big))
        k = self.sock(s, timeout=10, rcvbuf=64 * 1024)
        req = resp("GET", "big") * 4
        sent = 0
        cut = False
        for _ in range(500):  # at most 2,000 GETs
            try:
                k.sendall(req)
            except (socket.timeout, ConnectionError):
                cut = True
                break
            sent += 4
            if s.wait_for_stderr(r"output buffer past its limit", 0.01):
                break
        m = self.watch(s, r"output buffer past its limit")
        self.assertTrue(m, "no output-buffer cut-off after %d GETs (send failed: %s):\n%s"
                        % (sent, cut, s.stderr_text()))
        data, how = read_until_closed(k, timeout=20, limit=64 * MIB)
        self.assertIn(how, ("eof", "reset"))
        self.assertLess(s.peak_rss_kb(), self.LIMIT_KB)
        self.assertServes(s)
        self.assertEqual(r.get("big"), big)
        self.assertEqual(s.stop(), 0)


class IdleHalfCommandsTest(Base):
    N = 300

    def test_half_commands(self):
        s = self.start()
        half = b"*2\r\n$3\r\nGET\r\n$3\r\nfo"
        socks = []
        try:
            for _ in range(self.N):
                k = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                socks.append(k)
                k.sendall(half)
            r = self.redis(s)
            for i in range(100):
                self.assertTrue(r.set("key%d" % i, "value%d" % i))
                self.assertEqual(r.get("key%d" % i), ("value%d" % i).encode())
            self.assertEqual(r.dbsize(), 100)
            # the loops adopt accepted sockets asynchronously: under load the last of the N
            # may still be on their way from the listener (bounded wait)
            deadline = time.monotonic() + 10
            while (r.info("clients")["connected_clients"] < self.N + 1
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertGreaterEqual(r.info("clients")["connected_clients"], self.N + 1)
            # none of the idle ones got anything
            readable, _, _ = select.select(socks, [], [], 0)
            self.assertEqual(readable, [])
            # a half command finished later is answered (GET fo: nil); then the other half
            # of a second one, in single bytes
            socks[0].sendall(b"o\r\n")
            self.assertEqual(read_reply(socks[0]), b"$-1\r\n")
            r.set("foo", "bar")
            for b in b"o\r\n":
                socks[1].sendall(bytes([b]))
            self.assertEqual(read_reply(socks[1]), b"$3\r\nbar\r\n")
        finally:
            for k in socks:
                k.close()
        # the server notices the closes: the count comes back down (bounded poll)
        n = None
        for _ in range(100):
            n = r.info("clients")["connected_clients"]
            if n == 1:
                break
            time.sleep(0.05)
        self.assertEqual(n, 1)
        self.assertServes(s, r)
        self.assertEqual(s.stop(), 0)


    def test_clean_stop_with_stuck_clients(self):
        """SIGTERM while clients hold half commands and a client sits on 20 MiB of unread
        replies: the server's drain is bounded, so it still stops by itself with status 0 (the
        harness would otherwise need SIGKILL, and stop() fails on that)."""
        s = self.start()
        r = self.redis(s)
        r.set("big", os.urandom(MIB))
        stuck = self.sock(s, rcvbuf=64 * 1024)
        stuck.sendall(resp("GET", "big") * 20)
        idle = []
        for _ in range(100):
            k = self.sock(s)
            k.sendall(b"*2\r\n$3\r\nGET")
            idle.append(k)
        head = b""
        while len(head) < 10:  # the GETs are being answered (and the rest sits unread)
            chunk = stuck.recv(10 - len(head))
            self.assertTrue(chunk, "closed before any reply")
            head += chunk
        self.assertEqual(head, b"$1048576\r\n")
        self.assertEqual(s.stop(), 0)
        data, how = read_until_closed(stuck, timeout=10, limit=64 * MIB)
        self.assertIn(how, ("eof", "reset"))
        for k in idle:
            self.assertIn(read_until_closed(k, timeout=10)[1], ("eof", "reset"))


class ProtocolAbuseTest(Base):
    CASES = [
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
        (b"*1\r\n$3\r\nGETxx", "expected CRLF after bulk data"),
        (b"A" * (70 * 1024), "too big inline request"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\n", "expected CRLF"),
        (b"*3000000\r\n", "invalid multibulk length"),
        (b'SET "abc 1\r\n', "unbalanced quotes"),
        (b"PING\r\n*1\r\n$x\r\n", "invalid bulk length"),  # after a good command
    ]

    def test_malformed(self):
        s = self.start()
        r = self.redis(s)
        for payload, why in self.CASES:
            with self.subTest(payload=payload[:40]):
                k = self.sock(s)
                try:
                    k.sendall(payload)
                except ConnectionError:
                    pass  # closed before all of it was taken: the reply may still be there
                data, how = read_until_closed(k, timeout=10)
                k.close()
                if payload.startswith(b"PING\r\n"):
                    self.assertTrue(data.startswith(b"+PONG\r\n"), data)
                    data = data[len(b"+PONG\r\n"):]
                self.assertTrue(data.startswith(b"-ERR Protocol error"), data[:200])
                self.assertIn(why.encode(), data)
                self.assertTrue(data.endswith(b"\r\n") and data.count(b"\r\n") == 1, data)
                self.assertIn(how, ("eof", "reset"), "the connection must be closed")
                self.assertServes(s, r)
        self.assertEqual(r.dbsize(), len(self.CASES))  # only the probes' keys
        self.assertEqual(s.stop(), 0)

    def test_inline_and_multibulk_still_work(self):
        # the good forms of the same shapes, so the cases above fail for the right reason
        s = self.start()
        k = self.sock(s)
        k.sendall(b'SET "a b" "x\\r\\ny"\r\n' + resp("GET", "a b") + b"GET 'a b'\r\n")
        self.assertEqual(read_reply(k, n=3), b"+OK\r\n$4\r\nx\r\ny\r\n$4\r\nx\r\ny\r\n")
        self.assertEqual(s.stop(), 0)


class MaxClientsTest(Base):
    def test_maxclients(self):
        s = self.start("--maxclients", "10")
        socks = []
        for i in range(10):
            k = self.sock(s)
            k.sendall(b"PING\r\n")
            self.assertEqual(read_reply(k), b"+PONG\r\n", "client %d" % (i + 1))
            socks.append(k)
        k11 = self.sock(s)
        data, how = read_until_closed(k11, timeout=10)
        self.assertEqual(data, b"-ERR max number of clients reached\r\n")
        self.assertIn(how, ("eof", "reset"))
        # the ten are still served
        for k in socks:
            k.sendall(b"PING\r\n")
            self.assertEqual(read_reply(k), b"+PONG\r\n")
        # one leaves: a newcomer gets its place (bounded retries: the close is asynchronous)
        socks.pop().close()
        reply = None
        for _ in range(50):
            k = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            try:
                k.sendall(b"PING\r\n")
                reply = read_reply(k)
            finally:
                k.close()
            if reply == b"+PONG\r\n":
                break
            self.assertEqual(reply, b"-ERR max number of clients reached\r\n")
            time.sleep(0.05)
        self.assertEqual(reply, b"+PONG\r\n")
        for k in socks:
            k.close()
        # the closes reach the server asynchronously: a new client may still find it full
        r = self.redis(s)
        for _ in range(50):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        self.assertGreaterEqual(r.info("stats")["rejected_connections"], 1)
        self.assertEqual(r.config_get("maxclients"), {"maxclients": "10"})
        self.assertEqual(s.stop(), 0)


class LimitsTest(Base):
    def test_max_bulk(self):
        s = self.start("--max-bulk", "1kb", "--max-query", "1mb")
        k = self.sock(s)
        k.sendall(resp("SET", "ok", b"x" * 1024))
        self.assertEqual(read_reply(k), b"+OK\r\n")
        k.sendall(b"*2\r\n$3\r\nGET\r\n$2000\r\n")
        data, how = read_until_closed(k, timeout=10)
        self.assertEqual(data, b"-ERR Protocol error: invalid bulk length\r\n")
        self.assertIn(how, ("eof", "reset"))
        k = self.sock(s)
        try:
            k.sendall(resp("SET", "toobig", b"x" * 1025))
        except ConnectionError:
            pass
        data, how = read_until_closed(k, timeout=10)
        self.assertEqual(data, b"-ERR Protocol error: invalid bulk length\r\n")
        r = self.redis(s)
        self.assertEqual(r.get("ok"), b"x" * 1024)
        self.assertIsNone(r.get("toobig"))
        self.assertEqual(s.stop(), 0)

    def test_max_query(self):
        s = self.start("--max-bulk", "1kb", "--max-query", "1mb")
        k = self.sock(s)
        arg = b"$1000\r\n" + b"q" * 1000 + b"\r\n"
        sent = 0
        try:
            k.sendall(b"*200000\r\n")
            for _ in range(2000):  # up to ~2 MB, each bulk within --max-bulk, never complete
                k.sendall(arg)
                sent += len(arg)
        except (socket.timeout, ConnectionError):
            pass
        data, how = read_until_closed(k, timeout=10)
        self.assertIn(how, ("eof", "reset"), "sent %d bytes, still open" % sent)
        self.assertEqual(data, b"")  # closed without running anything
        self.assertTrue(s.wait_for_stderr(r"query buffer past its limit", 10), s.stderr_text())
        self.assertServes(s)
        self.assertLess(s.peak_rss_kb(), 200 * 1024)
        self.assertEqual(s.stop(), 0)


NS_CLIENT = r"""
import socket, sys
host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode().decode("unicode_escape").encode("latin-1")
k = socket.create_connection((host, port), timeout=10)
k.sendall(payload)
k.settimeout(2)
data = b""
try:
    while len(data) < 4096:
        b = k.recv(4096)
        if not b:
            break
        data += b
        if data.count(b"\r\n") >= payload.count(b"\r\n"):
            break
except (socket.timeout, ConnectionError):
    pass
sys.stdout.write(data.hex())
"""


class ProtectedModeTest(Base):
    def ip(self, *args, ns=None, check=True):
        argv = ["ip", *(["-n", ns] if ns else []), *args]
        r = run(argv, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
        return r

    def pick_subnet(self):
        used = run(["ip", "-o", "-4", "addr", "show"], timeout=30).stdout
        used += run(["ip", "-4", "route", "show", "table", "all"], timeout=30).stdout
        base = os.getpid()
        for i in range(64):
            x = (base + i) % 256
            y = 4 * ((base // 256 + i) % 64)
            if "10.200.%d." % x not in used:
                return x, y
        self.skipTest("no free 10.200.x.0/30 subnet")

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("protected mode test needs root (network namespaces)")
        if not shutil.which("ip"):
            self.skipTest("protected mode test needs ip (iproute2)")
        r = run(["ip", "netns", "list"], timeout=30)
        if r.returncode != 0:
            self.skipTest("ip netns does not work here: " + r.stderr.strip())
        tag = "%04x" % (os.getpid() & 0xffff)
        self.ns = "kvstest" + tag
        self.veth_host = "kvsh" + tag
        self.veth_ns = "kvsn" + tag
        x, y = self.pick_subnet()
        self.host_ip = "10.200.%d.%d" % (x, y + 1)
        self.ns_ip = "10.200.%d.%d" % (x, y + 2)
        r = run(["ip", "netns", "add", self.ns], timeout=30)
        if r.returncode != 0:
            self.skipTest("cannot create a network namespace: " + r.stderr.strip())
        self.addCleanup(run, ["ip", "netns", "del", self.ns], timeout=30)
        r = run(["ip", "link", "add", self.veth_host, "type", "veth", "peer", "name",
                 self.veth_ns], timeout=30)
        if r.returncode != 0:
            self.skipTest("cannot create a veth pair: " + r.stderr.strip())
        self.addCleanup(run, ["ip", "link", "del", self.veth_host], timeout=30)
        self.ip("link", "set", self.veth_ns, "netns", self.ns)
        self.ip("addr", "add", self.host_ip + "/30", "dev", self.veth_host)
        self.ip("link", "set", self.veth_host, "up")
        self.ip("addr", "add", self.ns_ip + "/30", "dev", self.veth_ns, ns=self.ns)
        self.ip("link", "set", self.veth_ns, "up", ns=self.ns)
        self.ip("link", "set", "lo", "up", ns=self.ns)

    def from_ns(self, port, payload):
        """Send payload to host_ip:port from inside the namespace; returns what came back."""
        r = run(["ip", "netns", "exec", self.ns, sys.executable, "-c", NS_CLIENT, self.host_ip,
                 str(port), payload], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return bytes.fromhex(r.stdout.strip())

    def test_protected_mode(self):
        s = self.start(addr="0.0.0.0:0")
        self.assertIn("0.0.0.0:%d" % s.port, s.stderr_text())
        self.assertTrue(s.wait_for_stderr("protected mode", 10), s.stderr_text())
        got = self.from_ns(s.port, r"PING\r\n")
        self.assertTrue(got.startswith(b"-DENIED"), got)
        # from loopback: served
        k = self.sock(s)
        k.sendall(b"PING\r\n")
        self.assertEqual(read_reply(k), b"+PONG\r\n")
        self.assertServes(s)
        self.assertEqual(s.stop(), 0)

    def test_requirepass_instead(self):
        s = self.start("--requirepass", "pw", addr="0.0.0.0:0")
        got = self.from_ns(s.port, r"PING\r\n")
        self.assertTrue(got.startswith(b"-NOAUTH"), got)
        self.assertNotIn("protected mode", s.stderr_text())
        got = self.from_ns(s.port, r"AUTH pw\r\nPING\r\n")
        self.assertEqual(got, b"+OK\r\n+PONG\r\n")
        self.assertEqual(self.redis(s, password="pw").ping(), True)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    kvstest.main("test_hostile.py")

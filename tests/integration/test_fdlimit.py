#!/usr/bin/env python3
"""test_fdlimit.py -- kvs-server when file descriptors run short.

Usage: python3 test_fdlimit.py PATH_TO_kvs-server [unittest options]

Every client costs the server a file descriptor, and the open-file limit is often low (1024
under systemd). The server must size itself to it, as Redis does, and never spin or flood its
log when it runs out:

  1. Start-up under a low limit: the soft limit is raised as far as the hard limit allows; if
     that is not enough, maxclients is lowered to fit with one warning (and CONFIG GET / INFO
     report the number in force); if nothing is left for clients, the server refuses to start.
  2. A full server: the clients past maxclients get "-ERR max number of clients reached" and are
     closed; while the others are held the server idles (CPU time from /proc/PID/stat stays
     small: a spin detector, not a speed test) and its log stays short; once they leave, a new
     client is served.
  3. accept4 failing with EMFILE (the live server's limit is lowered under it with prlimit(2),
     so maxclients no longer fits): one warning, the waiting clients answered with the same
     error, no spinning, and service back with one more log line once descriptors are free.

The server's limit is set with prlimit(1) (util-linux), which execs the server in its own
process, so the harness still addresses it by pid. Every loop is bounded in count and time;
all traffic is to 127.0.0.1.
"""
import os
import re
import resource
import select
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvstest import Server, read_reply, run  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

SERVER = None
REFUSED = b"-ERR max number of clients reached\r\n"
LOWERED_RE = re.compile(r"maxclients lowered from (\d+) to (\d+)")
CPU_BOUND = 0.5     # seconds of CPU the server may use while idling IDLE seconds
IDLE = 2.0
LOG_BOUND = 100     # lines


class LimitedServer(Server):
    """A kvs-server run under `prlimit --nofile=SOFT:HARD`."""

    def __init__(self, binary, dir, *args, nofile=None, **kw):
        super().__init__(binary, dir, *args, **kw)
        self.nofile = nofile

    def argv(self):
        if self.nofile is None:
            return super().argv()
        return ["prlimit", "--nofile=%d:%d" % self.nofile, "--"] + super().argv()


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_numbers(pid):
    return sorted(int(n) for n in os.listdir("/proc/%d/fd" % pid))


def lowest_free_fd(pid):
    used = set(fd_numbers(pid))
    n = 0
    while n in used:
        n += 1
    return n


def read_all_until_closed(socks, timeout=10.0):
    """Read every socket until it is closed (EOF or reset), all within one deadline. Returns a
    list of (data, how) in the order of socks, how in {"eof", "reset", "timeout"}."""
    deadline = time.monotonic() + timeout
    data = {k: b"" for k in socks}
    how = {}
    for k in socks:
        k.setblocking(False)
    open_ = list(socks)
    while open_:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(open_, [], [], min(left, 0.5))
        for k in ready:
            try:
                b = k.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                how[k] = "reset"
                open_.remove(k)
                continue
            if b:
                data[k] += b
            else:
                how[k] = "eof"
                open_.remove(k)
    return [(data[k], how.get(k, "timeout")) for k in socks]


class Base(unittest.TestCase):
    def setUp(self):
        if not shutil.which("prlimit"):
            self.skipTest("prlimit (util-linux) not installed")
        tmp = tempfile.TemporaryDirectory(prefix="kvs-fdlimit-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def start(self, *args, nofile=None, **kw):
        s = LimitedServer(SERVER, self.dir, "--threads", "2", *args, nofile=nofile, **kw)
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def redis(self, s):
        r = redis.Redis(port=s.port, socket_timeout=10, socket_connect_timeout=10)
        self.addCleanup(r.close)
        return r

    def sock(self, s):
        k = s.connect(timeout=10)
        self.addCleanup(k.close)
        return k

    def lowered_to(self, s):
        m = LOWERED_RE.search(s.stderr_text())
        self.assertIsNotNone(m, "no 'maxclients lowered' warning:\n" + s.stderr_text())
        self.assertEqual(m.group(1), "10000")
        return int(m.group(2))

    def assertIdles(self, s):
        """The server, holding its connections and with clients refused, uses little CPU."""
        c0 = cpu_seconds(s.pid)
        time.sleep(IDLE)
        used = cpu_seconds(s.pid) - c0
        self.assertLess(used, CPU_BOUND, "the server spins: %.2fs of CPU in %.1fs idle"
                        % (used, IDLE))

    def assertServedSoon(self, s, timeout=10.0):
        """A new client gets PONG within timeout seconds (bounded retries: closes on the server
        side and its accept retry are asynchronous). Returns the replies seen before."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            k = s.connect(timeout=5)
            try:
                k.sendall(b"PING\r\n")
                reply = read_reply(k, timeout=2)
            finally:
                k.close()
            if reply == b"+PONG\r\n":
                return seen
            seen.append(reply)
            time.sleep(0.05)
        self.fail("no new client served within %.0fs; replies: %r\n%s"
                  % (timeout, seen[-5:], s.stderr_text()))

    def fill(self, s, n):
        """n clients, each served (PING answered) and held."""
        held = []
        for i in range(n):
            k = self.sock(s)
            k.sendall(b"PING\r\n")
            self.assertEqual(read_reply(k), b"+PONG\r\n", "client %d of %d" % (i + 1, n))
            held.append(k)
        return held


class StartTest(Base):
    def test_maxclients_lowered_to_the_limit(self):
        s = self.start(nofile=(64, 64))
        n = self.lowered_to(s)
        self.assertGreaterEqual(n, 1)
        self.assertLess(n, 64)
        self.assertEqual(s.stderr_text().count("maxclients lowered"), 1)
        self.assertRegex(s.stderr_text(), r"listening on .*maxclients %d\b" % n)
        self.assertEqual(s.stop(), 0)

    def test_maxclients_reported(self):
        # CONFIG GET and INFO say the number in force, not the one asked for
        s = self.start(nofile=(64, 64))
        n = self.lowered_to(s)
        r = self.redis(s)
        self.assertEqual(r.config_get("maxclients"), {"maxclients": str(n)})
        self.assertEqual(r.info("clients")["maxclients"], n)
        self.assertEqual(s.stop(), 0)

    def test_soft_limit_raised(self):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1024:
            self.skipTest("hard open-file limit %d < 1024" % hard)
        s = self.start("--maxclients", "200", nofile=(64, 1024))
        self.assertRegex(s.stderr_text(), r"raised the open-file limit from 64 to \d+")
        self.assertNotIn("maxclients lowered", s.stderr_text())
        with open("/proc/%d/limits" % s.pid) as f:
            soft = int(re.search(r"Max open files\s+(\d+)", f.read()).group(1))
        self.assertGreaterEqual(soft, 200 + 32)
        self.assertLessEqual(soft, 1024)
        self.assertEqual(self.redis(s).config_get("maxclients"), {"maxclients": "200"})
        self.assertEqual(s.stop(), 0)

    def test_no_room_for_clients(self):
        p = run(["prlimit", "--nofile=40:40", "--", SERVER, "--addr", "127.0.0.1:0",
                 "--dir", self.dir, "--threads", "2"], timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("leaves no file descriptor for clients", p.stderr)
        self.assertIn("ulimit -n", p.stderr)
        self.assertNotIn("listening on", p.stderr)


class FullTest(Base):
    def test_full_server_refuses_idles_and_recovers(self):
        s = self.start(nofile=(64, 64))
        n = self.lowered_to(s)
        held = self.fill(s, n)
        self.assertLess(len(fd_numbers(s.pid)), 64)
        extra = [self.sock(s) for _ in range(100 - n)]
        for i, (data, how) in enumerate(read_all_until_closed(extra, timeout=20)):
            self.assertEqual((data, how in ("eof", "reset")), (REFUSED, True),
                             "extra client %d: %r %s" % (i + 1, data, how))
        self.assertIdles(s)
        for k in held:  # still served
            k.sendall(b"PING\r\n")
            self.assertEqual(read_reply(k), b"+PONG\r\n")
        log = s.stderr_text()
        self.assertNotIn("accept:", log)  # maxclients fitted: accept4 never ran out
        self.assertLess(len(log.splitlines()), LOG_BOUND)
        for k in held:
            k.close()
        self.assertServedSoon(s)
        r = self.redis(s)
        self.assertEqual(r.ping(), True)
        self.assertGreaterEqual(r.info("stats")["rejected_connections"], 100 - n)
        self.assertEqual(s.stop(), 0)


class EmfileTest(Base):
    def test_accept_out_of_descriptors(self):
        s = self.start()
        held = self.fill(s, 5)
        # Lower the live server's soft limit to its lowest free descriptor: the next accept4
        # fails with EMFILE although maxclients has room.
        soft, hard = resource.prlimit(s.pid, resource.RLIMIT_NOFILE)
        self.addCleanup(self.restore_limit, s, soft, hard)
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (lowest_free_fd(s.pid), hard))
        extra = [self.sock(s) for _ in range(20)]
        for i, (data, how) in enumerate(read_all_until_closed(extra, timeout=20)):
            self.assertEqual((data, how in ("eof", "reset")), (REFUSED, True),
                             "waiting client %d: %r %s" % (i + 1, data, how))
        self.assertIdles(s)
        log = s.stderr_text()
        self.assertEqual(log.count("Too many open files"), 1, log)
        self.assertLess(len(log.splitlines()), LOG_BOUND)
        # the clients leave: descriptors are free, and a newcomer is served
        for k in held:
            k.close()
        self.assertServedSoon(s)
        self.assertIsNotNone(s.wait_for_stderr(r"accepting again after [0-9.]+ s of 'Too many "
                                               r"open files' \(\d+ retries, \d+ waiting", 10))
        r = self.redis(s)
        self.assertGreaterEqual(r.info("stats")["rejected_connections"], 20)
        log = s.stderr_text()
        self.assertEqual(log.count("accept:"), 1, log)
        self.assertEqual(log.count("accepting again"), 1, log)
        self.restore_limit(s, soft, hard)
        self.assertEqual(s.stop(), 0)

    def test_shutdown_while_paused(self):
        # SIGTERM while accept is paused (the limit still lowered): the retry timer closes with
        # the other handles and the stop is clean. Closing the held clients on the way out
        # frees the descriptors the engine's close may need.
        s = self.start()
        self.fill(s, 2)
        soft, hard = resource.prlimit(s.pid, resource.RLIMIT_NOFILE)
        self.addCleanup(self.restore_limit, s, soft, hard)
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (lowest_free_fd(s.pid), hard))
        k = self.sock(s)
        self.assertEqual(read_all_until_closed([k], timeout=10)[0], (REFUSED, "eof"))
        self.assertIsNotNone(s.wait_for_stderr("Too many open files", 10))
        self.assertEqual(s.stop(), 0)
        self.assertNotIn("accepting again", s.stderr_text())

    @staticmethod
    def restore_limit(s, soft, hard):
        if s.running():
            try:
                resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (soft, hard))
            except ProcessLookupError:
                pass


def main():
    global SERVER
    if len(sys.argv) < 2:
        sys.exit("usage: test_fdlimit.py PATH_TO_kvs-server [unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()

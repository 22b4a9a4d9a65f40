#!/usr/bin/env python3
"""test_server_cli.py -- kvs-server and kvs-client as the kvs course tests them: as processes.

Usage: python3 test_server_cli.py PATH_TO_kvs-server PATH_TO_kvs-client [unittest options]

  * kvs-server: invalid invocations exit non-zero with a message on stderr; a busy port is an
    error ("cannot listen"), never a silently shared port; -V prints the version of
    include/kvs.h; the start-up log names the version, the engine and the address; a directory
    written by one engine is refused by the other, with both engines named; a store of on-disk
    format 2 (tests/data/format2) is refused, the message naming `kvs upgrade DIR`, and left
    as it was.
  * kvs-client: set / get / rm with the course's messages and exit codes, against a real server
    of each engine; what was acknowledged survives a kill -9 of the server, and a restart without
    --engine finds the directory's engine; invalid invocations and an unreachable server exit
    non-zero with a message on stderr.

Every server listens on 127.0.0.1:0 (kvstest.Server), every process has a timeout, every test
works in its own temporary directory and stops what it started.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server, run  # noqa: E402

SERVER = None
CLIENT = None
TIMEOUT = 30
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "kvs.h")
FORMAT2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "format2")


def header_version():
    with open(HEADER, encoding="utf-8") as f:
        m = re.search(r'^#define\s+KVS_VERSION_STRING\s+"([^"]+)"', f.read(), re.M)
    if not m:
        raise RuntimeError("no KVS_VERSION_STRING in " + HEADER)
    return m.group(1)


def ping(port):
    """PING over a raw socket: True if the server at port answers +PONG."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PING\r\n")
        return kvstest.read_reply(s) == b"+PONG\r\n"


class Base(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-srvcli-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.data = os.path.join(self.tmp, "data")
        os.mkdir(self.data)

    def server(self, *args, dir=None, **kw):
        return Server(SERVER, dir or self.data, *args, **kw)

    def server_fails(self, *args, dir=None, addr="127.0.0.1:0"):
        """Run kvs-server expecting it to refuse to start: returns the CompletedProcess."""
        argv = [SERVER, "--addr", addr, "--dir", dir or self.data, *args]
        try:
            r = run(argv, timeout=TIMEOUT, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            self.fail("kvs-server %s did not exit (it should refuse to start)" % " ".join(args))
        self.assertNotEqual(r.returncode, 0, "kvs-server %s should fail; stderr: %s"
                            % (" ".join(argv[1:]), r.stderr))
        self.assertTrue(r.stderr.strip(), "kvs-server %s: no message on stderr" % " ".join(args))
        return r

    def client(self, *args, port=None):
        argv = [CLIENT, *args]
        if port is not None:
            argv += ["--addr", "127.0.0.1:%d" % port]
        return run(argv, timeout=TIMEOUT, cwd=self.tmp)

    def expect(self, r, stdout, ok=True, what=""):
        self.assertEqual(r.stdout, stdout, "stdout of %s (stderr: %r)" % (what, r.stderr))
        if ok:
            self.assertEqual(r.returncode, 0, "%s: exit %d, stderr %r" % (what, r.returncode,
                                                                          r.stderr))
        else:
            self.assertNotEqual(r.returncode, 0, "%s should fail" % what)


class ServerInvocationTest(Base):
    def test_invalid_invocations(self):
        cases = [
            (["--no-such-flag", "1"], None),
            (["--engine", "nope"], None),
            (["extra-positional"], None),
        ]
        for args, addr in cases:
            with self.subTest(args=args):
                r = self.server_fails(*args)
                self.assertEqual(r.stdout, "")
        for addr in ["nonsense", "127.0.0.1:99999", "127.0.0.1", "300.1.2.3:80"]:
            with self.subTest(addr=addr):
                r = self.server_fails(addr=addr)
                self.assertIn(addr, r.stderr, "the message should name the bad address")

    def test_flag_without_value(self):
        r = run([SERVER, "--dir", self.data, "--addr"], timeout=TIMEOUT, cwd=self.tmp)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_port_in_use(self):
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        with self.server() as s:
            r = self.server_fails(dir=other, addr="127.0.0.1:%d" % s.port)
            self.assertIn("cannot listen", r.stderr)
            self.assertIn(str(s.port), r.stderr)
            self.assertTrue(ping(s.port), "the first server must still serve its port")
            self.assertEqual(s.stop(), 0)

    def test_version(self):
        v = header_version()
        for binary, flag in ((SERVER, "-V"), (SERVER, "--version"), (CLIENT, "-V")):
            with self.subTest(binary=os.path.basename(binary), flag=flag):
                r = run([binary, flag], timeout=TIMEOUT, cwd=self.tmp)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(v, r.stdout)
                self.assertEqual(len(r.stdout.strip().splitlines()), 1, r.stdout)

    def test_start_log_names_version_engine_address(self):
        v = header_version()
        for engine in ("kvs", "lmdb"):
            with self.subTest(engine=engine):
                d = os.path.join(self.tmp, engine)
                os.mkdir(d)
                with self.server("--engine", engine, dir=d) as s:
                    err = s.stderr_text()
                    self.assertIn(v, err)
                    self.assertRegex(err, r"\bengine %s\b" % engine)
                    self.assertIn("127.0.0.1:%d" % s.port, err)
                    self.assertIn(d, err)
                    self.assertEqual(s.stop(), 0)
                    self.assertTrue(s.wait_for_stderr("stopped cleanly", 1),
                                    "a clean stop should say so: " + s.stderr_text())

    def test_default_engine_is_kvs(self):
        with self.server() as s:
            self.assertRegex(s.stderr_text(), r"\bengine kvs\b")
            self.assertEqual(s.stop(), 0)

    def test_wrong_engine(self):
        for first, second in (("kvs", "lmdb"), ("lmdb", "kvs")):
            with self.subTest(first=first, second=second):
                d = os.path.join(self.tmp, first + "-dir")
                os.mkdir(d)
                with self.server("--engine", first, dir=d) as s:
                    self.assertEqual(s.stop(), 0)
                r = self.server_fails("--engine", second, dir=d)
                self.assertRegex(r.stderr, r"\b%s\b" % first)
                self.assertRegex(r.stderr, r"\b%s\b" % second)
                # the directory is untouched: its own engine still opens it
                with self.server("--engine", first, dir=d) as s:
                    self.assertTrue(ping(s.port))
                    self.assertEqual(s.stop(), 0)

    def test_format2_store_refused(self):
        d = os.path.join(self.tmp, "format2")
        shutil.copytree(FORMAT2, d)
        r = self.server_fails(dir=d)
        self.assertIn("cannot open the data directory", r.stderr)
        self.assertIn("holds a format-2 store", r.stderr)
        self.assertIn("convert it with `kvs upgrade %s`" % d, r.stderr)
        for name in sorted(os.listdir(FORMAT2)):
            with open(os.path.join(FORMAT2, name), "rb") as a, \
                    open(os.path.join(d, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name + " changed")
        self.assertEqual(sorted(os.listdir(d)), sorted(os.listdir(FORMAT2)))


class AccessTest(Base):
    def access_sequence(self, engine):
        with self.server("--engine", engine) as s:
            p = s.port
            self.expect(self.client("set", "k1", "v1", port=p), "", what="set k1 v1")
            self.expect(self.client("get", "k1", port=p), "v1\n", what="get k1")
            self.expect(self.client("set", "k1", "v2", port=p), "", what="set k1 v2")
            self.expect(self.client("get", "k1", port=p), "v2\n", what="get k1 (overwritten)")
            self.expect(self.client("get", "missing", port=p), "Key not found\n",
                        what="get missing")
            r = self.client("rm", "missing", port=p)
            self.expect(r, "", ok=False, what="rm missing")
            self.assertIn("Key not found", r.stderr)
            self.expect(self.client("rm", "k1", port=p), "", what="rm k1")
            self.expect(self.client("get", "k1", port=p), "Key not found\n",
                        what="get k1 after rm")
            self.expect(self.client("set", "k2", "v3", port=p), "", what="set k2 v3")
            s.kill9()
        with self.server() as s:  # no --engine: the directory's own
            self.assertRegex(s.stderr_text(), r"\bengine %s\b" % engine)
            p = s.port
            self.expect(self.client("get", "k2", port=p), "v3\n", what="get k2 after kill -9")
            self.expect(self.client("get", "k1", port=p), "Key not found\n",
                        what="get k1 after kill -9")
            self.assertEqual(s.stop(), 0)

    def test_access_kvs(self):
        self.access_sequence("kvs")

    def test_access_lmdb(self):
        self.access_sequence("lmdb")

    def test_values_with_spaces(self):
        with self.server() as s:
            self.expect(self.client("set", "a key", "a value  with spaces", port=s.port), "",
                        what="set with spaces")
            self.expect(self.client("get", "a key", port=s.port), "a value  with spaces\n",
                        what="get with spaces")
            self.assertEqual(s.stop(), 0)


class ClientInvocationTest(Base):
    def test_invalid_invocations(self):
        # Against a live server, so that only the invocation itself can be what is wrong.
        with self.server() as s:
            addr = "127.0.0.1:%d" % s.port
            cases = [
                [],
                ["--addr", addr],
                ["get", "--addr", addr],
                ["set", "k", "--addr", addr],
                ["rm", "--addr", addr],
                ["get", "k", "extra", "--addr", addr],
                ["set", "k", "v", "extra", "--addr", addr],
                ["rm", "k", "extra", "--addr", addr],
                ["frobnicate", "k", "--addr", addr],
                ["get", "k", "--no-such-flag", "--addr", addr],
                ["get", "k", "--addr", "nonsense"],
                ["get", "k", "--addr", "127.0.0.1:99999"],
                ["get", "k", "--addr"],
            ]
            for args in cases:
                with self.subTest(args=args):
                    r = run([CLIENT, *args], timeout=TIMEOUT, cwd=self.tmp)
                    self.assertNotEqual(r.returncode, 0, "kvs-client %s should fail" % args)
                    self.assertEqual(r.stdout, "", "kvs-client %s" % args)
                    self.assertTrue(r.stderr.strip(), "kvs-client %s: no message on stderr"
                                    % args)
            # nothing above may have written anything
            self.expect(self.client("get", "k", port=s.port), "Key not found\n", what="get k")
            self.assertEqual(s.stop(), 0)

    def test_no_server(self):
        sock, port = kvstest.free_dead_port()  # bound, not listening: connects are refused
        try:
            for args in (["get", "k"], ["set", "k", "v"], ["rm", "k"]):
                with self.subTest(args=args):
                    r = self.client(*args, port=port)
                    self.assertNotEqual(r.returncode, 0)
                    self.assertEqual(r.stdout, "")
                    self.assertTrue(r.stderr.strip(), "no message on stderr")
        finally:
            sock.close()


def main():
    global SERVER, CLIENT
    if len(sys.argv) < 3:
        sys.exit("usage: test_server_cli.py PATH_TO_kvs-server PATH_TO_kvs-client "
                 "[unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    CLIENT = os.path.abspath(sys.argv[2])
    for b in (SERVER, CLIENT):
        if not os.access(b, os.X_OK):
            sys.exit("not an executable: " + b)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])


if __name__ == "__main__":
    main()

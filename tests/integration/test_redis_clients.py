#!/usr/bin/env python3
"""test_redis_clients.py -- real Redis clients against kvs-server.

Usage: python3 test_redis_clients.py PATH_TO_kvs-server [unittest options]

kvs-server's promise is that Redis's own tools work with it unchanged. So this suite uses them:

  * redis-cli, one process per command (as a shell script would), for every command the server
    has: GET SET DEL EXISTS MGET MSET DBSIZE PING ECHO INFO SELECT QUIT COMMAND CONFIG AUTH HELLO
    SHUTDOWN, and for Redis's error shapes (unknown command, wrong arity, NOAUTH, WRONGPASS,
    NOPROTO). Output is read with --no-raw so that types show: "v" is a string, (nil) a nil,
    (integer) 1 an integer, (error) an error.
  * redis-benchmark, pipelined and not: every test runs to the end with a figure.
  * python3-redis (redis-py): binary-safe keys and values, a 1 MiB value, 10,000-command
    pipelines, MGET with missing keys.

The basic set/get/del part runs again with --engine lmdb. Each test starts its own server
(kvstest.Server: port 0, bounded waits, stopped by pid) in its own temporary directory.
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server, run  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

SERVER = None
TIMEOUT = 30
BENCH_TIMEOUT = 120
REDIS_CLI = "/usr/bin/redis-cli"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"


class Base(unittest.TestCase):
    engine = "kvs"

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-redis-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.srv = None

    def start(self, *args):
        """Start a server on self.dir (stopped at the end of the test, whatever happens)."""
        s = Server(SERVER, self.dir, "--engine", self.engine, *args)
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        self.srv = s
        return s

    def cli(self, *args, stdin=None, port=None, extra=()):
        """Run one redis-cli process; returns its stdout (with --no-raw formatting)."""
        port = port or self.srv.port
        argv = [REDIS_CLI, "-p", str(port), "--no-raw", *extra, *args]
        r = run(argv, timeout=TIMEOUT, input=stdin, stdin=None if stdin is not None
                else subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, "redis-cli %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def assertCli(self, args, expected, **kw):
        out = self.cli(*args, **kw)
        self.assertEqual(out, expected, "redis-cli %s" % " ".join(args))

    def assertCliError(self, args, prefix, **kw):
        out = self.cli(*args, **kw)
        self.assertTrue(out.startswith("(error) " + prefix),
                        "redis-cli %s: expected an error starting %r, got %r"
                        % (" ".join(args), prefix, out))

    def stop_clean(self):
        self.assertEqual(self.srv.stop(), 0)


class BasicCommands:
    """SET GET DEL EXISTS through redis-cli: run for both engines."""

    def test_set_get_del_exists(self):
        self.start()
        self.assertCli(["SET", "k", "v"], "OK\n")
        self.assertCli(["GET", "k"], '"v"\n')
        self.assertCli(["SET", "k", "v2"], "OK\n")
        self.assertCli(["GET", "k"], '"v2"\n')
        self.assertCli(["GET", "missing"], "(nil)\n")
        self.assertCli(["EXISTS", "k"], "(integer) 1\n")
        self.assertCli(["EXISTS", "k", "missing", "k"], "(integer) 2\n")
        self.assertCli(["EXISTS", "missing"], "(integer) 0\n")
        self.assertCli(["SET", "k2", "x y z"], "OK\n")
        self.assertCli(["DEL", "k", "missing", "k2"], "(integer) 2\n")
        self.assertCli(["DEL", "k"], "(integer) 0\n")
        self.assertCli(["GET", "k"], "(nil)\n")
        self.assertCli(["EXISTS", "k", "k2"], "(integer) 0\n")
        self.assertCli(["DBSIZE"], "(integer) 0\n")
        self.stop_clean()

    def test_persists_across_restart(self):
        s = self.start()
        self.assertCli(["MSET", "a", "1", "b", "2"], "OK\n")
        self.assertCli(["DEL", "a"], "(integer) 1\n")
        self.stop_clean()
        s = Server(SERVER, self.dir)  # no --engine: the directory's own
        with s:
            self.assertRegex(s.stderr_text(), r"\bengine %s\b" % self.engine)
            self.assertCli(["GET", "a"], "(nil)\n", port=s.port)
            self.assertCli(["GET", "b"], '"2"\n', port=s.port)
            self.assertCli(["DBSIZE"], "(integer) 1\n", port=s.port)
            self.assertEqual(s.stop(), 0)

    def test_info_engine(self):
        self.start()
        self.assertCli(["MSET", "a", "1", "b", "2", "c", "3"], "OK\n")
        info = self.cli("INFO", "engine", extra=["--raw"])
        self.assertIn("engine:%s\n" % self.engine, info)
        self.assertIn("keys:3\n", info)
        self.stop_clean()


class KvsBasicTest(BasicCommands, Base):
    engine = "kvs"


class LmdbBasicTest(BasicCommands, Base):
    engine = "lmdb"


class RedisCliTest(Base):
    def test_mset_mget_dbsize(self):
        self.start()
        self.assertCli(["DBSIZE"], "(integer) 0\n")
        self.assertCli(["MSET", "a", "1", "b", "2", "c", "3"], "OK\n")
        self.assertCli(["MGET", "a", "nope", "c"], '1) "1"\n2) (nil)\n3) "3"\n')
        self.assertCli(["MGET", "b"], '1) "2"\n')
        self.assertCli(["DBSIZE"], "(integer) 3\n")
        self.assertCli(["MSET", "a", "10"], "OK\n")  # overwrite: no new key
        self.assertCli(["DBSIZE"], "(integer) 3\n")
        self.assertCliError(["MSET", "a", "1", "b"], "ERR wrong number of arguments")
        self.assertCli(["GET", "b"], '"2"\n')  # the refused MSET wrote nothing
        self.stop_clean()

    def test_ping_echo(self):
        self.start()
        self.assertCli(["PING"], "PONG\n")
        self.assertCli(["PING", "hello there"], '"hello there"\n')
        self.assertCli(["ECHO", "hello world"], '"hello world"\n')
        self.assertCli(["ECHO", ""], '""\n')
        self.assertCliError(["ECHO"], "ERR wrong number of arguments for 'echo' command")
        self.stop_clean()

    def test_info(self):
        self.start()
        ks = self.cli("INFO", "keyspace", extra=["--raw"])
        self.assertIn("# Keyspace", ks)
        self.assertNotIn("db0:", ks)  # as Redis: no line for an empty database
        for i in range(7):
            self.assertCli(["SET", "key%d" % i, "value%d" % i], "OK\n")
        self.assertCli(["SET", "key0", "again"], "OK\n")
        ks = self.cli("INFO", "keyspace", extra=["--raw"])
        self.assertRegex(ks, r"db0:keys=7,")
        eng = self.cli("INFO", "engine", extra=["--raw"])  # "engine": the kvs section's alias
        self.assertIn("# kvs", eng)
        self.assertIn("engine:kvs\n", eng)
        self.assertIn("keys:7\n", eng)
        self.assertNotIn("# Keyspace", eng)  # a section asks for that section only
        self.assertCli(["DEL", "key3"], "(integer) 1\n")
        self.assertRegex(self.cli("INFO", "keyspace", extra=["--raw"]), r"db0:keys=6,")
        everything = self.cli("INFO", extra=["--raw"])
        for section in ("# Server", "# Clients", "# Stats", "# kvs", "# Keyspace"):
            self.assertIn(section, everything)
        self.assertRegex(everything, r"redis_version:\d+\.\d+")
        self.assertIn("tcp_port:%d\n" % self.srv.port, everything)
        self.assertIn("process_id:%d\n" % self.srv.pid, everything)
        self.stop_clean()

    def test_select(self):
        self.start()
        self.assertCli(["SELECT", "0"], "OK\n")
        self.assertCliError(["SELECT", "1"], "ERR DB index is out of range")
        self.assertCliError(["SELECT", "x"], "ERR")
        self.stop_clean()

    def test_quit(self):
        self.start()
        self.assertCli(["QUIT"], "OK\n")
        # On one connection: replies up to QUIT, then the server closes; nothing after it runs.
        with self.srv.connect() as sock:
            sock.sendall(b"PING\r\nQUIT\r\nSET afterquit 1\r\n")
            data, how = kvstest.read_until_closed(sock, timeout=10)
        self.assertEqual(data, b"+PONG\r\n+OK\r\n")
        self.assertIn(how, ("eof", "reset"))
        self.assertCli(["EXISTS", "afterquit"], "(integer) 0\n")
        self.stop_clean()

    def test_command(self):
        self.start()
        out = self.cli("COMMAND", "COUNT")
        m = re.fullmatch(r"\(integer\) (\d+)\n", out)
        self.assertTrue(m, out)
        count = int(m.group(1))
        r = redis.Redis(port=self.srv.port)
        self.addCleanup(r.close)
        table = r.execute_command("COMMAND")
        self.assertEqual(len(table), count)
        names = {n.decode() if isinstance(n, bytes) else n for n in table}
        for name in ("get", "set", "del", "exists", "mget", "mset", "dbsize", "ping", "echo",
                     "info", "select", "quit", "command", "config", "auth", "hello",
                     "shutdown"):
            self.assertIn(name, names)
        self.assertEqual(table["get"]["arity"], 2)
        self.assertEqual(table["set"]["arity"], -3)
        self.stop_clean()

    def test_config_get(self):
        self.start()
        self.assertCli(["CONFIG", "GET", "save"], '1) "save"\n2) ""\n')
        self.assertCli(["CONFIG", "GET", "no-such-parameter"], "(empty array)\n")
        self.assertCliError(["CONFIG", "SET", "save", ""], "ERR")
        self.stop_clean()

    def test_unknown_command_and_arity(self):
        self.start()
        self.assertCliError(["FOOBAR", "x"], "ERR unknown command 'FOOBAR'")
        self.assertCliError(["GET"], "ERR wrong number of arguments for 'get' command")
        self.assertCliError(["GET", "a", "b"], "ERR wrong number of arguments for 'get' command")
        self.assertCliError(["SET", "k"], "ERR wrong number of arguments for 'set' command")
        self.assertCliError(["DEL"], "ERR wrong number of arguments for 'del' command")
        self.assertCliError(["MGET"], "ERR wrong number of arguments for 'mget' command")
        self.assertCliError(["SELECT"], "ERR wrong number of arguments for 'select' command")
        self.assertCli(["DBSIZE"], "(integer) 0\n")  # none of it wrote anything
        self.stop_clean()

    def test_hello(self):
        self.start()
        out = self.cli("HELLO")
        self.assertIn('"server"\n', out)
        self.assertIn('"kvs"\n', out)
        self.assertRegex(out, r'"proto"\n\s*\d+\) \(integer\) 2\n')
        self.assertIn('"proto"', self.cli("HELLO", "2"))
        self.assertCliError(["HELLO", "3"], "NOPROTO")
        self.assertCliError(["HELLO", "abc"], "ERR")
        self.stop_clean()

    def test_auth_without_password(self):
        self.start()
        self.assertCliError(["AUTH", "pw"], "ERR AUTH <password> called without any password "
                                            "configured")
        self.stop_clean()

    def test_shutdown(self):
        s = self.start()
        self.assertCli(["SET", "k", "persisted"], "OK\n")
        self.assertCli(["MSET", "a", "1", "b", "2"], "OK\n")
        run([REDIS_CLI, "-p", str(s.port), "SHUTDOWN"], timeout=TIMEOUT)
        rc = s.wait_exit(10)
        self.assertIsNotNone(rc, "kvs-server still runs 10 s after SHUTDOWN")
        self.assertEqual(rc, 0, s.stderr_text())
        self.assertIn("SHUTDOWN", s.stderr_text())
        with Server(SERVER, self.dir) as s2:
            self.assertCli(["GET", "k"], '"persisted"\n', port=s2.port)
            self.assertCli(["MGET", "a", "b"], '1) "1"\n2) "2"\n', port=s2.port)
            self.assertCli(["DBSIZE"], "(integer) 3\n", port=s2.port)
            self.assertEqual(s2.stop(), 0)


class AuthTest(Base):
    PW = "s3cret pass"

    def test_auth(self):
        self.start("--requirepass", self.PW)
        self.assertCliError(["GET", "k"], "NOAUTH")
        self.assertCliError(["PING"], "NOAUTH")
        self.assertCliError(["SET", "k", "v"], "NOAUTH")
        self.assertCliError(["AUTH", "wrong"], "WRONGPASS")
        self.assertCliError(["AUTH", "default", "wrong"], "WRONGPASS")
        self.assertCliError(["AUTH", "someone", self.PW], "WRONGPASS")
        self.assertCli(["AUTH", self.PW], "OK\n")
        # AUTH, then commands on the same connection (redis-cli reading commands from stdin)
        out = self.cli(stdin='AUTH "%s"\nSET k v\nGET k\nDBSIZE\n' % self.PW)
        self.assertEqual(out, 'OK\nOK\n"v"\n(integer) 1\n')
        out = self.cli(stdin='AUTH default "%s"\nGET k\n' % self.PW)
        self.assertEqual(out, 'OK\n"v"\n')
        # a wrong password does not authenticate the connection
        out = self.cli(stdin='AUTH nope\nGET k\n')
        self.assertTrue(out.startswith("(error) WRONGPASS"), out)
        self.assertIn("(error) NOAUTH", out)
        # redis-cli's own -a
        self.assertCli(["GET", "k"], '"v"\n', extra=["-a", self.PW, "--no-auth-warning"])
        # still nothing without a password
        self.assertCliError(["GET", "k"], "NOAUTH")
        self.stop_clean()

    def test_hello_auth(self):
        self.start("--requirepass", self.PW)
        self.assertCliError(["HELLO"], "NOAUTH")
        out = self.cli(stdin='HELLO 2 AUTH default "%s"\nSET h 1\nGET h\n' % self.PW)
        self.assertIn('"server"', out)
        self.assertTrue(out.endswith('OK\n"1"\n'), out)
        self.assertCliError(["HELLO", "2", "AUTH", "default", "wrong"], "WRONGPASS")
        self.assertCliError(["HELLO", "2", "AUTH", "other", self.PW], "WRONGPASS")
        self.assertCliError(["HELLO", "3", "AUTH", "default", self.PW], "NOPROTO")
        self.assertCliError(["HELLO", "3"], "NOPROTO")
        # redis-py authenticates with AUTH on connect
        r = redis.Redis(port=self.srv.port, password=self.PW)
        self.addCleanup(r.close)
        self.assertEqual(r.get("h"), b"1")
        bad = redis.Redis(port=self.srv.port, password="wrong")
        self.addCleanup(bad.close)
        with self.assertRaises(redis.exceptions.ResponseError) as cm:  # AuthenticationError too
            bad.ping()
        self.assertIn("WRONGPASS", str(cm.exception))
        self.stop_clean()


class BenchmarkTest(Base):
    NAMES = ["PING_INLINE", "PING_MBULK", "SET", "GET", r"MSET \(10 keys\)"]

    def bench(self, *extra):
        argv = [REDIS_BENCHMARK, "-p", str(self.srv.port), "-t", "set,get,mset,ping",
                "-n", "20000", "-c", "20", "-q", *extra]
        r = run(argv, timeout=BENCH_TIMEOUT)
        self.assertEqual(r.returncode, 0, "%s\nstdout: %s\nstderr: %s"
                         % (" ".join(argv), r.stdout[-2000:], r.stderr[-2000:]))
        out = r.stdout + r.stderr
        lines = re.split(r"[\r\n]+", out)
        for name in self.NAMES:
            final = [ln for ln in lines if re.match(r"\s*%s: [0-9.]+ requests per second" % name,
                                                    ln)]
            self.assertEqual(len(final), 1, "%s: no result line in:\n%s" % (name, out[-3000:]))
            rps = float(re.search(r": ([0-9.]+) requests per second", final[0]).group(1))
            self.assertGreater(rps, 0, final[0])
        self.assertNotIn("ERR", out)
        self.assertNotIn("error", out.lower())
        return out

    def test_benchmark(self):
        self.start()
        self.bench("-P", "16")
        self.bench()
        r = redis.Redis(port=self.srv.port)
        self.addCleanup(r.close)
        # redis-benchmark without -r writes the one key "key:__rand_int__" (3-byte values)
        self.assertEqual(len(r.get("key:__rand_int__")), 3)
        self.assertGreaterEqual(r.dbsize(), 1)
        self.assertNotIn("warning", self.srv.stderr_text())
        self.stop_clean()


class RedisPyTest(Base):
    def client(self, **kw):
        r = redis.Redis(port=self.srv.port, socket_timeout=30, **kw)
        self.addCleanup(r.close)
        return r

    def test_big_binary_value(self):
        self.start()
        r = self.client()
        big = os.urandom(1 << 20)
        self.assertTrue(r.set(b"big", big))
        self.assertEqual(r.get(b"big"), big)
        big2 = os.urandom((1 << 20) + 7)
        r.set(b"big", big2)
        self.assertEqual(r.get(b"big"), big2)
        self.stop_clean()
        with Server(SERVER, self.dir) as s:
            r2 = redis.Redis(port=s.port, socket_timeout=30)
            try:
                self.assertEqual(r2.get(b"big"), big2)
            finally:
                r2.close()
            self.assertEqual(s.stop(), 0)

    def test_binary_keys_and_values(self):
        self.start()
        r = self.client()
        pairs = {
            b"nul\x00key": b"nul\x00value\x00",
            b"crlf\r\nkey": b"\r\n$3\r\nfoo\r\n",
            b"\xff\xfe\x00\r\n": bytes(range(256)),
            b"\x00": b"",
            b"*1\r\n$4\r\nPING\r\n": b"+OK\r\n",
            b" spaced key ": b"\n",
        }
        for k, v in pairs.items():
            self.assertTrue(r.set(k, v))
        for k, v in pairs.items():
            self.assertEqual(r.get(k), v, k)
        self.assertEqual(r.mget(list(pairs)), list(pairs.values()))
        self.assertEqual(r.exists(*pairs), len(pairs))
        self.assertEqual(r.get(b"nul"), None)  # a key is all its bytes, not up to the NUL
        self.assertEqual(r.dbsize(), len(pairs))
        self.assertEqual(r.delete(b"nul\x00key"), 1)
        self.assertIsNone(r.get(b"nul\x00key"))
        self.assertEqual(r.dbsize(), len(pairs) - 1)
        self.stop_clean()

    def test_pipelines(self):
        self.start()
        r = self.client()
        n = 10000
        p = r.pipeline(transaction=False)
        for i in range(n):
            p.set("pk:%d" % i, "pv:%d:%s" % (i, "x" * (i % 50)))
        res = p.execute()
        self.assertEqual(len(res), n)
        self.assertTrue(all(x is True for x in res))
        p = r.pipeline(transaction=False)
        for i in range(n):
            p.get("pk:%d" % i)
        res = p.execute()
        want = [("pv:%d:%s" % (i, "x" * (i % 50))).encode() for i in range(n)]
        self.assertEqual(res, want)
        self.assertEqual(r.dbsize(), n)
        # MGET of many keys in one command
        keys = ["pk:%d" % i for i in range(0, n, 7)]
        self.assertEqual(r.mget(keys), [want[i] for i in range(0, n, 7)])
        self.stop_clean()

    def test_mget_missing_and_dbsize(self):
        self.start()
        r = self.client()
        self.assertEqual(r.dbsize(), 0)
        r.mset({"a": "1", "c": "3"})
        self.assertEqual(r.mget(["a", "b", "c", "d"]), [b"1", None, b"3", None])
        self.assertEqual(r.mget(["x", "y"]), [None, None])
        self.assertEqual(r.dbsize(), 2)
        self.assertEqual(r.delete("a", "b"), 1)
        self.assertEqual(r.dbsize(), 1)
        self.assertEqual(r.exists("a", "c"), 1)
        self.assertEqual(r.echo(b"\x00\xff"), b"\x00\xff")
        self.assertTrue(r.ping())
        with self.assertRaises(redis.exceptions.ResponseError) as cm:
            r.execute_command("NOSUCHCOMMAND")
        self.assertIn("unknown command", str(cm.exception))
        self.stop_clean()


def main():
    global SERVER
    if len(sys.argv) < 2:
        sys.exit("usage: test_redis_clients.py PATH_TO_kvs-server [unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    for tool in (REDIS_CLI, REDIS_BENCHMARK):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s (Debian package redis-tools; scripts/deps.sh installs it)"
                     % tool)
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:])


if __name__ == "__main__":
    main()

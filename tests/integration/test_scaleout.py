#!/usr/bin/env python3
"""test_scaleout.py -- three kvs-servers behind twemproxy (nutcracker), as docs/scale-out.md says.

Usage: python3 test_scaleout.py PATH_TO_kvs-server [unittest options]

docs/scale-out.md gives a twemproxy configuration and says which commands work through the
proxy. This test holds the page to it, with the real proxy (Debian's nutcracker, installed by
`make deps`) on loopback:

  - three kvs-servers on ports the kernel picks (kvstest.Server, port 0), and nutcracker with the
    page's configuration (the first ```yaml block of docs/scale-out.md, its addresses replaced)
    on a free port, its stats port free-picked too (-s, -a 127.0.0.1);
  - 10,000 keys written through the proxy (half by pipelined SET, half by MSET batches, which the
    proxy splits by shard), and every backend holds a share: DBSIZE of each > 15 %, the three
    adding up to 10,000;
  - everything read back through the proxy with GET (pipelined) and with MGET in batches of 100;
  - one backend killed with SIGKILL: its keys answer an error through the proxy
    (auto_eject_hosts: false, so they are not remapped to another shard) while the others' keys
    are still served; restarted on the same port and data directory, every key reads back
    again through the proxy, retried within a bounded time while nutcracker reconnects;
  - the page's command table: every command kvs-server lists in COMMAND is in it, and each one
    is sent through the proxy with an example of its arguments and must behave as the table's
    row says ("works": a reply comes; "refused": nutcracker closes the connection);
  - COPY across shards does what the page warns of, and nutcracker's stats port answers JSON
    that names the pool.

Everything started is stopped by PID (SIGTERM, then SIGKILL after a bounded wait); every wait is
bounded. Without nutcracker (not installable here) the test is skipped and says so.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "scale-out.md")
NUTCRACKER = shutil.which("nutcracker") or (
    "/usr/sbin/nutcracker" if os.access("/usr/sbin/nutcracker", os.X_OK) else None)
KEYS = 10000
BATCH = 100          # keys a MGET / MSET asks for
RECONNECT = 20.0     # seconds a read may be retried while nutcracker reconnects


def key(i):
    return "key:%05d" % i


def value(i):
    return ("value-%05d-" % i + "x" * (i % 53)).encode()


def free_port():
    """A port free on 127.0.0.1 now (nutcracker takes no port 0): bound, read, closed. A race
    with another process is possible; start_nutcracker retries with new ports."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def doc_config(ports, listen):
    """The page's configuration with the test's addresses: its first ```yaml block, the
    `listen:` line and the servers' ports replaced (the servers in order)."""
    m = re.search(r"```yaml\n(.*?)```", doc_text(), re.S)
    if not m:
        raise AssertionError("docs/scale-out.md has no ```yaml block")
    conf = re.sub(r"listen: \S+", "listen: 127.0.0.1:%d" % listen, m.group(1))
    it = iter(ports)
    conf = re.sub(r"- \S+?:\d+:(\d+)",
                  lambda s: "- 127.0.0.1:%d:%s" % (next(it), s.group(1)), conf)
    if len(re.findall(r"127\.0\.0\.1:\d+:\d+", conf)) != len(ports):
        raise AssertionError("the page's configuration does not name %d servers:\n%s"
                             % (len(ports), conf))
    return conf


def doc_commands():
    """The page's command table: {command name (lower case): 'works' | 'refused'}. A row's
    first cell names commands in backticks; its second cell starts with the behaviour."""
    table = {}
    for line in doc_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.startswith("|"):
            continue
        how = cells[1].split()[0].strip("*:,").lower() if cells[1] else ""
        if how not in ("works", "refused"):
            continue
        for name in re.findall(r"`([A-Za-z]+)", cells[0]):
            table[name.lower()] = how
    return table


# An example of each command's arguments (keys prefixed "probe:", away from the data keys).
EXAMPLES = {
    "get": ["probe:a"], "set": ["probe:a", "1"], "del": ["probe:a", "probe:b"],
    "unlink": ["probe:a", "probe:b"], "exists": ["probe:a", "probe:b"],
    "touch": ["probe:a", "probe:b"], "mget": ["probe:a", "probe:b"],
    "mset": ["probe:a", "1", "probe:b", "2"], "msetnx": ["probe:c", "1", "probe:d", "2"],
    "setnx": ["probe:a", "1"], "setex": ["probe:a", "10", "1"],
    "psetex": ["probe:a", "10000", "1"], "getset": ["probe:a", "2"], "getdel": ["probe:e"],
    "getex": ["probe:a"], "incr": ["probe:n"], "decr": ["probe:n"],
    "incrby": ["probe:n", "2"], "decrby": ["probe:n", "2"], "incrbyfloat": ["probe:f", "1.5"],
    "append": ["probe:s", "x"], "setrange": ["probe:s", "0", "y"], "setbit": ["probe:g", "1", "1"],
    "strlen": ["probe:s"], "getrange": ["probe:s", "0", "1"], "substr": ["probe:s", "0", "1"],
    "getbit": ["probe:g", "1"], "bitcount": ["probe:g"], "expire": ["probe:a", "100"],
    "pexpire": ["probe:a", "100000"], "expireat": ["probe:a", "4000000000"],
    "pexpireat": ["probe:a", "4000000000000"], "persist": ["probe:a"], "ttl": ["probe:a"],
    "pttl": ["probe:a"], "expiretime": ["probe:a"], "pexpiretime": ["probe:a"],
    "type": ["probe:a"], "rename": ["probe:a", "probe:r"], "renamenx": ["probe:a", "probe:r"],
    "copy": ["probe:a", "probe:r"], "scan": ["0"], "keys": ["probe:*"], "randomkey": [],
    "flushdb": [], "flushall": [], "multi": [], "exec": [], "discard": [],
    "watch": ["probe:a"], "unwatch": [], "client": ["id"], "time": [], "dbsize": [],
    "ping": [], "echo": ["hi"], "info": [], "select": ["0"], "quit": [], "command": [],
    "config": ["get", "maxclients"], "auth": ["secret"], "hello": ["2"],
    "shutdown": ["nosave"], "waitaof": ["1", "0", "100"],
    "save": [], "bgsave": [], "lastsave": [],
}


# Forms the page's table names besides the examples above: (request, 'works' | 'refused').
VARIANTS = [
    (("PING", "message"), "refused"),
    (("COMMAND", "COUNT"), "refused"),
    (("COMMAND", "DOCS"), "refused"),
]


CLOSED = object()


def send_one(port, *args):
    """Send one request through the proxy on a fresh connection: the reply's value (kvstest's
    RespReader shapes), or CLOSED if the connection is closed without one."""
    c = kvstest.RespConn(port, timeout=5.0)
    try:
        c.send(kvstest.resp(*args))
        try:
            return c.reply(time.monotonic() + 5.0)[1]
        except kvstest.ReplyClosed:
            return CLOSED
    finally:
        c.close()


def probe(port, *args):
    """'works' if a request through the proxy gets a reply (an error reply too), 'refused' if
    the proxy closes the connection without one."""
    return "refused" if send_one(port, *args) is CLOSED else "works"


class Nutcracker:
    """nutcracker on a free port with a given configuration, its log in the test's directory;
    stopped by PID."""

    def __init__(self, dir, conf_for_port):
        self.dir = dir
        self.conf_for_port = conf_for_port
        self.proc = None

    def start(self, attempts=3):
        last = ""
        for _ in range(attempts):
            self.port, self.stats_port = free_port(), free_port()
            conf = os.path.join(self.dir, "nutcracker.yml")
            with open(conf, "w") as f:
                f.write(self.conf_for_port(self.port))
            self.log = os.path.join(self.dir, "nutcracker.log")
            self.proc = subprocess.Popen(
                [NUTCRACKER, "-c", conf, "-s", str(self.stats_port), "-a", "127.0.0.1",
                 "-o", self.log, "-p", os.path.join(self.dir, "nutcracker.pid"), "-v", "5"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                preexec_fn=kvstest._die_with_parent)
            if self._wait_ready(10.0):
                return self
            last = self.log_text()
            self.stop()
        raise AssertionError("nutcracker did not start (%d attempts); log:\n%s"
                             % (attempts, last))

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. a port taken meanwhile: start() tries others
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
                socket.create_connection(("127.0.0.1", self.stats_port), timeout=1.0).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return "(no log)"

    def stop(self):
        kvstest.stop_process(self.proc)


@unittest.skipUnless(NUTCRACKER, "nutcracker (Debian package nutcracker, twemproxy) is not "
                     "installed and could not be: `make deps` installs it")
class ScaleOut(kvstest.ServerTestCase):

    def setUp(self):
        super().setUp()
        self.servers = []
        for i in range(3):
            d = os.path.join(self.dir, "kvs%d" % i)
            os.mkdir(d)
            self.servers.append(self.start("--threads", "1", dir=d))
        ports = [s.port for s in self.servers]
        self.nc = Nutcracker(self.dir, lambda listen: doc_config(ports, listen)).start()
        self.addCleanup(self.nc.stop)
        self.proxy = redis.Redis(port=self.nc.port, socket_timeout=30)
        self.addCleanup(self.proxy.close)

    def backend(self, i):
        return self.redis(self.servers[i])

    def where(self, keys):
        """The backend index that holds each key (asked of each backend directly)."""
        held = []
        for i in range(3):
            p = self.backend(i).pipeline(transaction=False)
            for k in keys:
                p.exists(k)
            held.append(p.execute())
        out = {}
        for j, k in enumerate(keys):
            owners = [i for i in range(3) if held[i][j]]
            self.assertEqual(len(owners), 1, "%s is held by backends %s" % (k, owners))
            out[k] = owners[0]
        return out

    def write_all(self):
        half = KEYS // 2
        p = self.proxy.pipeline(transaction=False)
        for i in range(half):
            p.set(key(i), value(i))
        self.assertTrue(all(r is True for r in p.execute()))
        for b in range(half, KEYS, BATCH):
            self.assertTrue(self.proxy.mset({key(i): value(i)
                                             for i in range(b, min(b + BATCH, KEYS))}))

    def read_all_get(self, indices, retry_until=None):
        """GET of each key through the proxy, pipelined; with retry_until, a batch whose reply
        has an error (a backend not reconnected yet) is tried again until that time."""
        indices = list(indices)
        for b in range(0, len(indices), 500):
            part = indices[b:b + 500]
            while True:
                p = self.proxy.pipeline(transaction=False)
                for i in part:
                    p.get(key(i))
                try:
                    got = p.execute()
                    break
                except (redis.ResponseError, redis.ConnectionError) as e:
                    if retry_until is None or time.monotonic() > retry_until:
                        raise AssertionError("GET through the proxy failed: %s; nutcracker "
                                             "log:\n%s" % (e, self.nc.log_text()))
                    time.sleep(0.1)
            for i, v in zip(part, got):
                self.assertEqual(v, value(i), "GET %s through the proxy" % key(i))

    def read_all_mget(self, retry_until=None):
        for b in range(0, KEYS, BATCH):
            ks = [key(i) for i in range(b, min(b + BATCH, KEYS))]
            while True:
                try:
                    got = self.proxy.mget(ks)
                    break
                except (redis.ResponseError, redis.ConnectionError) as e:
                    if retry_until is None or time.monotonic() > retry_until:
                        raise AssertionError("MGET through the proxy failed: %s" % e)
                    time.sleep(0.1)
            self.assertEqual(got, [value(i) for i in range(b, min(b + BATCH, KEYS))],
                             "MGET %s.. through the proxy" % ks[0])

    def test_shard_read_kill_restart(self):
        self.write_all()
        sizes = [self.backend(i).dbsize() for i in range(3)]
        self.assertEqual(sum(sizes), KEYS, "DBSIZE of the backends: %s" % sizes)
        for i, n in enumerate(sizes):
            self.assertGreater(n, KEYS * 15 // 100,
                               "backend %d holds %d of %d keys (%s): ketama should spread "
                               "them" % (i, n, KEYS, sizes))
        self.read_all_get(range(KEYS))
        self.read_all_mget()

        # Kill one backend: its keys fail through the proxy, the others' are still served.
        owner = self.where([key(i) for i in range(KEYS)])
        victim = self.servers[1]
        victim.kill9()
        mine = [i for i in range(KEYS) if owner[key(i)] == 1]
        others = [i for i in range(KEYS) if owner[key(i)] != 1]
        self.read_all_get(others[:2000])
        with self.assertRaises(redis.RedisError, msg="a key of the killed backend was served"):
            self.proxy.get(key(mine[0]))

        # Restart it on the same port and directory; everything reads back through the proxy.
        again = Server(self.binary, victim.dir, "--threads", "1",
                       addr="127.0.0.1:%d" % victim.port)
        again.start()
        self.addCleanup(again.__exit__, None, None, None)
        self.servers[1] = again
        self.assertEqual(self.backend(1).dbsize(), sizes[1], "keys of the restarted backend")
        until = time.monotonic() + RECONNECT
        self.read_all_get(range(KEYS), retry_until=until)
        self.read_all_mget(retry_until=until)

    def test_command_table(self):
        """Each command of the page's table behaves through the proxy as its row says, and the
        table names every command kvs-server has."""
        table = doc_commands()
        known = kvstest.command_names(self.servers[0].port)
        self.assertEqual(sorted(known - set(table)), [],
                         "commands kvs-server has that docs/scale-out.md's table leaves out")
        self.assertEqual(sorted(set(table) - known), [],
                         "commands in docs/scale-out.md's table that kvs-server does not have")
        self.assertEqual(sorted(set(table) - set(EXAMPLES)), [],
                         "commands without example arguments in test_scaleout.py's EXAMPLES")
        wrong = []
        for name in sorted(table):
            got = probe(self.nc.port, name.upper(), *EXAMPLES[name])
            if got != table[name]:
                wrong.append("%s: the page says %s, the proxy %s" % (name, table[name], got))
        for req, how in VARIANTS:
            got = probe(self.nc.port, *req)
            if got != how:
                wrong.append("%s: the page says %s, the proxy %s" % (" ".join(req), how, got))
        self.assertEqual(wrong, [], "docs/scale-out.md's table is wrong")
        # The probes' writes (SHUTDOWN, FLUSHALL are refused) left every backend up.
        for s in self.servers:
            self.assertTrue(s.running(), "a backend stopped during the probes")

    def test_auth_answered_by_proxy(self):
        got = send_one(self.nc.port, "AUTH", "secret")
        self.assertEqual(got, ("-", b"ERR Client sent AUTH, but no password is set"),
                         "AUTH through a proxy without redis_auth (the page's table)")

    def test_copy_across_shards(self):
        """COPY is sent to the source key's backend: a destination that hashes elsewhere is
        written where the proxy never reads it (the page's warning)."""
        ks = ["copy:%d" % i for i in range(64)]
        for k in ks:
            self.proxy.set(k, "old-" + k)
        at = self.where(ks)
        src = ks[0]
        dst = next(k for k in ks if at[k] != at[src])
        self.assertTrue(self.proxy.copy(src, dst, replace=True))
        self.assertEqual(self.proxy.get(dst), ("old-" + dst).encode(),
                         "COPY through the proxy changed what the proxy reads for dst")
        self.assertEqual(self.backend(at[src]).get(dst), ("old-" + src).encode(),
                         "COPY wrote dst on the source's backend")
        # With one hash tag both keys live on one shard, and COPY does what it says.
        self.proxy.set("{t}src", "tagged")
        self.assertTrue(self.proxy.copy("{t}src", "{t}dst"))
        self.assertEqual(self.proxy.get("{t}dst"), b"tagged")
        self.assertEqual(len(set(self.where(["{t}src", "{t}dst"]).values())), 1,
                         "keys of one hash tag on one shard")

    def test_stats_port(self):
        with socket.create_connection(("127.0.0.1", self.nc.stats_port), timeout=5.0) as s:
            data = kvstest.read_until_closed(s, timeout=5.0)[0]
        stats = json.loads(data)
        self.assertIn("kvs", stats, "nutcracker's stats name the pool")
        self.assertEqual(len([k for k, v in stats["kvs"].items() if isinstance(v, dict)]), 3,
                         "the pool's stats have one entry per backend")


if __name__ == "__main__":
    kvstest.main("test_scaleout.py")

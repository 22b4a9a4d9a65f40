#!/usr/bin/env python3
"""test_save.py -- backups of a running kvs-server (SAVE, BGSAVE, LASTSAVE) and the offline
tools kvs checkpoint / verify / repair, as processes.

Usage: python3 test_save.py PATH_TO_kvs-server PATH_TO_kvs [unittest options]

  * BGSAVE under redis-benchmark load, each engine: the reply is Redis's, LASTSAVE advances
    past its value before the save, the checkpoint (DIR/checkpoints/<unix-time>) verifies clean
    with `kvs verify`, opens with `kvs --dir` while the server runs and holds a key written
    before the BGSAVE; SAVE answers +OK; a restart of the server on its directory (which now
    holds the checkpoints) serves every key as before.
  * --checkpoint-dir puts checkpoints there; one on another file system fails with an error
    reply (hard links) and LASTSAVE does not move; SAVE with an argument is a syntax error;
    SAVEs from several connections at once each make a whole checkpoint or are refused.
  * kvs verify: exit 0 and "all well" on a clean store; exit 1 naming FILE:OFFSET for a
    damaged value; exit 1 with a message while a server holds the directory; exit 2 on a usage
    error. kvs repair: exit 0, the damaged record listed as dropped, the new store serving the
    other keys. kvs checkpoint of a directory a server holds: exit 1, "in use".

Every server listens on 127.0.0.1:0 (kvstest.Server), every process has a timeout, and every
test works in its own temporary directory and stops what it started.
"""
import glob
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import run  # noqa: E402

KVS = None
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
TIMEOUT = 60


def checkpoints(root):
    return sorted(p for p in glob.glob(os.path.join(root, "*")) if os.path.isdir(p))


class SaveTest(kvstest.ServerTestCase):
    def kvs(self, *args, timeout=TIMEOUT):
        return run([KVS] + list(args), timeout=timeout)

    def wait_lastsave_past(self, r, t0, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if r.lastsave().timestamp() > t0:
                return
            time.sleep(0.05)
        self.fail("LASTSAVE stayed at %s" % t0)

    def bgsave_under_load(self, engine):
        data = os.path.join(self.dir, "data")
        s = self.start("--engine", engine, "--dir", data, "--segment-size", "256kb")
        r = self.redis(s)
        r.set("before", "written-before-bgsave")
        t0 = r.lastsave().timestamp()
        bench = subprocess.Popen(
            [REDIS_BENCHMARK, "-p", str(s.port), "-t", "set", "-n", "5000000", "-r", "100000",
             "-d", "64", "-P", "16", "-c", "8", "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.2)  # LASTSAVE counts seconds: the save must come a second after start
            c = kvstest.RespConn(s.port)  # raw: redis-py turns the status into True
            self.addCleanup(c.close)
            c.send(kvstest.resp("BGSAVE"))
            self.assertEqual(c.reply()[0], b"+Background saving started\r\n")
            self.wait_lastsave_past(r, t0)
            self.assertIsNone(bench.poll(), "the load ended before the save did")
            self.assertGreater(r.dbsize(), 1)
        finally:
            bench.terminate()  # the process this test started, by its handle
            try:
                bench.wait(timeout=10)
            except subprocess.TimeoutExpired:
                bench.kill()
                bench.wait()
        cps = checkpoints(os.path.join(data, "checkpoints"))
        self.assertEqual(len(cps), 1, cps)
        cp = cps[0]
        self.assertRegex(os.path.basename(cp), r"^\d+$")
        v = self.kvs("verify", cp)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("all well", v.stdout)
        g = self.kvs("--dir", cp, "get", "before")  # beside the running server
        self.assertEqual(g.returncode, 0, g.stderr)
        self.assertEqual(g.stdout, "written-before-bgsave\n")
        # SAVE, then a restart on the directory that now holds the checkpoints
        last = r.lastsave().timestamp()
        self.assertTrue(r.save())
        self.assertGreaterEqual(r.lastsave().timestamp(), last)
        self.assertEqual(len(checkpoints(os.path.join(data, "checkpoints"))), 2)
        keys = r.dbsize()
        self.assertEqual(s.stop(), 0)
        s2 = self.start("--dir", data)
        r2 = self.redis(s2)
        self.assertEqual(r2.dbsize(), keys)
        self.assertEqual(r2.get("before"), b"written-before-bgsave")

    def test_bgsave_under_load_kvs(self):
        self.bgsave_under_load("kvs")

    def test_bgsave_under_load_lmdb(self):
        self.bgsave_under_load("lmdb")

    def test_checkpoint_dir_and_errors(self):
        data, other = os.path.join(self.dir, "data"), os.path.join(self.dir, "backups")
        s = self.start("--dir", data, "--checkpoint-dir", other)
        r = self.redis(s)
        r.set("k", "v")
        self.assertTrue(r.save())
        cps = checkpoints(other)
        self.assertEqual(len(cps), 1)
        self.assertEqual(self.kvs("--dir", cps[0], "get", "k").stdout, "v\n")
        self.assertFalse(os.path.exists(os.path.join(data, "checkpoints")))
        import redis
        with self.assertRaisesRegex(redis.ResponseError, "syntax error"):
            r.execute_command("SAVE", "now")
        # saves at once from several connections: each made whole, or refused, never mixed
        conns = [kvstest.RespConn(s.port) for _ in range(4)]
        for c in conns:
            self.addCleanup(c.close)
            c.send(kvstest.resp("SET", "k%d" % len(conns), "v") + kvstest.resp("SAVE"))
        replies = [c.reply()[0] + c.reply()[0] for c in conns]
        made = sum(1 for x in replies if x.endswith(b"+OK\r\n"))
        for x in replies:
            self.assertIn(x[5:], (b"+OK\r\n", b"-ERR Background save already in progress\r\n"))
        self.assertGreaterEqual(made, 1)
        cps = checkpoints(other)
        self.assertEqual(len(cps), 1 + made)
        for cp in cps:
            v = self.kvs("verify", cp)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        st = os.stat(self.dir)
        if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != st.st_dev:
            shm = os.path.join("/dev/shm", "kvs-it-%d" % os.getpid())
            s2 = self.start("--dir", os.path.join(self.dir, "data2"), "--checkpoint-dir", shm)
            try:
                r2 = self.redis(s2)
                r2.set("k", "v")  # a segment to link (an empty store links nothing)
                t = r2.lastsave().timestamp()
                time.sleep(1.1)
                with self.assertRaises(redis.ResponseError):
                    r2.save()
                self.assertEqual(r2.lastsave().timestamp(), t)
                # logged before the reply, but read from the server's stderr by a thread
                self.assertTrue(s2.wait_for_stderr("another file system", timeout=30),
                                s2.stderr_text())
            finally:
                run(["rm", "-rf", shm])

    def test_verify_repair_cli(self):
        data = os.path.join(self.dir, "data")
        for i in range(50):
            self.assertEqual(self.kvs("--dir", data, "set", "key%02d" % i,
                                      "value-%02d-" % i + "x" * 40).returncode, 0)
        v = self.kvs("verify", data)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertRegex(v.stdout, r"50 keys, .*all well")
        self.assertEqual(self.kvs("verify", data, "extra", "args").returncode, 2)
        # a server holds it: verify and checkpoint refuse, clearly
        s = self.start("--dir", data)
        v = self.kvs("verify", data)
        self.assertEqual(v.returncode, 1)
        self.assertIn("checkpoint", v.stderr)
        c = self.kvs("checkpoint", data, os.path.join(self.dir, "cp"))
        self.assertEqual(c.returncode, 1)
        self.assertIn("in use", c.stderr)
        self.assertEqual(s.stop(), 0)
        # a damaged value: found, and repaired around
        seg = sorted(glob.glob(os.path.join(data, "*.log")))[0]
        with open(seg, "r+b") as f:
            b = f.read()
            at = b.index(b"value-17-") + 20
            f.seek(at)
            f.write(bytes([b[at] ^ 0x5A]))
        v = self.kvs("verify", data)
        self.assertEqual(v.returncode, 1, v.stdout)
        m = re.search(r"^(\S+/\d{6}\.log):(\d+): damaged record", v.stdout, re.M)
        self.assertIsNotNone(m, v.stdout)
        self.assertEqual(m.group(1), seg)
        self.assertEqual(int(m.group(2)), b.index(b"key17") - 33)  # the record's header
        self.assertIn("1 problems", v.stdout)
        dest = os.path.join(self.dir, "repaired")
        rp = self.kvs("repair", data, dest)
        self.assertEqual(rp.returncode, 0, rp.stdout + rp.stderr)
        self.assertIn("dropped: %s:%s:" % (m.group(1), m.group(2)), rp.stdout)
        self.assertIn("49 keys written", rp.stdout)
        self.assertEqual(self.kvs("--dir", dest, "get", "key16").stdout,
                         "value-16-" + "x" * 40 + "\n")
        self.assertEqual(self.kvs("--dir", dest, "get", "key17").stdout, "Key not found\n")
        self.assertEqual(self.kvs("verify", dest).returncode, 0)
        # into a directory that is not empty: refused
        rp = self.kvs("repair", data, dest)
        self.assertEqual(rp.returncode, 1)
        self.assertIn("not empty", rp.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_save.py PATH_TO_kvs-server PATH_TO_kvs [unittest options]")
    KVS = os.path.abspath(sys.argv.pop(2))
    kvstest.main("test_save.py")

#!/usr/bin/env python3
"""test_disk_full.py -- a full disk, as a client of kvs-server sees it.

Usage: python3 test_disk_full.py PATH_TO_kvs-server [unittest options]

kvs-server runs on a data directory that is a 3 MiB tmpfs, mounted in a mount namespace of its
own (`unshare --mount`, which needs root: CI runs as root; elsewhere the test is skipped and
says why), so nothing outside the test sees the mount and it goes away with the server. A client
writes 64 KiB values until the writes fail. On both engines:

  - the failure reads "-ERR no space left on device" (issue 9: it used to be only "I/O error");
  - nothing acknowledged is lost: every key that got OK still reads back, and DBSIZE counts them;
  - the server keeps serving reads, and stops cleanly.

Bounded: at most 200 writes of 64 KiB; all traffic on 127.0.0.1.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import Server  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

MOUNT = 'mount -t tmpfs -o size=3m kvs-test-full "$0" && exec "$@"'


def can_mount():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m probe /mnt && umount /mnt"],
                           capture_output=True, timeout=20)
    return probe.returncode == 0


class FullDiskServer(Server):
    """kvs-server exec'd by a shell inside its own mount namespace, over a small tmpfs: the pid
    stays the server's (unshare without --fork, and exec)."""
    def argv(self):
        return ["unshare", "--mount", "sh", "-c", MOUNT, self.dir] + super().argv()


@unittest.skipUnless(can_mount(), "needs root and unshare --mount to put a small tmpfs under "
                                  "the server")
class DiskFullTest(kvstest.ServerTestCase):
    def fill(self, engine):
        s = FullDiskServer(self.binary, self.dir, "--engine", engine, "--sync", "always")
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        r = self.redis(s)
        value = os.urandom(64 * 1024)
        stored, error = [], None
        for i in range(200):
            try:
                r.set("k%d" % i, value)
                stored.append("k%d" % i)
            except redis.ResponseError as e:
                error = str(e)
                break
        self.assertIsNotNone(error, "3 MiB took 200 writes of 64 KiB")
        self.assertIn("no space left on device", error)
        self.assertGreater(len(stored), 0)
        for k in stored:
            self.assertEqual(r.get(k), value, k)
        self.assertEqual(r.dbsize(), len(stored))
        self.assertTrue(r.ping())
        r.close()
        self.assertEqual(s.stop(), 0, s.stderr_text())

    def test_kvs(self):
        self.fill("kvs")

    def test_lmdb(self):
        self.fill("lmdb")


if __name__ == "__main__":
    kvstest.main("test_disk_full.py")

#!/usr/bin/env python3
"""test_index_budget.py -- the key index's memory budget (--max-index-memory) over the network.

Usage: python3 test_index_budget.py PATH_TO_kvs-server [unittest options]

A kvs-server with a 1 MiB index budget takes new keys until the index is full, then refuses
them with Redis's -OOM prefix and a message naming the budget, while overwrites, deletes and
reads go on; INFO kvs reports the index's bytes, its budget and the keys left; a MSET of new
keys at the limit is refused whole (none of its keys stored), one that fits goes in; after a
restart with the same budget every stored key is there, from the index saved at the clean stop,
and the figures are those of a rebuild after kill -9.
Bounded: at most 400,000 keys are tried; all traffic is on 127.0.0.1.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402

import redis  # noqa: E402  (Debian: python3-redis)

BUDGET = 1 << 20
CHUNK = 1000
MAX_KEYS = 400_000


def info_memory(r):
    """The index's figures: INFO's kvs section (the engine's, beside Redis's memory fields)."""
    return r.info("kvs")


class IndexBudgetTest(kvstest.ServerTestCase):
    def fill(self, r):
        """SET new keys in pipelined chunks until one is refused; returns (stored, errors)."""
        stored, errors = 0, []
        while stored < MAX_KEYS and not errors:
            p = r.pipeline(transaction=False)
            for i in range(stored, stored + CHUNK):
                p.set(b"key:%08d" % i, b"v%d" % i)
            for res in p.execute(raise_on_error=False):
                if isinstance(res, Exception):
                    errors.append(res)
                elif not errors:
                    stored += 1
        return stored, errors

    def test_budget(self):
        s = self.start("--engine", "kvs", "--max-index-memory", "1mb")
        r = self.redis(s)
        stored, errors = self.fill(r)
        self.assertTrue(errors, "no write refused after %d new keys" % stored)
        self.assertGreater(stored, 10_000)  # 1 MiB holds tens of thousands of 12-byte slots
        msg = str(errors[0])
        self.assertIn("max-index-memory", msg)
        # the refusal is Redis's -OOM (newer redis-py versions map it to OutOfMemoryError)
        oom = getattr(redis.exceptions, "OutOfMemoryError", ())
        self.assertTrue((oom and isinstance(errors[0], oom)) or msg.startswith("OOM"),
                        repr(errors[0]))
        m = info_memory(r)
        self.assertEqual(m["index_max_bytes"], BUDGET)
        self.assertLessEqual(m["index_bytes"], BUDGET)
        self.assertEqual(m["index_keys_left"], 0)
        self.assertEqual(r.dbsize(), stored)
        # a new key, alone or in a MSET, is refused; overwrites, deletes and reads go on
        with self.assertRaises(redis.exceptions.ResponseError):
            r.mset({b"new:a": b"1", b"new:b": b"2"})
        self.assertIsNone(r.get(b"new:a"))
        self.assertIsNone(r.get(b"new:b"))
        self.assertTrue(r.set(b"key:%08d" % 0, b"overwritten"))
        self.assertEqual(r.get(b"key:%08d" % 0), b"overwritten")
        self.assertEqual(r.delete(b"key:%08d" % 1), 1)
        self.assertIsNone(r.get(b"key:%08d" % 1))
        self.assertEqual(r.get(b"key:%08d" % (stored - 1)), b"v%d" % (stored - 1))
        self.assertEqual(r.dbsize(), stored - 1)
        # room for one new key: a MSET of two is refused whole, as Redis's MSET is all or
        # nothing (short and long MSETs: the server has a batched path and a direct one)
        self.assertEqual(info_memory(r)["index_keys_left"], 1)
        for pairs in (2, 9):
            with self.assertRaises(redis.exceptions.ResponseError):
                r.mset({b"edge:%d:%d" % (pairs, i): b"x" for i in range(pairs)})
            for i in range(pairs):
                self.assertIsNone(r.get(b"edge:%d:%d" % (pairs, i)))
        # ... and a MSET that sets its one new key twice, beside overwrites, fits
        r.execute_command("MSET", b"edge:one", b"a", b"key:%08d" % 2, b"o2", b"edge:one", b"b")
        self.assertEqual(r.get(b"edge:one"), b"b")
        self.assertEqual(r.get(b"key:%08d" % 2), b"o2")
        self.assertEqual(r.dbsize(), stored)
        r.delete(b"edge:one")
        # a restart with the same budget keeps every key
        s.stop()
        s2 = self.start("--engine", "kvs", "--max-index-memory", "1mb")
        r2 = self.redis(s2)
        self.assertEqual(r2.dbsize(), stored - 1)
        self.assertEqual(r2.get(b"key:%08d" % 0), b"overwritten")
        self.assertEqual(r2.get(b"key:%08d" % (stored - 1)), b"v%d" % (stored - 1))
        self.assertEqual(info_memory(r2)["index_max_bytes"], BUDGET)
        # that clean stop saved the index, and the restart loaded it (saved.h); a restart after
        # kill -9 rebuilds it instead: the same keys, the same budget figures
        self.assertIn("the index loaded from the saved one", s2.stderr_text())
        m2 = info_memory(r2)
        s2.kill9()
        s3 = self.start("--engine", "kvs", "--max-index-memory", "1mb")
        r3 = self.redis(s3)
        self.assertNotIn("loaded from the saved one", s3.stderr_text())
        self.assertEqual(r3.dbsize(), stored - 1)
        m3 = info_memory(r3)
        for f in ("index_bytes", "index_max_bytes", "index_keys_left"):
            self.assertEqual(m2[f], m3[f], f)

    def test_no_budget(self):
        s = self.start("--engine", "kvs")
        r = self.redis(s)
        for i in range(1000):
            r.set(b"k%d" % i, b"v")
        m = info_memory(r)
        self.assertEqual(m["index_max_bytes"], 0)
        self.assertEqual(m["index_keys_left"], -1)
        self.assertGreater(m["index_bytes"], 0)
        self.assertGreater(m["index_bytes_per_key"], 0)

    def test_bad_flag(self):
        p = kvstest.run([self.binary, "--max-index-memory", "1kb"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("at least 1mb", p.stderr)


if __name__ == "__main__":
    kvstest.main("test_index_budget.py")

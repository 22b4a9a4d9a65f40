#!/usr/bin/env python3
"""test_kvs_bench.py -- a smoke test of kvs-bench, the db_bench-style benchmark, run as a process.

Usage: python3 test_kvs_bench.py PATH_TO_kvs-bench [unittest options]

kvs-bench is run small (--num 2000) on every engine the binary has: kvs, kvs-lmdb (libkvs's LMDB
engine) and lmdb (LMDB on its own API) always, rocksdb when it was built with librocksdb-dev (a
build without it answers `--engine rocksdb` with exit 2 and "not built with RocksDB", which is
checked instead). For each engine:

  * every benchmark prints one line in db_bench's shape that parses: name, micros/op, ops/sec,
    MB/s and the p50/p99/p999 latencies;
  * the key space adds up: after fillseq readrandom and readseq find all keys; after fillrandom
    (num random keys out of num, which covers 1 - 1/e = 63.2 % of them) readrandom finds between
    55 % and 71 % (the sampling spread at this size is about 1.2 %); after deleterandom (num
    random deletes) fewer than half remain, whatever readwhilewriting's writer wrote;
  * readseq says it is made of point gets for the libkvs engines, and is an iterator on lmdb (a
    cursor) and RocksDB;
  * the temporary store is removed at the end;
  * with --threads 3 the threads' key ranges of fillseq and readseq join up (an iterating
    engine's readseq is one iterator a thread, each stopping at the next thread's first key);
  * --db with --use_existing_db 1 reads what the previous run wrote, a second fill into the same
    --db empties it first (it holds that engine's store), and --use_existing_db 1 on an empty
    directory is refused.

Once, on the kvs engine: --threads 2 with --histogram 1 (the histogram printed) and copying
reads (--pin_slice 0), flags in both
--name=value and --name value form, --db with --use_existing_db 1 (fill benchmarks skipped, the
data of the previous run found), a --db that is neither empty nor a store refused untouched, and
usage errors (unknown flag, engine — kvs-kvs and kvs-rocksdb too: only a name a native adapter
took has a kvs- twin — benchmark) exiting 2.
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

BENCH = None  # the binary under test, from the command line
TIMEOUT = 120
NUM = 2000
ITERATES = ("lmdb", "rocksdb")  # readseq through an iterator (db.h's KB_ITERATES)

LINE = re.compile(
    r"^(?P<name>[a-z]+)\s*:\s+(?P<us>\d+\.\d+) micros/op (?P<ops>\d+) ops/sec;\s+(?P<mbs>\d+\.\d+) MB/s"
    r"(?: \((?P<found>\d+) of (?P<of>\d+) found(?P<note>[^)]*)\))?"
    r" \(p50 (?P<p50>\d+\.\d+) us, p99 (?P<p99>\d+\.\d+) us, p999 (?P<p999>\d+\.\d+) us\)$")


def run(*args):
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=TIMEOUT)


def rocksdb_built():
    r = run("--engine", "rocksdb", "--num", "10", "--benchmarks=fillseq")
    if r.returncode == 2 and "not built with RocksDB" in r.stderr:
        return False
    if r.returncode != 0:
        raise AssertionError(f"--engine rocksdb: exit {r.returncode}: {r.stderr}")
    return True


def parse(testcase, out, histogram=False):
    """The benchmark lines of a run's stdout, as dicts, in order; every line after the header's
    dashes must be one, or a skip note, or (with histogram) part of a histogram after one."""
    lines, body = [], False
    for line in out.splitlines():
        if line.startswith("----------------"):
            body = True
            continue
        if not body or "skipped (--use_existing_db is true)" in line:
            continue
        m = LINE.match(line)
        if m:
            lines.append(m.groupdict())
        elif not lines or not histogram:
            testcase.fail(f"line does not parse: {line!r}")
    return lines


class KvsBenchTest(unittest.TestCase):
    def bench(self, *args, ok=True):
        r = run(*args)
        if ok:
            self.assertEqual(r.returncode, 0, f"kvs-bench {' '.join(args)}: {r.stderr}")
        return r

    def engines(self):
        return ["kvs", "kvs-lmdb", "lmdb"] + (["rocksdb"] if rocksdb_built() else [])

    def test_all_benchmarks(self):
        order = ["fillseq", "readrandom", "readseq", "fillrandom", "readrandom", "overwrite",
                 "readwhilewriting", "deleterandom", "readrandom"]
        for engine in self.engines():
            with self.subTest(engine=engine):
                r = self.bench("--engine", engine, f"--benchmarks={','.join(order)}",
                               "--num", str(NUM), "--value_size=100", "--seed", "42")
                lines = parse(self, r.stdout)
                self.assertEqual([l["name"] for l in lines], order, r.stdout)
                for l in lines:
                    self.assertGreater(float(l["us"]), 0, l)
                    self.assertGreater(int(l["ops"]), 0, l)
                    # MB/s is printed to 0.1: deleterandom counts only key bytes, so a slow
                    # (sanitizer) run can round to 0.0 — below 6250 ops/s of 16-byte keys.
                    self.assertGreaterEqual(float(l["mbs"]), 0, l)
                    if int(l["ops"]) >= 10000:
                        self.assertGreater(float(l["mbs"]), 0, l)
                    self.assertLessEqual(float(l["p50"]), float(l["p99"]), l)
                    self.assertLessEqual(float(l["p99"]), float(l["p999"]), l)
                after_seq, seq, after_rand = lines[1], lines[2], lines[4]
                self.assertEqual((after_seq["found"], after_seq["of"]), (str(NUM), str(NUM)))
                self.assertEqual((seq["found"], seq["of"]), (str(NUM), str(NUM)))
                share = int(after_rand["found"]) / int(after_rand["of"])
                self.assertTrue(0.55 < share < 0.71, f"fillrandom then readrandom: {share:.3f}")
                self.assertIn("writer:", lines[6]["note"])
                last = int(lines[8]["found"]) / int(lines[8]["of"])
                self.assertLess(last, 0.5, "readrandom after deleterandom")
                if engine in ITERATES:
                    self.assertEqual(seq["note"], "")
                else:
                    self.assertIn("point gets", seq["note"])
                if engine != "rocksdb":  # RocksDB's delete writes a tombstone either way
                    self.assertIsNotNone(lines[7]["found"], "deleterandom counts what it found")
                path = re.search(r"^DB path:\s+\[(.*)\]$", r.stdout, re.M).group(1)
                self.assertFalse(os.path.exists(path), f"{path} left behind")

    def test_threads_split_the_keys(self):
        """--threads 3: the three threads' ranges of fillseq and readseq join without a gap or
        an overlap (2000 is not a multiple of 3), and readrandom is split too."""
        for engine in self.engines():
            with self.subTest(engine=engine):
                r = self.bench("--engine", engine, "--benchmarks=fillseq,readseq,readrandom",
                               "--num", str(NUM), "--threads", "3")
                lines = parse(self, r.stdout)
                self.assertEqual([(l["name"], l["found"], l["of"]) for l in lines[1:]],
                                 [("readseq", str(NUM), str(NUM)),
                                  ("readrandom", str(NUM), str(NUM))])

    def test_existing_db_every_engine(self):
        for engine in self.engines():
            with self.subTest(engine=engine), \
                    tempfile.TemporaryDirectory(prefix="kvs-bench-test-") as tmp:
                db = os.path.join(tmp, "db")
                for _ in range(2):  # the second fill empties the first one's store
                    self.bench("--engine", engine, "--benchmarks=fillseq", "--num", str(NUM),
                               "--db", db)
                r = self.bench("--engine", engine, "--benchmarks=fillseq,readrandom,readseq",
                               "--num", str(NUM), "--use_existing_db", "--db", db)
                self.assertEqual([(l["name"], l["found"]) for l in parse(self, r.stdout)],
                                 [("readrandom", str(NUM)), ("readseq", str(NUM))])
                empty = os.path.join(tmp, "empty")
                os.mkdir(empty)
                r = self.bench("--engine", engine, "--benchmarks=readrandom", "--num", "10",
                               "--use_existing_db", "1", "--db", empty, ok=False)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("holds no", r.stderr)

    def test_threads_histogram_existing_db(self):
        with tempfile.TemporaryDirectory(prefix="kvs-bench-test-") as tmp:
            db = os.path.join(tmp, "db")
            r = self.bench("--engine=kvs", "--benchmarks", "fillseq,readrandom", "--num=2001",
                           "--threads", "2", "--histogram", "--db", db, "--pin_slice=0")
            lines = parse(self, r.stdout, histogram=True)
            self.assertEqual([l["name"] for l in lines], ["fillseq", "readrandom"])
            self.assertEqual(lines[1]["found"], "2001")
            self.assertEqual(r.stdout.count("Microseconds per op:"), 2)
            self.assertIn("Percentiles: P50:", r.stdout)
            self.assertTrue(os.path.isdir(db), "--db is kept")

            r = self.bench("--engine", "kvs", "--benchmarks=fillseq,readseq", "--num", "2001",
                           "--use_existing_db", "1", "--db", db)
            self.assertIn("fillseq      : skipped (--use_existing_db is true)", r.stdout)
            lines = parse(self, r.stdout)
            self.assertEqual([(l["name"], l["found"]) for l in lines], [("readseq", "2001")])

            other = os.path.join(tmp, "other")
            os.mkdir(other)
            with open(os.path.join(other, "precious"), "w") as f:
                f.write("x")
            r = self.bench("--db", other, "--num", "10", ok=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("refusing", r.stderr)
            self.assertTrue(os.path.exists(os.path.join(other, "precious")))

    def test_usage_errors(self):
        for args in (["--nope=1"], ["--engine", "bogus"], ["--engine", "kvs-kvs"],
                     ["--engine", "kvs-rocksdb"], ["--benchmarks=fillseq,bogus"],
                     ["--num", "x"], ["--threads", "0"], ["--key_size", "2", "--num", "1000"]):
            with self.subTest(args=args):
                r = self.bench(*args, ok=False)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("kvs-bench:", r.stderr)
                self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_kvs_bench.py PATH_TO_kvs-bench [unittest options]")
    BENCH = os.path.abspath(sys.argv.pop(1))
    unittest.main()

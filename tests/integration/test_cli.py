#!/usr/bin/env python3
"""test_cli.py -- the kvs command-line interface, tested as the kvs course tests it: as a process.

Usage: python3 test_cli.py PATH_TO_kvs_BINARY [unittest options]

The CLI is a thin shell over libkvs, so what is tested here is the shell's contract, the part a
user or a grading script sees: the exit status, what goes to stdout and what to stderr.

  * Wrong usage (no command, an unknown one, too few or too many arguments) exits non-zero with
    the usage on stderr, prints nothing on stdout, and does not create a store.
  * -V prints the version that include/kvs.h declares (read from the header, so this test does
    not need editing at each release).
  * get of a missing key is not an error (stdout "Key not found", exit 0); rm of a missing key is
    (the same text, non-zero exit); set and a successful rm print nothing.
  * Every invocation is a new process, so every set-then-get here is also a persistence test; one
    test makes that its whole point.
  * --dir chooses the data directory and may stand before or after the command.
  * A directory locked by another process (flock on DIR itself, as libkvs takes it) is refused
    with "in use" on stderr, and works again once the lock is gone.
  * A store of on-disk format 2 (tests/data/format2) is refused by every command with a message
    naming `kvs upgrade DIR`; `kvs upgrade DIR` converts it (progress and counts on stdout, the
    old store kept as DIR.format2), after which the values read; run again it has nothing to do
    (exit 0); on a directory that holds no store it fails.

Each test runs in its own temporary directory as the working directory, and every process has a
timeout so that a hung CLI fails the test instead of stalling the suite.
"""
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

KVS = None  # the binary under test, from the command line
TIMEOUT = 30
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "kvs.h")
FORMAT2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "format2")


def header_version():
    with open(HEADER, encoding="utf-8") as f:
        m = re.search(r'^#define\s+KVS_VERSION_STRING\s+"([^"]+)"', f.read(), re.M)
    if not m:
        raise RuntimeError("no KVS_VERSION_STRING in " + HEADER)
    return m.group(1)


class CliTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-cli-")
        self.addCleanup(tmp.cleanup)
        self.cwd = tmp.name

    def kvs(self, *args):
        return subprocess.run([KVS, *args], cwd=self.cwd, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def expect(self, args, stdout, ok=True):
        """Run kvs with args; check stdout exactly (unless it is None) and whether the exit
        status is 0."""
        r = self.kvs(*args)
        if stdout is not None:
            self.assertEqual(r.stdout, stdout, f"stdout of kvs {' '.join(args)}")
        if ok:
            self.assertEqual(r.returncode, 0, f"kvs {' '.join(args)}: {r.stderr}")
        else:
            self.assertNotEqual(r.returncode, 0, f"kvs {' '.join(args)} should fail")
        return r

    def expect_usage_error(self, *args):
        with self.subTest(args=args):
            r = self.expect(args, "", ok=False)
            self.assertIn("usage", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.cwd, "MANIFEST")),
                             "a usage error must not create a store")

    # ---- usage errors ----

    def test_no_args(self):
        self.expect_usage_error()

    def test_get_arity(self):
        self.expect_usage_error("get")
        self.expect_usage_error("get", "k", "extra")

    def test_set_arity(self):
        self.expect_usage_error("set")
        self.expect_usage_error("set", "k")
        self.expect_usage_error("set", "k", "v", "extra")

    def test_rm_arity(self):
        self.expect_usage_error("rm")
        self.expect_usage_error("rm", "k", "extra")

    def test_unknown_subcommand(self):
        self.expect_usage_error("frobnicate", "k")

    def test_version(self):
        r = self.kvs("-V")
        self.assertEqual(r.returncode, 0)
        self.assertIn(header_version(), r.stdout)

    # ---- the commands ----

    def test_get_missing_key(self):
        self.expect(["get", "key1"], "Key not found\n")

    def test_rm_missing_key(self):
        self.expect(["rm", "key1"], "Key not found\n", ok=False)

    def test_set_prints_nothing(self):
        self.expect(["set", "key1", "value1"], "")

    def test_set_then_get(self):
        self.expect(["set", "key1", "value1"], "")
        self.expect(["get", "key1"], "value1\n")

    def test_overwrite(self):
        self.expect(["set", "key1", "value1"], "")
        self.expect(["set", "key1", "value2"], "")
        self.expect(["get", "key1"], "value2\n")

    def test_rm_stored_key(self):
        self.expect(["set", "key1", "value1"], "")
        self.expect(["rm", "key1"], "")
        self.expect(["get", "key1"], "Key not found\n")

    def test_data_persists_across_invocations(self):
        for i in range(5):
            self.expect(["set", f"key{i}", f"value{i}"], "")
        self.expect(["rm", "key2"], "")
        self.expect(["set", "key3", "value3b"], "")
        want = {0: "value0", 1: "value1", 3: "value3b", 4: "value4"}
        for i in range(5):
            self.expect(["get", f"key{i}"], want[i] + "\n" if i in want else "Key not found\n")

    def test_dir_option_before_or_after_command(self):
        data = os.path.join(self.cwd, "data")
        self.expect(["--dir", data, "set", "k1", "v1"], "")
        self.expect(["set", "k2", "v2", "--dir", data], "")
        self.expect(["get", "k1", "--dir", data], "v1\n")
        self.expect(["--dir", data, "get", "k2"], "v2\n")
        self.assertTrue(os.path.exists(os.path.join(data, "MANIFEST")))
        self.assertFalse(os.path.exists(os.path.join(self.cwd, "MANIFEST")))

    def test_locked_dir_is_in_use(self):
        self.expect(["set", "k", "v"], "")
        fd = os.open(self.cwd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            r = self.expect(["get", "k"], "", ok=False)
            self.assertIn("in use", r.stderr)
        finally:
            os.close(fd)
        self.expect(["get", "k"], "v\n")

    # ---- kvs upgrade ----

    def test_scan_arity(self):
        self.expect_usage_error("scan", "a*", "extra")

    def test_scan(self):
        for k in ("apple", "apricot", "banana", "a*b"):
            self.expect(["set", k, "v"], "")
        self.expect(["rm", "banana"], "")
        r = self.expect(["scan"], None)
        self.assertEqual(sorted(r.stdout.splitlines()), ["a*b", "apple", "apricot"])
        r = self.expect(["scan", "ap*"], None)
        self.assertEqual(sorted(r.stdout.splitlines()), ["apple", "apricot"])
        self.expect(["scan", "a\\*b"], "a*b\n")  # \* is a literal star
        self.expect(["scan", "[^a]*"], "")

    def test_upgrade_arity(self):
        self.expect_usage_error("upgrade", "a", "b")

    def test_upgrade_format2_store(self):
        data = os.path.join(self.cwd, "data")
        shutil.copytree(FORMAT2, data)
        with open(FORMAT2 + ".expected.txt", encoding="ascii") as f:
            sets = sum(1 for line in f if line.startswith("set "))
        r = self.expect(["--dir", data, "get", "key-000"], "", ok=False)
        self.assertIn("holds a format-2 store", r.stderr)
        self.assertIn("kvs upgrade " + data, r.stderr)
        r = self.expect(["upgrade", data], None)
        self.assertIn("read segment 1 of", r.stdout)
        self.assertIn("%d keys written" % sets, r.stdout)
        self.assertIn(data + ".format2", r.stdout)
        self.assertTrue(os.path.isdir(data + ".format2"))
        self.assertFalse(os.path.exists(data + ".upgrade"))
        r = self.expect(["--dir", data, "get", "key-000"], None)
        self.assertTrue(r.stdout.startswith("three-0.three-0."), r.stdout)
        self.expect(["--dir", data, "get", "key-015"], "Key not found\n")
        r = self.expect(["--dir", data, "upgrade"], None)
        self.assertIn("nothing to do", r.stdout)

    def test_upgrade_not_a_store(self):
        empty = os.path.join(self.cwd, "empty")
        os.mkdir(empty)
        r = self.expect(["upgrade", empty], "", ok=False)
        self.assertIn("holds no store", r.stderr)
        self.assertEqual(os.listdir(empty), [])
        r = self.expect(["upgrade", os.path.join(self.cwd, "missing")], "", ok=False)
        self.assertIn("no such directory", r.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_cli.py PATH_TO_kvs_BINARY [unittest options]")
    KVS = os.path.abspath(sys.argv.pop(1))
    unittest.main()

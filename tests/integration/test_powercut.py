#!/usr/bin/env python3
"""test_powercut.py -- power cuts and I/O errors under kvs-server, judged by the oracle.

Usage: python3 test_powercut.py PATH_TO_kvs-server PATH_TO_libcrashsim.so [unittest options]

kvs-server runs under the power-cut shim (tests/crashsim/crashsim.c, LD_PRELOAD), which records
what each fsync, fdatasync and directory fsync made durable. WRITERS threads, each with its own
connection and its own keys, send SETs and DELs (pipelined 1..6 at a time) through the oracle
(oracle.py). A round ends in a cut:

  - at a step: the shim exits right after the Kth call of a kind (CRASHSIM_CUT_ON) -- every step
    of a rotation (segment created, header written, room given, synced, directory synced,
    manifest edit written and synced, old segment cut to its data), of a compaction and of hint
    writing (output and hint written, synced, renamed, victims unlinked), of a manifest rewrite
    (MANIFEST.tmp created, written, synced, renamed);
  - at the Nth counted call of the process (CRASHSIM_CUT_AT), some of them inside recovery;
  - by SIGKILL at a random moment (some while the shim is inside a sync: CRASHSIM_SYNC_DELAY_US).

The directory a power loss could leave is then rebuilt (crashsim.rebuild: durable names and
content only, half the time a prefix of the later directory operations, half the files with
random bytes in what they lost) and the next round starts kvs-server on it -- under the shim
again, so a cut may land in recovery -- and reads every key back before writing:

  - the store opens (a start that fails for any reason but a cut of the shim fails the test);
  - no read fails (a record failing its checksum is refused with an error: served corrupt);
  - oracle.check(prefix=True): with --sync always nothing acknowledged is lost (grace 0); with
    everysec every write acknowledged more than 2 s before the cut survives (grace 2.0), and what
    survives is a prefix of the commit order.

I/O errors (IOErrorTest): the shim fails the Nth write, fdatasync, fsync, open, rename,
fallocate, mmap or ftruncate (N growing over the runs), once or for good, with EIO or ENOSPC, and
a failed sync either loses what it wrote or lands all the same. Then:

  - after a failed sync, every write is refused with an error that says a sync failed, and reads
    go on; nothing acknowledged after the failure (with --sync always: nothing acknowledged at
    all) is lost by a power cut that follows -- a store that retried its fsync and acknowledged
    writes behind pages the kernel dropped would lose them here ("fsyncgate");
  - any other failure never fences the store: failed writes are refused, and writes succeed again
    once the call works again (ENOSPC: once space returns);
  - in every case the directory, cut after the run, opens and passes the oracle.

Environment: KVS_POWERCUT_CUTS (cuts per sync mode; default 50, i.e. 100 in all), KVS_IOERR_RUNS
(fault runs; default 28), both scaled by KVS_TEST_SCALE and KVS_POWERCUT_SCALE; KVS_POWERCUT_SEED
(default random, always printed); KVS_POWERCUT_KEEP=1 keeps the directories of a failure.
Every wait is bounded, servers are stopped by pid, traffic only to 127.0.0.1.
"""
import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crashsim"))
import crashsim  # noqa: E402
import kvstest  # noqa: E402
from kvstest import RespConn, Server, ServerError, resp  # noqa: E402
from oracle import Oracle  # noqa: E402

SERVER = None
CRASHSIM = None
SCALE = float(os.environ.get("KVS_TEST_SCALE", "1")) * \
    float(os.environ.get("KVS_POWERCUT_SCALE", "1"))
CUTS = max(4, int(int(os.environ.get("KVS_POWERCUT_CUTS", "50")) * SCALE))
IOERR_RUNS = max(8, int(int(os.environ.get("KVS_IOERR_RUNS", "28")) * SCALE))
SEED = int(os.environ.get("KVS_POWERCUT_SEED") or random.randrange(1 << 32))
KEEP = os.environ.get("KVS_POWERCUT_KEEP") == "1"

WRITERS = 8
KEYS_PER_WRITER = 24
ENGINE_FLAGS = ["--segment-size", "16kb", "--compact-min-bytes", "32kb", "--threads", "2"]
IO_TIMEOUT = 20.0
STEP_DEADLINE = 1.0    # a round aimed at a step that has not come by then is killed instead
# A manifest rewrite every 64 edits (not 1024), so that cuts meet its steps.
SERVER_ENV = dict(os.environ, KVS_TEST_MANIFEST_RESET_EDITS="64")
SYNC_DELAY_US = 300    # latency of a simulated sync: a window for SIGKILL to land inside one
FENCE_TEXT = "sync to disk failed"

# Every step of a rotation, a compaction, hint writing and a manifest rewrite, as the shim names
# the calls (op:class). A round aimed at one cuts right after its Kth occurrence.
STEPS = [
    # rotation: seg_create, the manifest edit, the seal
    "create:log", "write:log", "fallocate:log", "fdatasync:log", "fsync:dir",
    "write:MANIFEST", "fdatasync:MANIFEST", "trunc:log",
    # compaction outputs and hint files, the commit, the victims' deletion
    "create:hint.tmp", "write:hint.tmp", "fdatasync:hint.tmp", "rename:hint.tmp",
    "unlink:log", "unlink:hint",
    # manifest rewrite
    "create:MANIFEST.tmp", "write:MANIFEST.tmp", "fdatasync:MANIFEST.tmp", "rename:MANIFEST.tmp",
]


class Failure(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# clients
# ---------------------------------------------------------------------------------------------

class Client(RespConn):
    """A blocking RESP connection: send commands, read whole replies as (raw bytes, value)
    pairs (kvstest.RespReader; each wait bounded by IO_TIMEOUT)."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        super().__init__(port, timeout)

    def call(self, cmds):
        self.send(b"".join(resp(*c) for c in cmds))
        return [self.reply() for _ in cmds]


FENCE_GRACE = 1.0   # s from a failed sync to the store refusing writes for it, at most


class Load:
    """WRITERS threads writing their own keys through the oracle until stopped or cut off."""

    def __init__(self, port, oracle, rng):
        self.port, self.oracle, self.stop = port, oracle, threading.Event()
        self.lock = threading.Lock()
        self.errors = collections.Counter()   # error replies by text
        self.acked = self.failed = 0
        self.first_fence = None   # monotonic time of the first fence error reply
        self.after_fence = []     # (sent, reply) of writes acknowledged well after a fence
        self.threads = [threading.Thread(target=self.run, args=(i, random.Random(rng.random())),
                                         daemon=True) for i in range(WRITERS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(IO_TIMEOUT + 5)

    def new_write(self, key, size):
        with self.lock:
            return self.oracle.begin(key, None if size is None else self.oracle.value(key, size))

    def run(self, i, rng):
        try:
            c = Client(self.port)
        except OSError:
            return
        keys = [b"w%d-k%02d" % (i, j) for j in range(KEYS_PER_WRITER)]
        try:
            while not self.stop.is_set():
                ws, cmds = [], []
                for _ in range(rng.randint(1, 6)):
                    key = rng.choice(keys)
                    if rng.random() < 0.15:
                        w = self.new_write(key, None)
                        cmds.append((b"DEL", key))
                    else:
                        size = rng.choice((60, 200, 700)) if rng.random() < 0.9 else \
                            rng.randint(2000, 6000)
                        w = self.new_write(key, size)
                        cmds.append((b"SET", key, w.value))
                    ws.append(w)
                sent = time.monotonic()
                replies = c.call(cmds)
                now = time.monotonic()
                with self.lock:
                    for w, (r, _) in zip(ws, replies):
                        if r.startswith(b"-"):
                            self.oracle.fail(w)
                            self.failed += 1
                            text = r[1:].decode(errors="replace").strip()
                            self.errors[text] += 1
                            if FENCE_TEXT in text and self.first_fence is None:
                                self.first_fence = now
                        else:
                            self.oracle.ack(w, now)
                            self.acked += 1
                            if self.first_fence is not None and sent > self.first_fence:
                                self.after_fence.append((sent, r))
        except (OSError, ConnectionError):
            pass  # the server is gone: what was in flight stays in flight
        finally:
            c.close()


def read_all(port, keys):
    """key -> value (None: absent) of every key, and the keys whose read failed."""
    c = Client(port)
    state, bad = {}, {}
    try:
        for i in range(0, len(keys), 64):
            chunk = keys[i:i + 64]
            for k, (r, v) in zip(chunk, c.call([(b"GET", k) for k in chunk])):
                if isinstance(v, bytes) or r == b"$-1\r\n":   # a value, or nil (absent)
                    state[k] = v
                else:   # an error reply, or anything else a GET does not answer
                    bad[k] = r.decode(errors="replace").strip()
    finally:
        c.close()
    return state, bad


# ---------------------------------------------------------------------------------------------
# one store through many cuts
# ---------------------------------------------------------------------------------------------

class Store:
    """A data directory, the oracle of what it holds, and the server runs on it."""

    def __init__(self, tmp, name, sync, engine, seed):
        self.tmp, self.sync, self.engine = tmp, sync, engine
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.rng = random.Random(seed)
        self.oracle = Oracle(self.rng.random())
        self.pending = None    # (cut time, what) of the cut the next start must be judged for
        self.rounds = 0
        self.log = []          # what each round did, for a failure's report
        self.stats = collections.Counter()

    def fail(self, msg, server=None, shadow=None):
        kept = ""
        if KEEP:
            dest = tempfile.mkdtemp(prefix="kvs-powercut-fail-")
            shutil.copytree(self.dir, os.path.join(dest, "data"))
            if shadow and os.path.isdir(shadow):
                shutil.copytree(shadow, os.path.join(dest, "shadow"))
            kept = "\nkept in %s" % dest
        raise Failure("%s\nseed %d, engine %s, sync %s, round %d\nlast rounds:\n  %s%s%s" % (
            msg, SEED, self.engine, self.sync, self.rounds, "\n  ".join(self.log[-6:]),
            ("\nserver stderr (tail):\n" + server.stderr_text()[-4000:]) if server else "",
            kept))

    def server(self, shadow=None, args=(), **shim):
        flags = ["--engine", self.engine, "--sync", self.sync] + \
            (ENGINE_FLAGS if self.engine == "kvs" else ["--threads", "2"]) + list(args)
        env = crashsim.env(CRASHSIM, self.dir, shadow, base=SERVER_ENV, **shim) if shadow \
            else None
        return Server(SERVER, self.dir, *flags, env=env, check_exit=False, start_timeout=60)

    def start(self, s):
        """Start s. False if the shim cut it during start-up (recovery); fails the test if the
        store does not open for any other reason."""
        try:
            s.start()
            return True
        except ServerError:
            rc = s.proc.poll() if s.proc else None
            if rc == crashsim.CUT_EXIT:
                return False
            self.fail("the store does not open (exit status %s)" % rc, s)

    def judge(self, s):
        """Read every key and judge the state against the pending cut."""
        keys = self.oracle.keys()
        state, bad = read_all(s.port, keys)
        if bad:
            self.fail("reads refused after a cut (a damaged record served or indexed): %s" %
                      "; ".join("%r: %s" % kv for kv in list(bad.items())[:5]), s)
        if self.pending:
            cut, what = self.pending
            grace = 2.0 if self.sync == "everysec" else 0.0
            problems = self.oracle.check(state, cut_time=cut, grace=grace, prefix=True)
            self.stats["writes checked"] += self.oracle.counts()["writes"]
            if problems:
                self.fail("after %s:\n  %s" % (what, "\n  ".join(problems[:12])), s)
            self.stats["checks"] += 1
        self.oracle.settle(state)
        self.pending = None

    def rebuild(self, shadow, what, cut_time):
        new = self.dir + ".new"
        report = crashsim.rebuild(shadow, self.dir, new, self.rng)
        crashsim.replace_dir(self.dir, new)
        self.pending = (cut_time, what) if self.pending is None else self.pending
        self.log[-1] += " | rebuilt: %s" % report
        self.stats["garbage files"] += len(report["garbage"])
        if report["inflight"]:
            self.stats["cuts inside a sync"] += 1


# ---------------------------------------------------------------------------------------------
# power cuts
# ---------------------------------------------------------------------------------------------

def plan(rng, n, sync):
    """n cuts: every step once (as far as n allows; in a long run, a third of the cuts go round
    the steps again and again), the rest at random calls or moments."""
    steps = max(min(len(STEPS), n - 4), n // 3)
    cuts = [("on", "%s:%d" % (STEPS[i % len(STEPS)], rng.choice((1, 1, 2, 3))))
            for i in range(steps)]
    while len(cuts) < n:
        r = rng.random()
        if r < 0.35:
            cuts.append(("at", rng.randint(1, 80) if rng.random() < 0.3 else
                         rng.randint(80, 3000)))
        else:
            # everysec: some rounds outlast the 2 s promise, so that it is put to the test
            long = sync == "everysec" and rng.random() < 0.1
            cuts.append(("kill", rng.uniform(2.3, 2.7) if long else rng.uniform(0.05, 0.6)))
    rng.shuffle(cuts)
    return cuts


def power_round(st, i, cut, shadow_root):
    shadow = os.path.join(shadow_root, "r%d" % i)
    os.makedirs(shadow_root, exist_ok=True)
    kind, arg = cut
    shim = {"sync_delay_us": SYNC_DELAY_US}
    arm = None
    if kind == "on":
        shim["cut_on"] = arg
        if st.rng.random() < 0.75:  # aim at the write path; else at recovery too
            arm = shim["arm"] = os.path.join(shadow_root, "arm%d" % i)
    elif kind == "at":
        shim["cut_at"] = arg
    st.rounds += 1
    st.log.append("round %d: cut %s %s" % (i, kind, arg))
    s = st.server(shadow, **shim)
    if not st.start(s):
        info = crashsim.cut_info(shadow)
        st.log[-1] += " -> cut in recovery at %s" % (info,)
        st.stats["cuts in recovery"] += 1
        st.rebuild(shadow, "a cut in recovery", info[3] if info else time.monotonic())
        shutil.rmtree(shadow, ignore_errors=True)
        return
    try:
        st.judge(s)
        if arm:
            open(arm, "w").close()
        load = Load(s.port, st.oracle, st.rng).start()
        deadline = time.monotonic() + (arg if kind == "kill" else STEP_DEADLINE)
        while time.monotonic() < deadline and s.running():
            time.sleep(0.01)
        if s.running():
            cut_time = time.monotonic()
            s.kill9()
            how = "SIGKILL after %.2fs" % (arg if kind == "kill" else STEP_DEADLINE)
            st.stats["cuts by SIGKILL" if kind == "kill" else "aimed cuts missed (SIGKILL)"] += 1
        else:
            rc = s.wait_exit()
            info = crashsim.cut_info(shadow)
            if rc != crashsim.CUT_EXIT or not info:
                st.fail("kvs-server died (exit status %s) without a cut" % rc, s)
            cut_time = info[3]
            how = "cut after call %d (%s %s)" % (info[0], info[1], info[2])
            st.stats["cuts at a step" if kind == "on" else "cuts at call N"] += 1
            st.stats["cut on " + info[1] + ":" + crashsim_class(info[2])] += 1
        load.finish()
        st.stats["acknowledged"] += load.acked
        if load.errors:
            st.fail("write errors without a fault: %s" % dict(load.errors), s)
        st.log[-1] += " -> %s, %d acked" % (how, load.acked)
    finally:
        if s.running():
            s.kill9()
        if s.proc and s.proc.stderr:
            s.proc.stderr.close()
    st.rebuild(shadow, how, cut_time)
    shutil.rmtree(shadow, ignore_errors=True)


def crashsim_class(name):
    for c in ("hint.tmp", "MANIFEST.tmp", "ENGINE.tmp"):
        if name.endswith(c) or name == c:
            return c
    if name == ".":
        return "dir"
    if name.endswith(".log"):
        return "log"
    if name.endswith(".hint"):
        return "hint"
    return name


def final_check(st):
    """The last state, read by a kvs-server without the shim, which must stop cleanly."""
    s = st.server(None)
    st.log.append("final open without the shim")
    if not st.start(s):
        st.fail("the store does not open")
    try:
        st.judge(s)
    finally:
        rc = s.stop(check=False)
    if rc != 0:
        st.fail("kvs-server did not stop cleanly (exit status %s)" % rc, s)


class PowerCutTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-powercut-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def cuts(self, sync, engine="kvs", n=CUTS):
        seed = SEED ^ zlib.crc32((sync + engine).encode())
        st = Store(self.tmp, "data", sync, engine, seed)
        shadow_root = os.path.join(self.tmp, "shadow")
        t0 = time.monotonic()
        for i, cut in enumerate(plan(random.Random(seed), n, sync)):
            power_round(st, i, cut, shadow_root)
        final_check(st)
        st.stats["cuts"] = n
        print("# powercut %s/%s: %d cuts in %.1fs: %s" % (
            engine, sync, n, time.monotonic() - t0,
            ", ".join("%s %d" % kv for kv in sorted(st.stats.items()))), flush=True)

    def test_always(self):
        self.cuts("always")

    def test_everysec(self):
        self.cuts("everysec")


# ---------------------------------------------------------------------------------------------
# I/O errors
# ---------------------------------------------------------------------------------------------

SYNC_OPS = ("fsync", "fdatasync", "msync")
# (op, errno) of the kvs engine's runs, in turn; N grows with the turns
KVS_FAULTS = [("fdatasync", None), ("write", "ENOSPC"), ("fsync", None), ("fallocate", "ENOSPC"),
              ("open", None), ("fdatasync", None), ("rename", None), ("write", None),
              ("mmap", None), ("ftruncate", None), ("fallocate", None)]


def fault_round(st, i, fault, shadow_root):
    op, err, n, mode, landed = fault
    shadow = os.path.join(shadow_root, "f%d" % i)
    os.makedirs(shadow_root, exist_ok=True)
    st.rounds += 1
    st.log.append("round %d: fail %s:%d %s %s%s" % (i, op, n, mode, err or "EIO",
                                                     " landed" if landed else ""))
    s = st.server(shadow, fail="%s:%d" % (op, n), fail_mode=mode, fail_errno=err,
                  landed=landed, sync_delay_us=0)
    try:
        s.start()
    except ServerError:
        # the fault hit the opening: the server says so and exits; the directory is left as a
        # crash would leave it, and opens once the fault is gone (the next round)
        if not crashsim.faults(shadow):
            st.fail("the store does not open (no fault injected)", s)
        if "cannot open the data directory" not in s.stderr_text():
            st.fail("kvs-server failed to open without saying why", s)
        st.log[-1] += " -> in the opening: %s" % s.stderr_text().strip().splitlines()[-1][-160:]
        st.stats["faults in the opening"] += 1
        st.rebuild(shadow, "a fault at open", time.monotonic())
        shutil.rmtree(shadow, ignore_errors=True)
        return
    try:
        st.judge(s)
        load = Load(s.port, st.oracle, st.rng).start()
        # lmdb everysec: its syncer syncs once a second, and that is the sync that fails
        time.sleep(st.rng.uniform(1.3, 1.8) if st.engine == "lmdb" and st.sync == "everysec"
                   else st.rng.uniform(0.4, 0.9))
        # reads go on, whatever failed
        state, bad = read_all(s.port, [b"w0-k00", b"w3-k05"])
        if bad:
            st.fail("reads fail after a fault: %s" % bad, s)
        # writes go on after a fault that is not a sync's and not for good (a key of no writer)
        probe = []
        if mode == "once" and op not in SYNC_OPS:
            c = Client(s.port)
            try:
                for _ in range(5):
                    probe = [raw for raw, _ in c.call([(b"SET", b"probe", b"after the fault")])]
                    if probe[0].startswith(b"+OK"):
                        break
                    time.sleep(0.2)
            finally:
                c.close()
        cut_time = time.monotonic()
        s.kill9()
        load.finish()
    finally:
        if s.running():
            s.kill9()
        if s.proc and s.proc.stderr:
            s.proc.stderr.close()
    faults = crashsim.faults(shadow)
    st.stats["faults injected"] += len(faults)
    st.stats["acknowledged"] += load.acked
    synced = [f for f in faults if f[1] in SYNC_OPS]
    fence_errors = sum(c for e, c in load.errors.items() if FENCE_TEXT in e)
    fenced_expected = synced and not (st.engine == "lmdb" and st.sync == "always")
    if fenced_expected:
        t = synced[0][5]
        # the store learns of the failure when the failed call returns to it: allow that a
        # moment (FENCE_GRACE: a loaded machine's scheduler can hold the syncing thread that
        # long) — but once it has refused one write for it, it acknowledges none sent after
        if load.after_fence:
            st.fail("%d writes acknowledged after one was refused for a failed sync, e.g. %r" %
                    (len(load.after_fence), load.after_fence[0]), s)
        late = [w for h in st.oracle.history.values() for w in h
                if w.acked is not None and w.sent > t + FENCE_GRACE]
        if late:
            st.fail("%d writes acknowledged after a failed sync (at %.3f), e.g. %r" %
                    (len(late), t, late[0]), s)
        sent_after = [w for h in st.oracle.history.values() for w in h
                      if w.sent > t + FENCE_GRACE]
        if sent_after and not fence_errors:
            st.fail("writes after a failed sync were refused without saying why: %s" %
                    dict(load.errors), s)
        st.stats["fenced stores"] += 1
        st.stats["writes refused after a failed sync"] += fence_errors
        if st.sync == "everysec":
            cut_time = t  # what was acknowledged since the last good sync may be lost
    else:
        if fence_errors:
            st.fail("fenced without a failed sync (faults %s): %s" % (faults, dict(load.errors)),
                    s)
        if err == "ENOSPC" and load.errors and not any("no space left" in e for e in load.errors):
            st.fail("a full disk reported as %s" % dict(load.errors), s)
        if probe and not probe[0].startswith(b"+OK"):
            st.fail("writes still fail after a failure that was not a sync and did not last "
                    "(%s): %r" % (faults, probe[0]), s)
    st.stats["write errors"] += load.failed
    st.log[-1] += " -> faults %s, errors %s, %d acked" % (
        [f[:3] for f in faults][:3], dict(load.errors), load.acked)
    st.rebuild(shadow, "a power cut after faults %s" % [f[:2] for f in faults], cut_time)
    shutil.rmtree(shadow, ignore_errors=True)


def fault_plan(rng, n, engine):
    plan = []
    for k in range(n):
        if engine == "lmdb":
            op, err = "fdatasync", None
        else:
            op, err = KVS_FAULTS[k % len(KVS_FAULTS)]
        turn = k // (1 if engine == "lmdb" else len(KVS_FAULTS))
        # lmdb: the syncer's syncs, one a second; kvs: N grows with the turns
        nth = 1 + turn * 4 + rng.randint(0, 5)
        mode = "always" if rng.random() < 0.3 else "once"
        plan.append((op, err, nth, mode, op in SYNC_OPS and rng.random() < 0.5))
    return plan


class IOErrorTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-ioerr-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def faults(self, engine, sync, n, first=None):
        """n runs; first: fail that call of its op (the lmdb syncer's: its first)."""
        seed = SEED ^ zlib.crc32(("io" + sync + engine).encode())
        st = Store(self.tmp, "data-%s-%s" % (engine, sync), sync, engine, seed)
        shadow_root = os.path.join(self.tmp, "shadow")
        t0 = time.monotonic()
        final_check(st)  # a store made without faults: the faults hit its use, not its birth
        for i, f in enumerate(fault_plan(random.Random(seed), n, engine)):
            fault_round(st, i, f if first is None else f[:2] + (first,) + f[3:], shadow_root)
        final_check(st)
        print("# ioerrors %s/%s: %d runs in %.1fs: %s" % (
            engine, sync, n, time.monotonic() - t0,
            ", ".join("%s %d" % kv for kv in sorted(st.stats.items()))), flush=True)

    def test_kvs_always(self):
        self.faults("kvs", "always", IOERR_RUNS // 2)

    def test_kvs_everysec(self):
        self.faults("kvs", "everysec", IOERR_RUNS // 2)

    def test_lmdb(self):
        self.faults("lmdb", "everysec", max(2, IOERR_RUNS // 8), first=1)
        self.faults("lmdb", "always", max(2, IOERR_RUNS // 8))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_powercut.py PATH_TO_kvs-server PATH_TO_libcrashsim.so [options]")
    SERVER = os.path.abspath(sys.argv[1])
    CRASHSIM = os.path.abspath(sys.argv[2])
    print("# powercut seed %d (KVS_POWERCUT_SEED), %d cuts per mode" % (SEED, CUTS), flush=True)
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])

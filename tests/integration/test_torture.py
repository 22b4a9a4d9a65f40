#!/usr/bin/env python3
"""test_torture.py -- kill -9 torture with the oracle: nothing acknowledged is ever lost.

Usage: python3 test_torture.py PATH_TO_kvs-server PATH_TO_kvs_writer [unittest options]
       python3 test_torture.py PATH_TO_kvs-server PATH_TO_kvs_writer --soak SECONDS

A load client writes through the oracle (oracle.py): CLIENTS writers, each with its own
connection and its own keys, send SETs of small and large values (up to 256 KiB), DELs of one
to three keys, MSETs of two to six keys and GETs, one at a time or pipelined (2..16 commands).
Every write is begun in the oracle before it is sent and acknowledged when its reply arrives;
every GET must return the last acknowledged value of its key or one in flight (the oracle's
rule) and, since a connection runs its commands in order, exactly the last value written before
it on that connection (read-your-writes, as Redis).

A cycle: kvs-server starts on the data directory (--segment-size 64kb --compact-min-bytes
128kb, so segments rotate and compaction runs all the time), every key is read back (MGET in
chunks) and judged -- each key holds its last acknowledged value or an in-flight one, no value
appears that was never sent, removed keys stay removed, DBSIZE counts no key that was never
written -- then the load runs for a random short time and the server is killed (SIGKILL, by
pid) at a random moment; on the kvs engine, some kills are aimed at a running compaction (a
thread polls INFO's `compacting` and kills the moment it reads 1; a restart that finds the
compaction's leftovers confirms the aim). A kill loses nothing acknowledged in any sync mode:
an acknowledged write is in the kernel. Both engines, every sync mode. The last cycle ends with
a clean stop (exit 0) and one more check, by kvs-server and then by libkvs (kvs_writer dump).

The embedded library the same way: kvs_writer (tests/torture/kvs_writer.c) opens the directory
with libkvs and applies the writes it is sent on stdin on LANES threads, printing each
acknowledgement; it is killed mid-write (some kills as it reports a compaction running), and
`kvs_writer dump` reopens the store and reads every key back for the oracle.

The soak (`make soak`, --soak SECONDS) mixes all of it for a set time on both engines: server and
embedded epochs of random length and sync mode, ended by kills at random, kills during
compaction, clean stops and power cuts (the shim of tests/crashsim/, when it is built; see POWER
CUTS below).

Environment: KVS_TORTURE_SEED (default: random; always printed), KVS_TORTURE_CYCLES (cycles per
engine x sync mode; default 4 for the server and 3 for the library, scaled by KVS_TEST_SCALE;
`make torture` sets 200); the soak: SOAK_CUTS=0 (kills only), KVS_CRASHSIM_LIB. Every wait is
bounded; servers are stopped by pid; traffic only to 127.0.0.1 on ports the kernel picks. A
failure names the seed, the engine, the sync mode, the cycle and the oracle's problems, and
keeps a copy of the data directory (its path is printed). Each run ends with its figures: cycles,
kills (during a compaction), writes sent/acknowledged/in flight, keys and reads checked, losses,
and the warnings the restarts logged, by kind.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402
from kvstest import RespConn, Server, ServerError, resp  # noqa: E402
from oracle import Oracle, decode  # noqa: E402

SERVER = None
WRITER = None
ENGINES = ("kvs", "lmdb")
SYNCS = ("always", "everysec", "never")
CLIENTS = 8              # writer connections (server) / lanes (library)
KEYS_PER_CLIENT = 32     # each client's own keys
SEGMENT_SIZE = 64 << 10
COMPACT_MIN = 128 << 10
ENGINE_FLAGS = ["--segment-size", str(SEGMENT_SIZE), "--compact-min-bytes", str(COMPACT_MIN)]
PIPE_P = 0.4             # share of round trips that are pipelines
PIPE_MAX = 16
MGET_CHUNK = 32
IO_TIMEOUT = 30.0        # any single socket or pipe wait
LOAD_MIN, LOAD_MAX = 0.15, 1.2   # seconds of load before a random kill
COMPACT_AIM_P = 0.4      # kvs engine: share of kills aimed at a running compaction
COMPACT_WAIT = 3.0       # ... waiting at most this long for one to start
MAX_PROBLEMS = 20

SCALE = float(os.environ.get("KVS_TEST_SCALE", "1") or 1)
SEED = int(os.environ.get("KVS_TORTURE_SEED") or random.SystemRandom().randrange(1 << 32))
_CYCLES_ENV = int(os.environ.get("KVS_TORTURE_CYCLES", "0") or 0)


def cycles(default):
    return _CYCLES_ENV or max(1, int(round(default * SCALE)))


# ---------------------------------------------------------------------------------------------
# POWER CUTS, in the soak: the epoch's process (kvs-server or kvs_writer) runs under the
# power-cut shim (tests/crashsim/crashsim.c, LD_PRELOAD; crashsim.py), is killed at a random
# moment, and the directory a power loss could leave is rebuilt from what the shim recorded
# (crashsim.rebuild) and put in the store's place. The restart is judged with the promise of a
# cut: oracle.check(cut_time, grace, prefix=True) -- grace 0 for --sync always, CUT_GRACE for
# everysec (as test_powercut.py); `never` promises nothing, so its epochs end in kills instead.
# The shim is used when libcrashsim.so is found (KVS_CRASHSIM_LIB, or lib/ beside the bin/ of
# kvs-server) and SOAK_CUTS is not 0; otherwise the soak says so and kills instead.
# ---------------------------------------------------------------------------------------------
CRASHSIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crashsim")
CUT_GRACE = {"always": 0.0, "everysec": 2.0}
CRASHSIM_LIB = None
crashsim = None


def power_cut_available():
    """Load the shim's Python side once, if the shim is built; True if cuts can be made."""
    global CRASHSIM_LIB, crashsim
    if crashsim is not None:
        return True
    if os.environ.get("SOAK_CUTS", "1") == "0" or SERVER is None:
        return False
    lib = os.environ.get("KVS_CRASHSIM_LIB") or os.path.join(
        os.path.dirname(os.path.dirname(SERVER)), "lib", "libcrashsim.so")
    if not os.path.exists(lib) or not os.path.exists(os.path.join(CRASHSIM_DIR, "crashsim.py")):
        return False
    sys.path.insert(0, CRASHSIM_DIR)
    import crashsim as cs   # noqa: E402 -- tests/crashsim/crashsim.py
    if not all(hasattr(cs, f) for f in ("env", "rebuild", "replace_dir")):
        return False
    CRASHSIM_LIB, crashsim = os.path.abspath(lib), cs
    return True


# ---------------------------------------------------------------------------------------------
# RESP over a raw socket
# ---------------------------------------------------------------------------------------------

class RespError(Exception):
    pass


def plain(v):
    """A kvstest.RespReader value as this test reads it: status -> str, error -> a RespError
    instance, arrays element by element; bytes, None and int as they are."""
    if isinstance(v, tuple):
        return v[1].decode() if v[0] == "+" else RespError(v[1].decode("utf-8", "replace"))
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


class Conn(RespConn):
    """A blocking RESP2 connection: send bytes, read parsed replies one at a time (bulk -> bytes
    or None, integer -> int, status -> str, error -> RespError instance, array -> list). The
    reader is kvstest.RespReader: each wait is bounded by the socket's timeout (IO_TIMEOUT); a
    close or a timeout raises an OSError (ConnectionError, TimeoutError), a malformed reply a
    ValueError."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        super().__init__(port, timeout)

    def reply(self):
        return plain(super().reply()[1])

    def call(self, *args):
        self.send(resp(*args))
        r = self.reply()
        if isinstance(r, RespError):
            raise r
        return r


# ---------------------------------------------------------------------------------------------
# what is written
# ---------------------------------------------------------------------------------------------

def value_size(rng):
    """Mostly small values, some of a few KiB, a few large ones up to 256 KiB."""
    r = rng.random()
    if r < 0.70:
        return rng.randint(20, 400)
    if r < 0.93:
        return rng.randint(400, 16 << 10)
    if r < 0.985:
        return rng.randint(16 << 10, 64 << 10)
    return rng.randint(64 << 10, 256 << 10)


def client_keys(c):
    return [b"t%d:%03d" % (c, i) for i in range(KEYS_PER_CLIENT)]


def all_keys():
    return [k for c in range(CLIENTS) for k in client_keys(c)]


def plan(rng, keys):
    """One command as (kind, [(key, size or None)]): kind SET, DEL, MSET or GET."""
    r = rng.random()
    if r < 0.50:
        return "SET", [(rng.choice(keys), value_size(rng))]
    if r < 0.62:
        return "DEL", [(k, None) for k in rng.sample(keys, rng.randint(1, 3))]
    if r < 0.80:
        return "MSET", [(k, value_size(rng)) for k in rng.sample(keys, rng.randint(2, 6))]
    return "GET", [(rng.choice(keys), None)]


class Tally:
    """Figures of a run, summed over its cycles (thread-safe)."""
    FIELDS = ("cycles", "kills", "kills_aimed", "kills_in_compaction", "compaction_leftovers",
              "torn_tails", "clean_stops", "cuts", "writes", "acked", "failed", "in_flight",
              "in_flight_survived", "keys_checked", "reads_checked", "losses")

    def __init__(self):
        self.lock = threading.Lock()
        self.warnings = {}
        for f in self.FIELDS:
            setattr(self, f, 0)

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def warn(self, kind):
        with self.lock:
            self.warnings[kind] = self.warnings.get(kind, 0) + 1

    def merge(self, other):
        self.add(**{f: getattr(other, f) for f in self.FIELDS})
        for k, v in other.warnings.items():
            with self.lock:
                self.warnings[k] = self.warnings.get(k, 0) + v

    def warnings_text(self):
        """The warnings logged at the restarts, by kind (most frequent first)."""
        return "".join("\n#   %5d x %s" % (n, k) for k, n in
                       sorted(self.warnings.items(), key=lambda kv: -kv[1]))

    def line(self):
        return ("%d cycles: %d kills (%d of them power cuts; %d aimed at a compaction, %d landed "
                "while INFO/stats said compacting:1, %d restarts found a compaction's leftovers), "
                "%d clean stops; %d torn tails truncated; %d writes sent, %d acked, %d failed, %d "
                "in flight at a kill (%d of them survived); %d keys checked, %d live reads "
                "checked; losses: %d"
                % (self.cycles, self.kills, self.cuts, self.kills_aimed, self.kills_in_compaction,
                   self.compaction_leftovers, self.clean_stops, self.torn_tails,
                   self.writes, self.acked, self.failed, self.in_flight,
                   self.in_flight_survived, self.keys_checked, self.reads_checked, self.losses))


class TortureFailure(AssertionError):
    pass


# ---------------------------------------------------------------------------------------------
# the store under test: one data directory, one engine, one oracle
# ---------------------------------------------------------------------------------------------

_LEFTOVER_RE = re.compile(r"removing .*(dropped by a compaction|not named by the manifest)")
_TORN_RE = re.compile(r"torn tail")
_WARN_RE = re.compile(r"(?:warning|error): (.*)")


def warning_kind(msg):
    """A log message with its numbers and file names blanked, to count kinds of warnings."""
    return re.sub(r"\d+", "N", re.sub(r"/\S*/", "", msg)).strip()[:120]


class Store:
    def __init__(self, dir, engine, seed, tally, label):
        self.dir = dir
        self.engine = engine
        self.oracle = Oracle(seed)
        self.rng = random.Random(seed)
        self.tally = tally
        self.label = label
        self.cycle = 0
        self.sync = None
        self.pending_cut = None   # (cut time, grace) of a power cut the next judge must allow
        self.shadow = None        # the shim's record of the running process (a cut epoch)

    def keep(self):
        """A copy of the data directory for the post-mortem (its path), or None."""
        try:
            dest = tempfile.mkdtemp(prefix="kvs-torture-failed-%d-" % SEED)
            shutil.copytree(self.dir, os.path.join(dest, os.path.basename(self.dir)))
            return dest
        except OSError:
            return None

    def fail(self, what, problems=()):
        kept = self.keep()
        problems = list(problems[:MAX_PROBLEMS]) + (["data directory kept in " + kept]
                                                    if kept else [])
        raise TortureFailure("%s: seed %d (KVS_TORTURE_SEED=%d), engine %s, sync %s, cycle %d: "
                             "%s%s" % (self.label, SEED, SEED, self.engine, self.sync,
                                       self.cycle, what,
                                       "".join("\n  " + p for p in problems)))

    # ---- judging what a restarted store holds ----

    def judge(self, state, nkeys):
        """Check state (key -> value or None) read after a restart against the oracle, count
        what was checked, and adopt it as the new baseline."""
        o = self.oracle
        if self.pending_cut:
            # a power cut: what was acknowledged grace seconds before it, and a prefix of the
            # commit order
            cut, grace = self.pending_cut
            self.pending_cut = None
            problems = o.check(state, cut_time=cut, grace=grace, prefix=True)
        else:
            # a kill: every acknowledged write is there (which implies the prefix property)
            problems = o.check(state, prefix=False)
        present = sum(v is not None for v in state.values())
        if nkeys is not None and nkeys != present:
            problems.append("the store counts %d keys, but %d of the oracle's keys are present: "
                            "a key that was never written?" % (nkeys, present))
        c = o.counts()
        survived = 0
        for v in state.values():
            d = decode(v) if v is not None else None
            w = o.by_n.get(d[1]) if d else None
            if w is not None and w.acked is None:
                survived += 1
        self.tally.add(writes=c["writes"], acked=c["acked"], failed=c["failed"],
                       in_flight=c["in_flight"], in_flight_survived=survived,
                       keys_checked=len(state), losses=sum("lost" in p for p in problems))
        if problems:
            self.fail("the oracle's problems after a restart:", problems)
        o.settle(state)

    def count_recovery(self, log):
        self.tally.add(compaction_leftovers=1 if _LEFTOVER_RE.search(log) else 0,
                       torn_tails=len(_TORN_RE.findall(log)))
        for m in _WARN_RE.finditer(log):
            self.tally.warn(warning_kind(m.group(1)))

    # ---- the server ----

    def server_args(self, sync):
        return ["--engine", self.engine, "--sync", sync, "--threads", "2", *ENGINE_FLAGS]

    def start_server(self, sync, env=None):
        self.sync = sync
        srv = Server(SERVER, self.dir, *self.server_args(sync), env=env)
        try:
            srv.start()
        except ServerError as e:
            self.fail("the store does not reopen under kvs-server", [str(e)])
        self.count_recovery(srv.stderr_text())
        return srv

    def read_server(self, srv):
        keys = all_keys()
        state = {}
        errors = []
        c = Conn(srv.port)
        try:
            for i in range(0, len(keys), MGET_CHUNK):
                chunk = keys[i:i + MGET_CHUNK]
                c.send(resp("MGET", *chunk))
                got = c.reply()
                if isinstance(got, RespError):   # a key that cannot be read: find which
                    got = []
                    for k in chunk:
                        c.send(resp("GET", k))
                        r = c.reply()
                        if isinstance(r, RespError):
                            errors.append("GET %r after the restart: %s" % (k, r))
                            r = None
                        got.append(r)
                state.update(zip(chunk, got))
            nkeys = c.call("DBSIZE")
        finally:
            c.close()
        if errors:
            self.fail("reads refused after the restart", errors)
        return state, nkeys

    # ---- power cuts ----

    def cut_env(self):
        """Start recording for a power cut: the environment that runs a process under the
        shim (a new shadow directory each time)."""
        self.shadow = tempfile.mkdtemp(prefix="kvs-soak-shadow-")
        return crashsim.env(CRASHSIM_LIB, self.dir, self.shadow)

    def cut(self, cut_time):
        """After the kill of a process run under cut_env(): put in the directory's place what a
        power loss could have left, for the next judge to allow."""
        new = self.dir + ".cut"
        try:
            report = crashsim.rebuild(self.shadow, self.dir, new, random.Random(self.rng.random()))
            crashsim.replace_dir(self.dir, new)
        finally:
            shutil.rmtree(self.shadow, ignore_errors=True)
            self.shadow = None
        self.pending_cut = (cut_time, CUT_GRACE[self.sync])
        self.tally.add(cuts=1)
        return report

    def server_cycle(self, srv, sync, end="kill", duration=None):
        """Judge what srv holds, run the load on it, end it (kill at a random moment or aimed at
        a compaction, a clean stop, or -- srv started under cut_env() -- a power cut) and start
        the next server. Returns that server."""
        self.cycle += 1
        self.judge(*self.read_server(srv))
        duration = duration if duration is not None else self.rng.uniform(LOAD_MIN, LOAD_MAX)
        load = ServerLoad(self, srv, self.rng.randrange(1 << 62))
        load.start()
        self.drive(load, end, duration)
        if end != "stop":
            cut_time = load.kill_time or time.monotonic()
            srv.kill9()
            srv.proc.stderr.close()
        else:
            load.finish()
        load.join()
        if end == "stop" and srv.stop(check=False) != 0:
            self.fail("kvs-server did not stop cleanly", [srv.stderr_text()[-3000:]])
        if end == "cut":
            self.cut(cut_time)
        self.count_load(load, end)
        return self.start_server(sync)

    def drive(self, load, end, duration):
        """Let load run for duration, then: for a clean end, return; for a kill, mark the load
        dying (the caller kills). On the kvs engine some kills are aimed at a compaction: after
        a random part of duration the load is armed to kill the moment one runs, and given
        COMPACT_WAIT more for it."""
        aim = end != "stop" and self.engine == "kvs" and self.rng.random() < COMPACT_AIM_P
        if aim:
            time.sleep(self.rng.uniform(0, duration))
            load.arm()
            load.aimed.wait(COMPACT_WAIT)
        else:
            time.sleep(duration)
        load.aimed_kill = aim
        if end != "stop":
            load.dying.set()

    def count_load(self, load, end):
        if end != "stop":
            self.tally.add(kills=1, kills_aimed=1 if load.aimed_kill else 0,
                           kills_in_compaction=1 if load.killed_in_compaction or
                           (not load.aimed_kill and load.compacting) else 0)
        else:
            self.tally.add(clean_stops=1)
        self.tally.add(cycles=1, reads_checked=load.reads)
        if load.problems:
            self.fail("problems while the load ran:", load.problems)

    def run_server(self, sync, n):
        srv = self.start_server(sync)
        try:
            for i in range(n):
                srv = self.server_cycle(srv, sync, end="stop" if i == n - 1 else "kill")
            self.judge(*self.read_server(srv))
            if srv.stop(check=False) != 0:
                self.fail("kvs-server did not stop cleanly", [srv.stderr_text()[-3000:]])
            self.judge(*self.read_embedded())   # and libkvs reads what the server wrote
        finally:
            if srv.running():
                srv.stop(check=False)

    # ---- the library in a child process ----

    def writer_args(self, sync):
        return ["--engine", self.engine, "--sync", sync, "--segment-size", str(SEGMENT_SIZE),
                "--compact-min-bytes", str(COMPACT_MIN), "--lanes", str(CLIENTS)]

    def read_embedded(self):
        """Reopen the store with kvs_writer dump and read every key: (state, keys it counts)."""
        keys = all_keys()
        inp = b"".join(b"%d\n%s" % (len(k), k) for k in keys)
        try:
            p = subprocess.run([WRITER, "dump", self.dir, "--engine", self.engine], input=inp,
                               capture_output=True, timeout=120,
                               preexec_fn=kvstest._die_with_parent)
        except subprocess.TimeoutExpired:
            self.fail("kvs_writer dump did not finish in 120 s")
        out, pos = p.stdout, 0

        def line():
            nonlocal pos
            i = out.find(b"\n", pos)
            if i < 0:
                self.fail("kvs_writer dump: output cut (exit %s)" % p.returncode,
                          [p.stderr.decode("utf-8", "replace")[-3000:]])
            s, pos = out[pos:i].decode(), i + 1
            return s.split()

        first = line()
        if first[0] == "OPEN":
            self.fail("the store does not reopen under libkvs", [" ".join(first)])
        nkeys = int(first[1])
        self.count_recovery(p.stderr.decode("utf-8", "replace"))
        state = {}
        for k in keys:
            f = line()
            rc, vlen = int(f[2]), int(f[3])
            if rc not in (0, -1):
                self.fail("kvs_get of %r after reopening: error %d" % (k, rc))
            state[k] = bytes(out[pos:pos + vlen]) if rc == 0 else None
            pos += vlen if rc == 0 else 0
        last = line()
        if last != ["CLOSED", "0"] or p.returncode != 0:
            self.fail("kvs_writer dump: %r, exit %s" % (last, p.returncode),
                      [p.stderr.decode("utf-8", "replace")[-3000:]])
        return state, nkeys

    def embedded_cycle(self, sync, end="kill", duration=None):
        self.cycle += 1
        self.sync = sync
        self.judge(*self.read_embedded())
        duration = duration if duration is not None else self.rng.uniform(LOAD_MIN, LOAD_MAX)
        load = EmbeddedLoad(self, sync, self.rng.randrange(1 << 62),
                            env=self.cut_env() if end == "cut" else None)
        load.start()
        self.drive(load, end, duration)
        if end != "stop":
            load.kill()
        else:
            load.finish()
        load.join()
        if end == "cut":
            self.cut(load.kill_time)
        self.count_load(load, end)

    def run_embedded(self, sync, n):
        for i in range(n):
            self.embedded_cycle(sync, end="stop" if i == n - 1 else "kill")
        self.judge(*self.read_embedded())


# ---------------------------------------------------------------------------------------------
# the load: through kvs-server
# ---------------------------------------------------------------------------------------------

class ServerLoad:
    """CLIENTS writer threads on their own connections and keys, and a thread that watches
    INFO's compacting flag (and, when aimed, kills the server the moment it reads 1)."""

    def __init__(self, store, srv, seed):
        self.store, self.srv, self.seed = store, srv, seed
        self.oracle = store.oracle
        self.stop = threading.Event()
        self.dying = threading.Event()   # set before any kill: connection errors are expected
        self.aimed = threading.Event()   # set when an aimed kill was made
        self.killed_in_compaction = False
        self.aimed_kill = False
        self.kill_time = None            # when the monitor killed (an aimed kill)
        self.compacting = False          # the flag as last read
        self.aim = False
        self.problems = []
        self.reads = 0
        self.lock = threading.Lock()
        self.threads = []

    def problem(self, p):
        with self.lock:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(p)

    def arm(self):
        """Kill the server the moment INFO says a compaction runs (the monitor does it)."""
        self.aim = True

    def start(self):
        conns = [Conn(self.srv.port) for _ in range(CLIENTS + 1)]
        for c in range(CLIENTS):
            t = threading.Thread(target=self._guard, args=(self.writer, c, conns[c]), daemon=True)
            self.threads.append(t)
        self.threads.append(threading.Thread(target=self._guard,
                                             args=(self.monitor, None, conns[CLIENTS]),
                                             daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()

    def join(self):
        for t in self.threads:
            t.join(timeout=2 * IO_TIMEOUT)
            if t.is_alive():
                self.problem("a load thread did not end within %.0f s" % (2 * IO_TIMEOUT))

    def _guard(self, fn, arg, conn):
        try:
            fn(arg, conn)
        except (OSError, ConnectionError) as e:
            if not self.dying.is_set():
                self.problem("%s: connection lost without a kill: %r" % (fn.__name__, e))
        except Exception as e:  # noqa: BLE001 -- reported by the main thread
            self.problem("%s: %r" % (fn.__name__, e))
        finally:
            conn.close()

    def monitor(self, _, conn):
        while not self.stop.is_set() and not self.dying.is_set():
            info = conn.call("INFO", "engine")
            self.compacting = b"compacting:1" in info
            if self.aim and self.compacting and not self.dying.is_set():
                self.dying.set()
                self.kill_time = time.monotonic()
                os.kill(self.srv.pid, signal.SIGKILL)
                self.killed_in_compaction = True
                self.aimed.set()
                return
            time.sleep(0.001)

    def writer(self, c, conn):
        rng = random.Random(self.seed + c)
        keys = client_keys(c)
        o = self.oracle
        last = {}   # key -> the last write of it sent on this connection
        while not self.stop.is_set() and not self.dying.is_set():
            nb = rng.randint(2, PIPE_MAX) if rng.random() < PIPE_P else 1
            cmds, pending = [], []
            for _ in range(nb):
                kind, items = plan(rng, keys)
                if kind == "GET":
                    k = items[0][0]
                    cmds.append(resp("GET", k))
                    pending.append(("GET", (k, last.get(k), o.last_n())))
                    continue
                ws = [o.new_write(k, size) for k, size in items]
                for w in ws:
                    last[w.key] = w
                if kind == "SET":
                    cmds.append(resp("SET", ws[0].key, ws[0].value))
                elif kind == "DEL":
                    cmds.append(resp("DEL", *[w.key for w in ws]))
                else:
                    cmds.append(resp("MSET", *[x for w in ws for x in (w.key, w.value)]))
                pending.append((kind, ws))
            since = time.monotonic()
            conn.send(b"".join(cmds))
            for kind, what in pending:
                r = conn.reply()
                if kind == "GET":
                    self.check_get(what, r, since)
                    continue
                if isinstance(r, RespError) or (kind == "DEL" and not isinstance(r, int)) or \
                        (kind != "DEL" and r != "OK"):
                    for w in what:
                        o.fail(w)
                    self.problem("%s of %r answered %r" % (kind, [w.key for w in what], r))
                    continue
                now = time.monotonic()
                for w in what:
                    o.ack(w, now)

    def check_get(self, what, got, since):
        key, last, upto = what
        if isinstance(got, RespError) or not (got is None or isinstance(got, bytes)):
            self.problem("GET %r answered %r" % (key, got))
            return
        self.reads += 1
        for p in self.oracle.check_read(key, got, since, upto):
            self.problem("live read: " + p)
            return
        if last is not None and not last.failed and got != last.value:
            d = decode(got) if got is not None else None
            self.problem("live read: %r read %s, but %r was sent before it on the same "
                         "connection (read-your-writes)"
                         % (key, "absent" if got is None else "write %s" % (d[1] if d else "?"),
                            last))


# ---------------------------------------------------------------------------------------------
# the load: libkvs in kvs_writer
# ---------------------------------------------------------------------------------------------

class EmbeddedLoad:
    """kvs_writer run on the store, fed by one thread per lane (each with its own keys and at
    most LANE_INFLIGHT commands unanswered); a reader thread takes its acknowledgements, read
    results and compaction reports, and kills it the moment a compaction starts when aimed."""
    LANE_INFLIGHT = 24
    GET_ID0 = 1 << 40

    def __init__(self, store, sync, seed, env=None):
        self.store, self.sync, self.seed, self.env = store, sync, seed, env
        self.oracle = store.oracle
        self.stop = threading.Event()
        self.dying = threading.Event()
        self.aimed = threading.Event()
        self.killed_in_compaction = False
        self.killed = False
        self.kill_time = None
        self.aimed_kill = False
        self.compacting = False
        self.aim = False
        self.problems = []
        self.reads = 0
        self.lock = threading.Lock()     # pending, counters, problems
        self.cv = threading.Condition(self.lock)
        self.wlock = threading.Lock()    # one command at a time into the pipe
        self.pending = {}                # id -> Write, or ("GET", lane, key, last, upto, since)
        self.inflight = [0] * CLIENTS
        self.next_get = self.GET_ID0
        self.threads = []
        self.proc = None
        self.stderr = b""

    def problem(self, p):
        with self.lock:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(p)

    def arm(self):
        """Kill kvs_writer the moment it reports a compaction running (now, if one does)."""
        with self.lock:
            self.aim = True
            now = self.compacting
        if now:
            self._aimed_kill()

    def _aimed_kill(self):
        if not self.dying.is_set():
            self.kill()
            self.killed_in_compaction = True
            self.aimed.set()

    def start(self):
        self.proc = subprocess.Popen([WRITER, "run", self.store.dir,
                                      *self.store.writer_args(self.sync)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=kvstest._die_with_parent,
                                     env=self.env)
        self.stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self.stderr_thread.start()
        first = self.proc.stdout.readline()
        if not first.startswith(b"READY"):
            self.proc.kill()
            self.proc.wait(timeout=IO_TIMEOUT)
            self.store.fail("the store does not reopen under libkvs (kvs_writer run)",
                            [first.decode("utf-8", "replace"),
                             self.stderr.decode("utf-8", "replace")[-3000:]])
        self.threads.append(threading.Thread(target=self._guard, args=(self.reader, None),
                                             daemon=True))
        for lane in range(CLIENTS):
            self.threads.append(threading.Thread(target=self._guard, args=(self.feeder, lane),
                                                 daemon=True))
        for t in self.threads:
            t.start()

    def _read_stderr(self):
        data = self.proc.stderr.read()
        self.stderr = data or b""

    def kill(self):
        with self.lock:
            if self.killed:
                return
            self.killed = True
        self.dying.set()
        self.kill_time = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)   # by pid (Popen.send_signal); reaped in join()

    def finish(self):
        self.stop.set()
        with self.cv:
            self.cv.notify_all()

    def join(self):
        feeders = self.threads[1:]
        for t in feeders:
            t.join(timeout=2 * IO_TIMEOUT)
        if not self.dying.is_set():
            with self.wlock:
                try:
                    self.proc.stdin.write(b"Q\n")
                    self.proc.stdin.flush()
                except OSError as e:
                    self.problem("kvs_writer: cannot send Q: %r" % e)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=2 * IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.dying.set()
            self.proc.kill()
            rc = self.proc.wait(timeout=IO_TIMEOUT)
            self.problem("kvs_writer did not exit within %.0f s" % (2 * IO_TIMEOUT))
        for t in self.threads:
            t.join(timeout=2 * IO_TIMEOUT)
            if t.is_alive():
                self.problem("a load thread did not end within %.0f s" % (2 * IO_TIMEOUT))
        self.stderr_thread.join(timeout=IO_TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()
        with self.cv:
            self.stop.set()
            self.cv.notify_all()
        if not self.dying.is_set() and rc != 0:
            self.problem("kvs_writer exited with %s after Q; stderr:\n%s"
                         % (rc, self.stderr.decode("utf-8", "replace")[-3000:]))
        if self.dying.is_set() and rc != -signal.SIGKILL:
            self.problem("kvs_writer ended with %s, not by the kill; stderr:\n%s"
                         % (rc, self.stderr.decode("utf-8", "replace")[-3000:]))

    def _guard(self, fn, arg):
        try:
            fn(arg)
        except (OSError, ValueError) as e:   # ValueError: a write to the closed pipe
            if not self.dying.is_set():
                self.problem("%s: pipe to kvs_writer lost without a kill: %r" % (fn.__name__, e))
        except Exception as e:  # noqa: BLE001 -- reported by the main thread
            self.problem("%s: %r" % (fn.__name__, e))
        finally:
            with self.cv:
                self.cv.notify_all()

    def _send(self, data):
        with self.wlock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def feeder(self, lane):
        rng = random.Random(self.seed + lane)
        keys = client_keys(lane)
        o = self.oracle
        last = {}
        while True:
            with self.cv:
                while self.inflight[lane] >= self.LANE_INFLIGHT and not self.stop.is_set() \
                        and not self.dying.is_set():
                    self.cv.wait(1.0)
                if self.stop.is_set() or self.dying.is_set():
                    return
            kind, items = plan(rng, keys)
            if kind == "GET":
                k = items[0][0]
                with self.cv:
                    gid = self.next_get
                    self.next_get += 1
                    self.pending[gid] = ("GET", lane, k, last.get(k), o.last_n(),
                                         time.monotonic())
                    self.inflight[lane] += 1
                self._send(b"G %d %d %d\n%s" % (gid, lane, len(k), k))
                continue
            ws = [o.new_write(k, size) for k, size in items]
            with self.cv:
                for w in ws:
                    last[w.key] = w
                    self.pending[w.n] = w
                self.inflight[lane] += len(ws)
            if kind == "SET" and len(ws) == 1:
                w = ws[0]
                self._send(b"S %d %d %d %d\n%s%s" % (w.n, lane, len(w.key), len(w.value),
                                                     w.key, w.value))
            elif kind == "DEL" and len(ws) == 1:
                w = ws[0]
                self._send(b"D %d %d %d\n%s" % (w.n, lane, len(w.key), w.key))
            else:   # MSET, or a DEL of several keys: one kvs_write batch
                parts = [b"M %d %d\n" % (lane, len(ws))]
                for w in ws:
                    if w.value is None:
                        parts.append(b"D %d %d 0\n%s" % (w.n, len(w.key), w.key))
                    else:
                        parts.append(b"S %d %d %d\n%s%s" % (w.n, len(w.key), len(w.value),
                                                            w.key, w.value))
                self._send(b"".join(parts))

    def reader(self, _):
        f = self.proc.stdout
        o = self.oracle
        while True:
            line = f.readline()
            if not line:
                return
            parts = line.split()
            tag = parts[0]
            if tag == b"A":
                n, rc = int(parts[1]), int(parts[2])
                now = time.monotonic()
                with self.cv:
                    w = self.pending.pop(n, None)
                    if w is None:
                        self.problems.append("kvs_writer acknowledged write %d, never sent" % n)
                        continue
                    self.inflight[self._lane(w.key)] -= 1
                    self.cv.notify_all()
                if rc in (0, -1):
                    o.ack(w, now)
                else:
                    o.fail(w)
                    self.problem("%r: the write failed with %d" % (w, rc))
            elif tag == b"V":
                gid, rc, vlen = int(parts[1]), int(parts[2]), int(parts[3])
                val = f.read(vlen) if rc == 0 else None
                if rc == 0 and len(val) != vlen:
                    return   # cut by the kill
                with self.cv:
                    g = self.pending.pop(gid, None)
                    if g is not None:
                        self.inflight[g[1]] -= 1
                        self.cv.notify_all()
                if g is None:
                    self.problem("kvs_writer answered read %d, never sent" % gid)
                elif rc not in (0, -1):
                    self.problem("kvs_get of %r failed with %d" % (g[2], rc))
                else:
                    self.check_get(g, val)
            elif tag == b"C":
                with self.lock:
                    self.compacting = parts[1] == b"1"
                    aimed = self.aim and self.compacting
                if aimed:
                    self._aimed_kill()
            elif tag == b"CLOSED":
                if parts[1] != b"0":
                    self.problem("kvs_close returned %s" % parts[1].decode())
            else:
                self.problem("kvs_writer said %r" % line[:100])

    @staticmethod
    def _lane(key):
        return int(key[1:key.index(b":")])

    def check_get(self, g, got):
        _, lane, key, last, upto, since = g
        self.reads += 1
        for p in self.oracle.check_read(key, got, since, upto):
            self.problem("live read: " + p)
            return
        if last is not None and not last.failed and got != last.value:
            self.problem("live read: %r read %s, but %r was applied before it in its lane "
                         "(read-your-writes)" % (key, "absent" if got is None else
                                                 repr(decode(got)), last))


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------

def test_seed(name):
    return (SEED * 1000003 + sum(name.encode())) & 0xFFFFFFFF


class TortureBase(unittest.TestCase):
    tallies = {}

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-torture-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def store(self, engine, label):
        seed = test_seed(label)
        tally = Tally()
        print("# %s: seed %d (KVS_TORTURE_SEED=%d)" % (label, seed, SEED), flush=True)
        return Store(self.dir, engine, seed, tally, label), tally

    def report(self, label, tally, t0):
        print("# %s: %s (%.1f s)%s" % (label, tally.line(), time.monotonic() - t0,
                                        tally.warnings_text()), flush=True)
        self.tallies.setdefault(type(self).__name__, Tally()).merge(tally)


def _server_test(engine, sync):
    def test(self):
        label = "server %s/%s" % (engine, sync)
        st, tally = self.store(engine, label)
        t0 = time.monotonic()
        st.run_server(sync, cycles(4))
        self.report(label, tally, t0)
        self.assertEqual(tally.losses, 0)
    return test


def _embedded_test(engine, sync):
    def test(self):
        label = "libkvs %s/%s" % (engine, sync)
        st, tally = self.store(engine, label)
        t0 = time.monotonic()
        st.run_embedded(sync, cycles(3))
        self.report(label, tally, t0)
        self.assertEqual(tally.losses, 0)
    return test


class ServerTorture(TortureBase):
    """kvs-server killed -9 under the load, both engines, every sync mode."""


class EmbeddedTorture(TortureBase):
    """libkvs in kvs_writer killed -9 mid-write, both engines, every sync mode."""


for _e in ENGINES:
    for _s in SYNCS:
        setattr(ServerTorture, "test_%s_%s" % (_e, _s), _server_test(_e, _s))
        setattr(EmbeddedTorture, "test_%s_%s" % (_e, _s), _embedded_test(_e, _s))


# ---------------------------------------------------------------------------------------------
# the soak
# ---------------------------------------------------------------------------------------------

def soak(seconds):
    """Mixed load for `seconds` on both engines: epochs of 1..20 s through kvs-server or libkvs,
    each with a random sync mode, ended by a kill at a random moment, a kill aimed at a
    compaction, a clean stop, or (once available) a power cut. Prints what it checked."""
    print("# soak: %d s, seed %d (KVS_TORTURE_SEED=%d)" % (seconds, SEED, SEED), flush=True)
    cuts = power_cut_available()
    print("# soak: power cuts %s" % (
        "through " + CRASHSIM_LIB if cuts else "off (no libcrashsim.so built, or SOAK_CUTS=0): "
        "kills and clean stops only"), flush=True)
    rng = random.Random(SEED)
    tmp = tempfile.TemporaryDirectory(prefix="kvs-soak-")
    tally = Tally()
    stores = {}
    for e in ENGINES:
        d = os.path.join(tmp.name, e)
        os.mkdir(d)
        stores[e] = Store(d, e, rng.randrange(1 << 32), tally, "soak " + e)
    t0 = time.monotonic()
    deadline = t0 + seconds
    epochs = 0
    last_report = t0
    try:
        while time.monotonic() < deadline:
            st = stores["kvs" if rng.random() < 0.65 else "lmdb"]
            sync = rng.choice(SYNCS)
            dur = min(rng.uniform(1.0, 20.0), max(0.5, deadline - time.monotonic()))
            r = rng.random()
            end = "stop" if r < 0.15 else "cut" if r > 0.75 and cuts and sync != "never" \
                else "kill"
            front = "server" if rng.random() < 0.75 else "libkvs"
            t1 = time.monotonic()
            before = (tally.kills_in_compaction, tally.acked)
            if front == "server":
                srv = st.start_server(sync, env=st.cut_env() if end == "cut" else None)
                try:
                    srv = st.server_cycle(srv, sync, end=end, duration=dur)
                    st.judge(*st.read_server(srv))
                    if srv.stop(check=False) != 0:
                        st.fail("kvs-server did not stop cleanly",
                                [srv.stderr_text()[-3000:]])
                finally:
                    if srv.running():
                        srv.stop(check=False)
            else:
                st.embedded_cycle(sync, end=end, duration=dur)
                st.judge(*st.read_embedded())
            epochs += 1
            print("# soak %5.0f s: epoch %d: %s through %s, --sync %s, %.1f s, %s%s; %d "
                  "acknowledged writes judged, no loss" % (
                      time.monotonic() - t0, epochs, st.engine, front, sync,
                      time.monotonic() - t1, {"stop": "clean stop", "kill": "kill -9",
                                              "cut": "power cut"}[end],
                      " during a compaction" if tally.kills_in_compaction > before[0] else "",
                      tally.acked - before[1]), flush=True)
            if time.monotonic() - last_report > 300:
                last_report = time.monotonic()
                print("# soak %.0f s: %d epochs; %s" % (last_report - t0, epochs, tally.line()),
                      flush=True)
        for st in stores.values():
            st.judge(*st.read_embedded())
    except TortureFailure as e:
        print("# soak FAILED after %.0f s, %d epochs: %s" % (time.monotonic() - t0, epochs, e),
              flush=True)
        return 1
    finally:
        for st in stores.values():
            if st.shadow:
                shutil.rmtree(st.shadow, ignore_errors=True)
        tmp.cleanup()
    print("# soak: %.0f s, %d epochs on kvs and lmdb: %s%s"
          % (time.monotonic() - t0, epochs, tally.line(), tally.warnings_text()), flush=True)
    return 0 if tally.losses == 0 else 1


def main():
    global SERVER, WRITER
    if len(sys.argv) < 3:
        sys.exit("usage: test_torture.py PATH_TO_kvs-server PATH_TO_kvs_writer "
                 "[--soak SECONDS | unittest options]")
    SERVER = os.path.abspath(sys.argv[1])
    WRITER = os.path.abspath(sys.argv[2])
    rest = sys.argv[3:]
    print("# test_torture: seed %d (KVS_TORTURE_SEED=%d to replay the choices)" % (SEED, SEED),
          flush=True)
    if rest[:1] == ["--soak"]:
        sys.exit(soak(int(rest[1]) if len(rest) > 1 else 1800))
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False)
    for name, t in sorted(TortureBase.tallies.items()):
        print("# %s in all: %s%s" % (name, t.line(), t.warnings_text()), flush=True)
    sys.exit(not prog.result.wasSuccessful())


if __name__ == "__main__":
    main()

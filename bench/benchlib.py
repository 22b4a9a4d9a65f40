"""benchlib.py — helpers shared by the kvs-server benchmarks (server_bench.py, pool_bench.py,
mem_bench.py, restart_bench.py, space_bench.py, latency_bench.py).

Everything runs on 127.0.0.1. Ports are picked free at run time (bind to port 0), every server
gets a fresh temporary data directory, and every server started is stopped by its PID (SIGTERM,
then SIGKILL after a timeout) and its directory removed.
"""
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

# redis-server's appendfsync for each kvs --sync mode
REDIS_FSYNC = {"always": "always", "everysec": "everysec", "never": "no"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not answer PING")


def time_to_pong(srv, interval=0.005, timeout=300.0):
    """Seconds from srv's exec (srv.t_exec: start it with wait=False) to its first +PONG,
    trying PING every `interval` seconds on a fresh connection (a refused connection or a
    -LOADING reply counts as not yet). Raises TimeoutError after `timeout` seconds."""
    deadline = srv.t_exec + timeout
    while time.perf_counter() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"server exited with {srv.proc.returncode}")
        left = max(0.05, deadline - time.perf_counter())
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=left) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                if reply.startswith(b"+PONG"):
                    return time.perf_counter() - srv.t_exec
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"no PONG within {timeout:.0f} s of exec")


class Server:
    """A server process on a free loopback port with its own temporary data directory.

    kind "kvs": kvs_server is the path of kvs-server, extra its further flags.
    kind "redis": redis-server with appendonly yes and appendfsync REDIS_FSYNC[sync], no RDB.
    """

    def __init__(self, kind, kvs_server=None, sync="everysec", engine="kvs", extra=(),
                 dir=None, wait=True):
        """dir: run on this existing data directory and leave it in place on stop() (default:
        a fresh temporary one, removed on stop()). wait=False: return right after exec, without
        waiting for the first PONG (self.t_exec is time.perf_counter() just before exec)."""
        self.kind = kind
        self.own_dir = dir is None
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-") if dir is None else dir
        self.port = free_port()
        if kind == "kvs":
            cmd = [kvs_server, "--addr", f"127.0.0.1:{self.port}", "--dir", self.dir,
                   "--sync", sync, "--engine", engine, "--log-level", "warning", *extra]
        else:
            cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--appendonly", "yes", "--appendfsync", REDIS_FSYNC[sync],
                   "--save", "", "--dir", self.dir, "--daemonize", "no",
                   "--loglevel", "warning", *extra]
        self.cmd = cmd
        self.t_exec = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        if wait:
            try:
                wait_ping(self.port, self.proc)
            except BaseException:
                self.stop()
                raise

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """sig (SIGTERM: a clean stop) by PID, wait up to 30 s, then SIGKILL; remove the data
        directory if it is this server's own temporary one. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def redis_benchmark(port, test, requests, clients=50, pipeline=1, value_size=100,
                    keyspace=None, timeout=600):
    """Run one redis-benchmark test (set, get, ...) with --csv; return its rps, p50 and p99
    (ms). Raises RuntimeError if redis-benchmark fails or prints errors on stderr."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
           "-n", str(requests), "-P", str(pipeline), "-t", test, "-d", str(value_size)]
    if keyspace:
        cmd += ["-r", str(keyspace)]
    cmd.append("--csv")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({out.returncode}): {out.stderr.strip()}")
    # redis-benchmark reports server error replies on stderr ("Error from server: ...")
    # but still exits 0: a throughput made of error replies is not a result.
    if "error" in out.stderr.lower():
        raise RuntimeError(f"redis-benchmark reported errors: {out.stderr.strip()[:500]}")
    return parse_csv(out.stdout, test)


def parse_csv(text, test):
    """Pick test's row out of redis-benchmark --csv output (redis 7 columns:
    test, rps, avg, min, p50, p95, p99, max latency in ms)."""
    for row in csv.reader(text.splitlines()):
        if row and row[0].upper() == test.upper():
            return {"rps": float(row[1]), "p50_ms": float(row[4]), "p99_ms": float(row[6])}
    raise RuntimeError(f"no {test} line in redis-benchmark output: {text!r}")


def resp(*args):
    """Encode one command as a RESP multibulk."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def preload(port, keyspace, value_size, timeout=60.0):
    """SET every key redis-benchmark -r keyspace uses (key:000000000000 ..) to a value of
    value_size bytes, pipelined on one connection; check every reply is +OK and that DBSIZE
    is at least keyspace afterwards."""
    value = b"x" * value_size
    payload = b"".join(resp("SET", b"key:%012d" % i, value) for i in range(keyspace))
    want = b"+OK\r\n" * keyspace
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(want):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        if got != want:
            raise RuntimeError(f"preload: unexpected replies {got[:200]!r}")
        s.sendall(resp("DBSIZE"))
        reply = s.recv(64)
    if not reply.startswith(b":") or int(reply[1:].split(b"\r\n")[0]) < keyspace:
        raise RuntimeError(f"preload: DBSIZE answered {reply!r}, expected >= {keyspace}")


OK_REPLY = b"+OK\r\n"


def set_cmd(key, value):
    """One SET as RESP (bytes key and value): the loaders' fast path."""
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value),
                                                                     value)


def load(port, items, batch=1000, timeout=120.0):
    """SET every (key, value) of the iterable items, pipelined on one connection: a thread
    writes batches of `batch` commands while this one reads the replies, so the socket never
    waits for a round trip. Checks that every reply is +OK; returns how many SETs were sent."""
    sent = [0]
    err = []

    def writer(sock):
        try:
            buf = []
            for k, v in items:
                buf.append(set_cmd(k, v))
                if len(buf) >= batch:
                    sock.sendall(b"".join(buf))
                    sent[0] += len(buf)
                    buf = []
            if buf:
                sock.sendall(b"".join(buf))
                sent[0] += len(buf)
        except BaseException as e:  # noqa: BLE001 — reported by the reader
            err.append(e)
        finally:
            done.set()

    done = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=writer, args=(s,), daemon=True)
        t.start()
        got = 0
        pending = b""
        while not (done.is_set() and got >= sent[0]):
            if err:
                break
            chunk = s.recv(1 << 16)
            if not chunk:
                raise RuntimeError("load: connection closed by the server")
            pending += chunk
            n = len(pending) // 5
            if pending[:5 * n] != OK_REPLY * n:
                raise RuntimeError(f"load: unexpected reply {pending[:200]!r}")
            got += n
            pending = pending[5 * n:]
        t.join()
    if err:
        raise RuntimeError(f"load: writer failed: {err[0]!r}")
    return sent[0]


_POOL = None


def value_pool():
    """1 MiB of seeded random bytes: values are slices of it, so they are distinct and do not
    compress (redis's RDB preamble LZF-compresses values; constant ones would flatter it)."""
    global _POOL
    if _POOL is None:
        import random
        _POOL = random.Random(20240601).randbytes(1 << 20)
    return _POOL


def value_of(i, size):
    """The value_size-byte value of key number i: a slice of value_pool()."""
    pool = value_pool()
    off = (i * 7919) % (len(pool) - size)
    return pool[off:off + size]


def load_keys(port, n, value_size, fmt=b"key:%06d", start=0, batch=1000):
    """SET exactly the n distinct keys fmt % i for i in start..start+n-1 to value_size-byte
    incompressible values (value_of(i, value_size))."""
    return load(port, ((fmt % i, value_of(i, value_size)) for i in range(start, start + n)),
                batch=batch)


class Conn:
    """A minimal synchronous RESP2 client on one connection (for INFO, DBSIZE, PING...)."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply line {line!r}")

    def call(self, *args):
        self.sock.sendall(resp(*args))
        return self._reply()

    def info(self, section=None):
        """INFO [section] as a dict of strings (numbers stay strings; see num())."""
        text = self.call("INFO", section) if section else self.call("INFO")
        out = {}
        for line in text.decode().splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out


def num(d, key, default=0):
    """An INFO field as a number (int if it is one)."""
    v = d.get(key)
    if v is None:
        return default
    try:
        return int(v)
    except ValueError:
        return float(v)


def wait_quiet(port, kind, quiet=2.0, timeout=60.0, poll=0.2):
    """Wait until the server has had no background work for `quiet` seconds: for kvs, INFO
    engine says compacting:0 and the compaction count stays put; for redis, no AOF rewrite
    (in progress or scheduled) and no background save. Returns the seconds waited; raises if
    the server is still busy after timeout."""
    t0 = time.time()
    since = None
    last = None
    with Conn(port) as c:
        while time.time() - t0 < timeout:
            if kind == "kvs":
                i = c.info("engine")
                busy = num(i, "compacting") != 0
                state = (num(i, "compactions"), num(i, "segments"), num(i, "disk_bytes"))
            else:
                i = c.info("persistence")
                busy = any(num(i, k) for k in ("aof_rewrite_in_progress",
                                                  "aof_rewrite_scheduled",
                                                  "rdb_bgsave_in_progress"))
                state = None
            if busy or state != last:
                since = None
            elif since is None:
                since = time.time()
            last = state
            if since is not None and time.time() - since >= quiet:
                return time.time() - t0
            time.sleep(poll)
    raise RuntimeError(f"{kind} server still busy after {timeout:.0f} s")


def proc_status(pid):
    """VmRSS, RssAnon, RssFile, RssShmem, VmHWM of a process from /proc/PID/status, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def dir_size(path):
    """(apparent bytes, allocated bytes) of every regular file under path: the sum of st_size
    and of st_blocks × 512 (what du counts). Files that vanish meanwhile (compaction deletes
    segments) are skipped."""
    apparent = allocated = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def du_k(path):
    """du -sk path, in KiB."""
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


_PCT_LINE = re.compile(r"^\s*([0-9.]+)% <= ([0-9.]+) milliseconds")


def redis_benchmark_latency(port, test, requests, clients=50, pipeline=1, value_size=100,
                            keyspace=None, timeout=600):
    """Run one redis-benchmark test without --csv, with --precision 3, and parse its
    "Latency by percentile distribution" and summary. Returns rps, avg/p50/p99 (from the
    summary line) and p999: the latency of the first distribution line at or above 99.9%
    (an HDR bucket bound, so at most one bucket above the exact value). All in ms."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
           "-n", str(requests), "-P", str(pipeline), "-t", test, "-d", str(value_size),
           "--precision", "3"]
    if keyspace:
        cmd += ["-r", str(keyspace)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({out.returncode}): {out.stderr.strip()}")
    if "error" in out.stderr.lower():
        raise RuntimeError(f"redis-benchmark reported errors: {out.stderr.strip()[:500]}")
    lines = out.stdout.replace("\r", "\n").splitlines()
    dist = []
    in_dist = False
    res = {}
    for i, line in enumerate(lines):
        if line.startswith("Latency by percentile distribution"):
            in_dist = True
            continue
        if in_dist:
            m = _PCT_LINE.match(line)
            if m:
                dist.append((float(m.group(1)), float(m.group(2))))
            elif dist:
                in_dist = False
        if "throughput summary:" in line:
            res["rps"] = float(line.split(":")[1].split()[0])
        if line.strip().startswith("avg") and "p99" in line and i + 1 < len(lines):
            names = line.split()
            vals = [float(x) for x in lines[i + 1].split()]
            summ = dict(zip(names, vals))
            res.update(avg_ms=summ["avg"], p50_ms=summ["p50"], p99_ms=summ["p99"],
                       max_ms=summ["max"])
    if not dist or "p99_ms" not in res:
        raise RuntimeError(f"cannot parse redis-benchmark output: {out.stdout[-1000:]!r}")

    def pct(q):
        for p, ms in dist:
            if p >= q:
                return ms
        return dist[-1][1]

    res["p999_ms"] = pct(99.9)
    return res


def print_table(rows, cols, fmt=None):
    """rows: list of dicts; cols: keys to show, in order; fmt: {col: format spec}."""
    fmt = fmt or {}
    cells = [[format(r.get(c, ""), fmt.get(c, "")) if r.get(c, "") != "" else ""
              for c in cols] for r in rows]
    width = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, width)))
    for x in cells:
        print("  ".join(v.rjust(w) for v, w in zip(x, width)))


def write_csv(path, rows, fields=None):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields or list(rows[0].keys()), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def machine():
    """nproc, CPU model and load average, for the record."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "model": model, "loadavg": os.getloadavg()}

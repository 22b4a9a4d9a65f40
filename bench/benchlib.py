"""benchlib.py — helpers shared by the kvs-server benchmarks (server_bench.py, pool_bench.py).

Everything runs on 127.0.0.1. Ports are picked free at run time (bind to port 0), every server
gets a fresh temporary data directory, and every server started is stopped by its PID (SIGTERM,
then SIGKILL after a timeout) and its directory removed.
"""
import csv
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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


class Server:
    """A server process on a free loopback port with its own temporary data directory.

    kind "kvs": kvs_server is the path of kvs-server, extra its further flags.
    kind "redis": redis-server with appendonly yes and appendfsync REDIS_FSYNC[sync], no RDB.
    """

    def __init__(self, kind, kvs_server=None, sync="everysec", engine="kvs", extra=()):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
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
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            wait_ping(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM by PID, wait up to 30 s, then SIGKILL; remove the data directory.
        Returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
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

"""kvstest.py -- a small harness for running kvs-server as a process in integration tests.

    with Server(KVS_SERVER, tmpdir, "--engine", "lmdb") as s:
        r = redis.Redis(port=s.port)
        ...
        assert s.stop() == 0          # a clean stop (SIGTERM) exits 0

* The server always listens on 127.0.0.1:0 (a free port the kernel picks) unless `addr=` says
  otherwise; the port is read from its "listening on IP:PORT" start-up line. No fixed ports.
* Its stderr is read by a thread and kept whole (stderr_text()) so tests can assert on the log.
* Every wait is bounded: start-up (START_TIMEOUT), stop (SIGTERM, then SIGKILL after
  STOP_TIMEOUT), log waits. The process is addressed by its pid only.
* Leaving the `with` block stops the server if it still runs. If the block ended without an
  exception, the server must have stopped cleanly (exit 0) unless the test killed it (kill9) or
  passed check_exit=False; a crash during a test is therefore never silent.
* The server gets PR_SET_PDEATHSIG(SIGKILL), so a test runner that dies does not leave it behind.
"""
import ctypes
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

_LISTEN_RE = re.compile(r"listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)")


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent():
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class ServerError(AssertionError):
    pass


class Server:
    def __init__(self, binary, dir, *args, addr="127.0.0.1:0", check_exit=True,
                 start_timeout=START_TIMEOUT, env=None):
        self.binary = binary
        self.env = env  # the process's environment (None: this one's)
        self.dir = dir
        self.args = list(args)
        self.addr = addr
        self.check_exit = check_exit
        self.start_timeout = start_timeout
        self.proc = None
        self.pid = None
        self.host = None
        self.port = None
        self.returncode = None
        self.killed = False
        self._lines = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._eof = False
        self._reader = None

    # ---- starting ----

    def argv(self):
        return [self.binary, "--addr", self.addr, "--dir", self.dir, *self.args]

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent, env=self.env)
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            m = self.wait_for_stderr(_LISTEN_RE, self.start_timeout)
            if not m:
                rc = self.proc.poll()
                raise ServerError("kvs-server did not report 'listening on' within %.0fs "
                                  "(exit status %s); stderr:\n%s"
                                  % (self.start_timeout, rc, self.stderr_text()))
        except BaseException:
            self._terminate()
            raise
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))
        return self

    def _read_stderr(self):
        f = self.proc.stderr
        for raw in iter(f.readline, b""):
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stderr_text(self):
        with self._lock:
            return "".join(self._lines)

    def wait_for_stderr(self, pattern, timeout=START_TIMEOUT):
        """Wait (at most timeout seconds) until a stderr line matches the regex pattern (a str or
        compiled regex); returns the match, or None if stderr ended or time ran out first."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self._lines):
                    m = rx.search(self._lines[seen])
                    seen += 1
                    if m:
                        return m
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    # ---- state ----

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def status_kb(self, field):
        """A memory field of /proc/PID/status (VmRSS, VmHWM, ...) in KiB."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise ServerError("no %s in /proc/%d/status" % (field, self.pid))

    def rss_kb(self):
        """VmRSS (resident memory now) of the server in KiB."""
        return self.status_kb("VmRSS")

    def peak_rss_kb(self):
        """VmHWM (the most resident memory so far) of the server in KiB."""
        return self.status_kb("VmHWM")

    def connect(self, timeout=10.0):
        """A raw TCP socket to the server (blocking, with timeout)."""
        return socket.create_connection(("127.0.0.1" if self.host in ("0.0.0.0", "::") else
                                         self.host, self.port), timeout=timeout)

    # ---- stopping ----

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait at most timeout seconds for the server to exit by itself; returns the exit code
        or None if it still runs."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_reader()
        return self.returncode

    def _join_reader(self):
        if self._reader:
            self._reader.join(timeout=STOP_TIMEOUT)

    def _terminate(self):
        """SIGTERM by pid, wait <= STOP_TIMEOUT, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.proc.returncode
        self._join_reader()
        if self.proc.stderr:
            self.proc.stderr.close()
        return self.returncode

    def stop(self, check=True):
        """Stop the server (SIGTERM, bounded wait, then SIGKILL) and return its exit code; with
        check, a stop that is not clean (exit status other than 0) raises ServerError."""
        was_killed = self.killed
        rc = self._terminate()
        if check and (rc != 0 or self.killed != was_killed):
            raise ServerError("kvs-server did not stop cleanly: exit status %s%s; stderr:\n%s"
                              % (rc, " (needed SIGKILL)" if self.killed != was_killed else "",
                                 self.stderr_text()))
        return rc

    def kill9(self):
        """Crash the server: SIGKILL by pid, and reap it."""
        self.killed = True
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.proc.returncode
        self._join_reader()
        return self.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if self.proc is None:
            return False
        was_running = self.proc.poll() is None
        rc = self._terminate()
        if exc_type is None and self.check_exit and not self.killed and rc != 0:
            raise ServerError("kvs-server %s with status %s; stderr:\n%s"
                              % ("stopped" if was_running else "exited", rc, self.stderr_text()))
        return False


def run(argv, timeout=30, **kw):
    """Run a short-lived process with a timeout; returns CompletedProcess (text mode)."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


def free_dead_port():
    """(socket, port): a bound but not listening TCP socket on 127.0.0.1. While it is open, the
    port is taken and nothing accepts on it, so a connect there is refused. Close it when done."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def read_until_closed(sock, timeout=10.0, limit=64 << 20):
    """Read from sock until EOF or a connection error, for at most timeout seconds and limit
    bytes. Returns (data, how) with how in {"eof", "reset", "timeout", "limit"}."""
    deadline = time.monotonic() + timeout
    chunks, n = [], 0
    sock.setblocking(False)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), "timeout"
            r, _, _ = select.select([sock], [], [], min(left, 0.5))
            if not r:
                continue
            try:
                b = sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                continue
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                return b"".join(chunks), "reset"
            if not b:
                return b"".join(chunks), "eof"
            chunks.append(b)
            n += len(b)
            if n >= limit:
                return b"".join(chunks), "limit"
    finally:
        try:
            sock.setblocking(True)
        except OSError:
            pass


def read_reply_line(sock, timeout=10.0):
    """Read one CRLF-terminated line (a status/error/integer reply) from a raw socket. Returns
    the bytes read (including CRLF) or whatever arrived before EOF/reset/timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    sock.setblocking(False)
    try:
        while b"\r\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], min(left, 0.5))
            if not r:
                continue
            try:
                b = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                break
            if not b:
                break
            buf += b
    finally:
        try:
            sock.setblocking(True)
        except OSError:
            pass
    return buf


def resp(*args):
    """Encode a command as a RESP multibulk request (str and int arguments as UTF-8 text)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def reply_end(buf, pos=0):
    """End offset of the RESP2 reply that starts at buf[pos], or None if it is not complete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind = buf[pos:pos + 1]
    if kind in (b"+", b"-", b":"):
        return nl + 2
    n = int(buf[pos + 1:nl])
    if kind == b"$":
        end = nl + 2 + n + 2 if n >= 0 else nl + 2
        return end if len(buf) >= end else None
    if kind == b"*":
        end = nl + 2
        for _ in range(max(n, 0)):
            end = reply_end(buf, end)
            if end is None:
                return None
        return end
    raise ValueError("not a RESP2 reply: %r" % buf[pos:pos + 50])


def read_replies(sock, n, timeout=20.0):
    """Read exactly n RESP2 replies from a raw socket (bounded by timeout); returns each as its
    raw bytes. Fails (AssertionError) on a timeout or a close before n replies."""
    deadline = time.monotonic() + timeout
    buf, out = b"", []
    sock.settimeout(1.0)
    while True:
        while len(out) < n:
            end = reply_end(buf)
            if end is None:
                break
            out.append(buf[:end])
            buf = buf[end:]
        if len(out) == n:
            return out
        if time.monotonic() > deadline:
            raise AssertionError("timed out with %d of %d replies" % (len(out), n))
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            raise AssertionError("connection closed after %d of %d replies: %r"
                                 % (len(out), n, buf[:200]))
        buf += chunk


class ServerTestCase(unittest.TestCase):
    """A test case with a scratch directory (self.dir) and helpers that start kvs-servers and
    connect to them, each cleaned up when the test ends. The test program sets `binary` (its
    main() does: see main() below)."""
    binary = None

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="kvs-it-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def start(self, *args, dir=None, **kw):
        s = Server(self.binary, dir or self.dir, *args, **kw)
        s.start()
        self.addCleanup(s.__exit__, None, None, None)
        return s

    def redis(self, s, **kw):
        import redis  # Debian: python3-redis
        r = redis.Redis(port=s.port, socket_timeout=30, **kw)
        self.addCleanup(r.close)
        return r

    def sock(self, s, timeout=10.0, rcvbuf=None):
        k = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(k.close)
        if rcvbuf:
            k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        k.settimeout(timeout)
        k.connect(("127.0.0.1", s.port))
        return k


def main(name):
    """The main() of a test program run as `NAME PATH_TO_kvs-server [unittest options]`: sets
    ServerTestCase.binary and runs the module's tests; exits non-zero on failure."""
    import sys
    if len(sys.argv) < 2:
        sys.exit("usage: %s PATH_TO_kvs-server [unittest options]" % name)
    ServerTestCase.binary = os.path.abspath(sys.argv[1])
    unittest.main(module="__main__", argv=[sys.argv[0]] + sys.argv[2:])

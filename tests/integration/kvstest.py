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

For raw sockets: resp() encodes a request; RespReader is the one RESP2 reply reader of the
tests (each reply as its exact bytes and a value, bounded waits and sizes, clear errors);
RespConn is a connection with one, read_reply() and read_replies() are its short forms, and
read_until_closed() reads to the end.
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


def stop_process(proc, timeout=STOP_TIMEOUT):
    """Stop a subprocess.Popen a test started (a peer: redis-server, nutcracker): SIGTERM by
    pid, a bounded wait, then SIGKILL. Nothing if it has already exited."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


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


def resp(*args):
    """Encode a command as a RESP multibulk request (str and int arguments as UTF-8 text)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# ---- RESP2 replies ----

def show(b, limit=160):
    """A short printable form of some bytes (long ones cut in the middle)."""
    if b is None:
        return "None"
    if len(b) > limit:
        return "%r...(%d bytes)...%r" % (b[:limit // 2], len(b), b[-limit // 4:])
    return repr(b)


class ReplyError(Exception):
    """A reply could not be read: ReplyClosed, ReplyTimeout or ReplyMalformed."""


class ReplyClosed(ReplyError, ConnectionError):
    """The connection ended (EOF, reset, another socket error) before the whole reply."""


class ReplyTimeout(ReplyError, TimeoutError):
    """The whole reply did not come in time."""


class ReplyMalformed(ReplyError, ValueError):
    """Bytes that are not a RESP2 reply, or a reply past the reader's limits."""


class RespReader:
    """Reads RESP2 replies from a socket, one at a time, in order.

    reply(deadline=None) returns (raw, value): raw is the reply's exact bytes (CRLFs included)
    and value is, by type:
        b"..."          a bulk string ($3 foo -> b"foo")
        None            a nil bulk string or a nil array ($-1, *-1)
        int             an integer (:12 -> 12)
        [...]           an array, its elements values of this same shape (nested arrays too)
        ("+", b"...")   a status (+OK -> ("+", b"OK"))
        ("-", b"...")   an error (-ERR x -> ("-", b"ERR x"))
    deadline is a time.monotonic() time by which the whole reply must have come (waits use
    poll(), which takes any descriptor number); without one, each wait for more bytes is bounded
    by the socket's timeout (WAIT if it has none). The socket's mode and timeout are left alone.

    Limits (keyword arguments): a status/error/integer/length line of at most max_line bytes, a
    bulk string of at most max_bulk bytes, an array of at most max_array elements, arrays nested
    at most max_depth levels inside the outermost one. Lengths and integers must be plain
    decimal; the only negative length is -1 (nil); a bulk string must end in CRLF.

    Failures raise a ReplyError: ReplyClosed (also a ConnectionError) when the connection ends,
    ReplyTimeout (also a TimeoutError) when time runs out, ReplyMalformed (also a ValueError) for
    bytes that are not a reply or break a limit. A reply that fails is left unread: pending()
    gives every byte received from its start on."""

    WAIT = 30.0
    RECV = 1 << 16       # bytes asked of one recv (a much larger size costs a large allocation)
    COMPACT = 1 << 20    # consumed bytes dropped from the buffer once there are this many

    def __init__(self, sock, max_line=1 << 20, max_bulk=512 << 20, max_array=1 << 20,
                 max_depth=8):
        self.sock = sock
        self.max_line = max_line
        self.max_bulk = max_bulk
        self.max_array = max_array
        self.max_depth = max_depth
        self.buf = bytearray()
        self.pos = 0

    def pending(self):
        """The bytes received and not yet returned as a reply."""
        return bytes(self.buf[self.pos:])

    def reply(self, deadline=None):
        if self.pos >= self.COMPACT:
            del self.buf[:self.pos]
            self.pos = 0
        start = self.pos
        try:
            v = self._value(deadline, 0)
        except BaseException:
            self.pos = start
            raise
        return bytes(self.buf[start:self.pos]), v

    def _fill(self, deadline):
        t = self.sock.gettimeout()
        if deadline is None and t:
            try:  # the socket's own timeout bounds the wait
                data = self.sock.recv(self.RECV)
            except socket.timeout:
                raise ReplyTimeout("no reply bytes within %g s" % t) from None
            except InterruptedError:
                return
            except OSError as e:
                raise ReplyClosed("connection error: %s" % e) from e
        else:
            if deadline is None:
                wait, what = self.WAIT, "no reply bytes within %g s" % self.WAIT
            else:
                wait, what = deadline - time.monotonic(), "no reply within the deadline"
            if wait <= 0:
                raise ReplyTimeout(what)
            p = select.poll()
            p.register(self.sock, select.POLLIN)
            if not p.poll(wait * 1000):
                raise ReplyTimeout(what)
            try:
                data = self.sock.recv(self.RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # a reset (a timeout cannot come after poll said readable)
                raise ReplyClosed("connection error: %s" % e) from e
        if not data:
            raise ReplyClosed("connection closed by the server")
        self.buf += data

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0 and i - self.pos <= self.max_line:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            if (i if i >= 0 else len(self.buf)) - self.pos > self.max_line:
                raise ReplyMalformed("reply line longer than %d bytes: %s"
                                     % (self.max_line, show(bytes(self.buf[self.pos:]))))
            self._fill(deadline)

    @staticmethod
    def _int(line):
        s = line[1:]
        if s.isdigit() or (s[:1] == b"-" and s[1:].isdigit()):  # bytes: ASCII digits only
            return int(s)
        raise ReplyMalformed("bad reply line %s" % show(line))

    def _value(self, deadline, depth):
        line = self._line(deadline)
        t = line[:1]
        if t == b"$":
            n = self._int(line)
            if n == -1:
                return None
            if not 0 <= n <= self.max_bulk:
                raise ReplyMalformed("bulk reply of %d bytes" % n)
            while len(self.buf) - self.pos < n + 2:
                self._fill(deadline)
            if self.buf[self.pos + n:self.pos + n + 2] != b"\r\n":
                raise ReplyMalformed("bulk reply not followed by CRLF")
            v = bytes(self.buf[self.pos:self.pos + n])
            self.pos += n + 2
            return v
        if t == b"*":
            n = self._int(line)
            if n == -1:
                return None
            if not 0 <= n <= self.max_array or depth > self.max_depth:
                raise ReplyMalformed("array reply of %d elements at depth %d" % (n, depth))
            return [self._value(deadline, depth + 1) for _ in range(n)]
        if t == b"+" or t == b"-":
            return (t.decode(), line[1:])
        if t == b":":
            return self._int(line)
        raise ReplyMalformed("not a RESP2 reply: %s" % show(line))


class RespConn:
    """A TCP connection to 127.0.0.1:port for raw RESP traffic (TCP_NODELAY; the socket's
    timeout bounds every wait): send(bytes), reply() -> (raw, value) of its RespReader,
    close()."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = RespReader(self.sock)

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self, deadline=None):
        return self.reader.reply(deadline)


def _read_n(sock, n, timeout):
    """Up to n replies within timeout seconds: (their raw bytes, the reader, the ReplyError
    that stopped it or None)."""
    rd = RespReader(sock)
    deadline = time.monotonic() + timeout
    out = []
    try:
        while len(out) < n:
            out.append(rd.reply(deadline)[0])
    except ReplyError as e:
        return out, rd, e
    return out, rd, None


def read_reply(sock, timeout=10.0, n=1):
    """Read n RESP2 replies (one by default) from a raw socket within timeout seconds. Returns
    bytes: the replies and whatever else came with them, or, if the connection ends, time runs
    out or something that is not a reply comes, all that came. Compare it with the exact bytes
    expected: a missing, extra or wrong byte shows."""
    out, rd, _ = _read_n(sock, n, timeout)
    return b"".join(out) + rd.pending()


def read_replies(sock, n, timeout=20.0):
    """Read exactly n RESP2 replies from a raw socket (bounded by timeout); returns each as its
    raw bytes. Fails (AssertionError) on a timeout, a close or a malformed reply before n."""
    out, rd, err = _read_n(sock, n, timeout)
    if err is not None:
        raise AssertionError("%s, after %d of %d replies; then %s"
                             % (err, len(out), n, show(rd.pending(), 200)))
    return out


def command_names(port, timeout=10.0):
    """The names (lower case) of every command the server on 127.0.0.1:port lists in COMMAND."""
    c = RespConn(port, timeout=timeout)
    try:
        c.send(resp("COMMAND"))
        return {entry[0].decode().lower() for entry in c.reply(time.monotonic() + timeout)[1]}
    finally:
        c.close()


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

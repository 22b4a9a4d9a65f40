#!/usr/bin/env python3
"""test_differential.py -- kvs-server against redis-server 7, byte for byte, on random pipelines.

Usage: python3 test_differential.py PATH_TO_kvs-server [--seed N] [--commands N]
                                    [--engine kvs|lmdb]... [--only fixed|random] [--details N]

Defaults: a random seed, 10,000 commands on each engine, both engines; a few seconds in all.

kvs-server promises Redis's behaviour for the commands it has. The surest check of that promise
is Redis itself: a redis-server 7 is started beside kvs-server (on a unix socket in the test's
temporary directory, no TCP port, no persistence), the same requests go to both, and every reply
and the final contents must be the same bytes.

The random part. A generator seeded with --seed (or a random seed, always printed) builds
pipelines of 50-300 commands -- SET, GET, DEL, EXISTS, MGET, MSET (1-5 pairs), PING, PING msg,
ECHO, and error cases: wrong arity, SET with a stray argument, unknown commands (some named
"$...", some with long arguments, of which Redis's error quotes only the first 128 bytes), empty
inline lines and "*0" --
over about 25 keys: short ones with binary bytes (NUL, CR, LF, quotes, spaces, bytes >= 0x80),
the empty key, and now and then keys of exactly KVS_MAX_KEY (65536) bytes, which must be
accepted, and of 65537 and 70000 bytes, which kvs refuses. Values are empty, short, binary (all
256 byte values among them) and sometimes up to 100 KB. Each command is framed as a multibulk
or, when it fits on a short line, inline: bare words, "..." with Redis's escapes (\\xHH \\n \\r
\\t \\b \\a \\\\ \\" and \\c for a plain c), or '...'; spaces or tabs between arguments, CRLF or
a bare LF at the end. A pipeline's bytes go to kvs-server cut at random offsets (some runs of
one-byte writes, some cuts inside a CRLF, some writes a moment apart) while a reader takes the
replies one at a time; a reply that does not come within the deadline fails the pipeline. After
each pipeline, an MGET of every key and DBSIZE must give the same bytes on both servers; at the
end kvs-server is restarted on its directory and they must still match.

The one deliberate difference (the documented refusal). kvs stores keys of at most 65536 bytes.
A SET, or an MSET with any pair, naming a longer key is refused with "-ERR key too large ..."
and changes nothing (MSET is all or nothing), where Redis would store it. Such a command is
checked against that refusal and is NOT sent to Redis, so Redis never holds an over-limit key
either and the two states stay equal; every other command, including reads and DELs of
over-limit keys (kvs: as for a missing key), goes to both and must match exactly. This is why
Redis's byte stream can be shorter than kvs's, and why it is sent in one write.

After a mismatch the states may differ, so Redis is made a copy of kvs's contents (known keys;
a DBSIZE difference that cannot be repaired is remembered and only a change of it counts), and
the run goes on: one bug does not hide the next. The first --details failures of an engine are
described in full (the command, the three before it, both replies), the rest in one line each,
and the run ends with a count of failing pipelines by the kind of the first differing command.
The command stream depends only on the seed, so `--seed N` replays it (the timing of the writes
can differ).

The fixed part: the issue's reproductions, each a few writes sent whole, with the replies known
in advance (and checked against Redis too): two inline SETs in one write, then GETs; "DEL a" and
"PING" inline in one write; MSET with a 70000-byte key, alone and amid batched SETs; DEL of a
key and a 70000-byte key; SET/GET of a key at the limit; PING with two arguments; an inline line
starting with '$'.

Every wait is bounded: start-up, each pipeline's replies, stopping either server (SIGTERM, then
SIGKILL). Both servers get PR_SET_PDEATHSIG. A kvs-server that dies or stops uncleanly fails
its engine, with the start of a sanitizer report if its log has one. Exit status 0 only if every
check passed; without /usr/bin/redis-server the test cannot run and exits with a message.
"""
import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvstest import (ReplyError, RespReader, Server, _die_with_parent, show,  # noqa: E402
                     stop_process)

REDIS_SERVER = "/usr/bin/redis-server"
KVS_MAX_KEY = 65536                   # include/kvs.h
REFUSAL = b"-ERR key too large"       # what kvs answers a write of a longer key (prefix)
INLINE_MAX = 8192                     # our longest inline line (Redis and kvs allow 64 KiB)
PIPELINE_MIN, PIPELINE_MAX = 50, 300
REPLY_TIMEOUT = 15.0                  # for all of one pipeline's replies
MAX_TIMEOUTS = 3                      # pipelines that time out before an engine run gives up
MAX_FAILURES = 200                    # failing pipelines before an engine run gives up
DETAILS = 8                           # failures an engine run describes in full (--details)
STOP_TIMEOUT = 10.0

OK = b"+OK\r\n"
NIL = b"$-1\r\n"


# ---- wire format ----

def multibulk(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def bulk(v):
    return NIL if v is None else b"$%d\r\n%s\r\n" % (len(v), v)


def err_arity(name):
    return b"-ERR wrong number of arguments for '%s' command\r\n" % name


class Conn:
    """One client connection: a socket and its reply reader."""

    def __init__(self, sock):
        sock.settimeout(REPLY_TIMEOUT)  # bounds sendall; reads wait (poll) for their deadline
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reader = RespReader(sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, chunks, nreplies, timeout=REPLY_TIMEOUT, pause=0.0):
        """Send chunks (from a thread, pause seconds apart) while reading nreplies replies.
        Returns (replies, error): the (raw, value) pairs read and None, or those read before
        the failure and its description."""
        sent = {}

        def send():
            try:
                for i, c in enumerate(chunks):
                    self.sock.sendall(c)
                    if pause and i < 200:
                        time.sleep(pause)
            except OSError as e:
                sent["error"] = e

        t = threading.Thread(target=send, daemon=True)
        t.start()
        deadline = time.monotonic() + timeout
        replies, error = [], None
        try:
            for _ in range(nreplies):
                replies.append(self.reader.reply(deadline))
        except ReplyError as e:
            error = "%s (after %d of %d replies)" % (e, len(replies), nreplies)
        t.join(max(0.1, deadline - time.monotonic()))
        if t.is_alive():
            self.close()  # unblocks the sender
            t.join(STOP_TIMEOUT)
            error = error or "the server stopped reading the requests"
        elif "error" in sent and not error:
            error = "send failed: %s" % sent["error"]
        return replies, error

    def call(self, *args):
        replies, error = self.exchange([multibulk(list(args))], 1)
        if error:
            raise ReplyError(error)
        return replies[0]


# ---- redis-server ----

class RedisServer:
    """redis-server on a unix socket only (--port 0): no port to pick, no persistence unless
    extra (more redis-server flags, after these: they win) asks for it."""

    def __init__(self, dir, *extra):
        self.dir = dir
        self.extra = list(extra)
        self.path = os.path.join(dir, "redis.sock")
        self.proc = None

    def start(self, timeout=10.0):
        log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.path, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir, *self.extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                c = self.connect()
                try:
                    if c.call(b"PING")[0] == b"+PONG\r\n":
                        return self
                finally:
                    c.close()
            except (OSError, ReplyError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING within %.0fs:\n%s"
                           % (timeout, self.log()))

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(REPLY_TIMEOUT)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            raise
        return Conn(s)

    def stop(self):
        """SIGTERM by pid, a bounded wait, then SIGKILL."""
        stop_process(self.proc, STOP_TIMEOUT)


# ---- commands ----

class Cmd:
    """One request: its arguments, its bytes, how many replies it gets (0 for an empty line),
    and whether kvs refuses it (then it is not sent to Redis)."""
    __slots__ = ("args", "wire", "replies", "refused", "inline")

    def __init__(self, args, wire, inline, replies=1):
        self.args = args
        self.wire = wire
        self.inline = inline
        self.replies = replies
        self.refused = replies == 1 and refused_by_kvs(args)

    def __repr__(self):
        return "%s %s" % ("inline" if self.inline else "multibulk", show(self.wire, 200))


def refused_by_kvs(args):
    """A SET k v or MSET k v ... (well formed) naming a key over KVS_MAX_KEY."""
    if not args:
        return False
    name = args[0].lower()
    if name == b"set" and len(args) == 3:
        return len(args[1]) > KVS_MAX_KEY
    if name == b"mset" and len(args) >= 3 and len(args) % 2 == 1:
        return any(len(k) > KVS_MAX_KEY for k in args[1::2])
    return False


SAFE = frozenset(range(0x21, 0x7f)) - {ord('"'), ord("'")}
PRINTABLE = frozenset(range(0x20, 0x7f))
ESCAPES = {ord("\n"): b"\\n", ord("\r"): b"\\r", ord("\t"): b"\\t", 8: b"\\b", 7: b"\\a",
           ord('"'): b'\\"', ord("\\"): b"\\\\"}


def inline_arg(rng, a):
    """a as one inline argument: bare, '...', or "..." with escapes."""
    if a and all(b in SAFE for b in a) and rng.random() < 0.8:
        return a
    if a and all(b in PRINTABLE for b in a) and b"'" not in a and b"\\" not in a \
            and rng.random() < 0.4:
        return b"'" + a + b"'"
    out = [b'"']
    for b in a:
        if b in ESCAPES and (b not in (7, 8, 9, 10, 13) or rng.random() < 0.5):
            out.append(ESCAPES[b])
        elif b in PRINTABLE:
            if chr(b) in "kqzKQZ" and rng.random() < 0.3:
                out.append(b"\\" + bytes([b]))   # \c for a plain c
            else:
                out.append(bytes([b]))
        else:
            h = b"%02x" % b
            out.append(b"\\x" + (h.upper() if rng.random() < 0.3 else h))
    out.append(b'"')
    return b"".join(out)


def inline_line(rng, args):
    sep = [b" "] * 8 + [b"  ", b"\t", b" \t "]
    body = inline_arg(rng, args[0]) + b"".join(rng.choice(sep) + inline_arg(rng, a)
                                               for a in args[1:])
    if rng.random() < 0.1:
        body = b" " + body
    if rng.random() < 0.1:
        body += b" "
    return body + (b"\n" if rng.random() < 0.1 else b"\r\n")


def frame(rng, args, inline_share=0.4):
    """A Cmd for args: inline when it can be and the dice say so, else multibulk."""
    if rng.random() < inline_share and sum(len(a) for a in args) * 4 < INLINE_MAX:
        line = inline_line(rng, args)
        if len(line) < INLINE_MAX and not line.startswith(b"*"):
            return Cmd(args, line, True)
    return Cmd(args, multibulk(args), False)


class Generator:
    """The seeded command stream. It never looks at replies, so a seed is a replay."""

    SMALL_KEYS = [b"a", b"b", b"bb", b"x", b"y", b"", b"k", b"K", b"key:1", b"key:2", b"0",
                  b"\x00", b"\x00\x01\x02", b"\r\n", b"lf\n", b"a b", b'q"uote', b"it's",
                  b"\\", b"\xff\xfe\x80", b"tab\tkey", b"*1", b"$3", b"-x"]
    UNKNOWN = [b"foo", b"nosuchcmd", b"$3", b"$", b"$x1", b"getx", b"SETT", b"x", b"-1", b":1"]

    def __init__(self, seed):
        self.rng = random.Random(seed)
        r = self.rng
        self.limit_keys = [b"M" * KVS_MAX_KEY, r.randbytes(KVS_MAX_KEY)]
        self.long_keys = [b"L" * (KVS_MAX_KEY + 1), r.randbytes(70000)]
        self.all256 = bytes(range(256))

    def all_keys(self):
        return self.SMALL_KEYS + self.limit_keys + self.long_keys

    def key(self):
        x = self.rng.random()
        if x < 0.012:
            return self.rng.choice(self.limit_keys)
        if x < 0.024:
            return self.rng.choice(self.long_keys)
        return self.rng.choice(self.SMALL_KEYS)

    def value(self):
        r = self.rng
        x = r.random()
        if x < 0.10:
            return b""
        if x < 0.45:
            return r.choice([b"1", b"22", b"v", b"hello", b"-1", b"0", b"OK", b"nil",
                             b"%d" % r.randrange(10 ** 6)])
        if x < 0.65:
            return r.randbytes(r.randint(1, 64))
        if x < 0.70:
            k = r.randrange(256)
            return self.all256[k:] + self.all256[:k]
        if x < 0.97:
            n = r.randint(64, 4096)
            return r.randbytes(n) if r.random() < 0.5 else bytes(r.choices(b"abcXYZ 019", k=n))
        return r.randbytes(r.randint(4096, 100 * 1024))

    def name(self, n):
        r = self.rng.random()
        return n.upper() if r < 0.5 else n if r < 0.8 else n.capitalize() if r < 0.9 else \
            bytes(c ^ 0x20 if self.rng.random() < 0.5 else c for c in n)

    def args(self):
        r = self.rng
        n = self.name
        x = r.random()
        if x < 0.25:
            return [n(b"set"), self.key(), self.value()]
        if x < 0.43:
            return [n(b"get"), self.key()]
        if x < 0.51:
            return [n(b"del")] + [self.key() for _ in range(r.randint(1, 4))]
        if x < 0.57:
            return [n(b"exists")] + [self.key() for _ in range(r.randint(1, 4))]
        if x < 0.65:
            return [n(b"mget")] + [self.key() for _ in range(r.randint(1, 6))]
        if x < 0.75:
            out = [n(b"mset")]
            for _ in range(r.randint(1, 5)):
                out += [self.key(), self.value()]
            return out
        if x < 0.79:
            return [n(b"ping")]
        if x < 0.82:
            return [n(b"ping"), self.value()]
        if x < 0.86:
            return [n(b"echo"), self.value()]
        if x < 0.93:
            return self.bad_arity()
        return self.unknown()

    def bad_arity(self):
        n, k, v = self.name, self.key, self.value
        return self.rng.choice([
            lambda: [n(b"get")], lambda: [n(b"get"), k(), k()], lambda: [n(b"set"), k()],
            lambda: [n(b"set")], lambda: [n(b"set"), k(), v(), b"bogus"],
            lambda: [n(b"mset"), k()], lambda: [n(b"mset"), k(), v(), k()],
            lambda: [n(b"del")], lambda: [n(b"exists")], lambda: [n(b"mget")],
            lambda: [n(b"echo")], lambda: [n(b"echo"), v(), v()],
            lambda: [n(b"ping"), v(), v()], lambda: [n(b"ping"), k(), k(), k()],
        ])()

    def unknown(self):
        r = self.rng
        args = [r.choice(self.UNKNOWN)]
        for _ in range(r.randint(0, 3)):
            if r.random() < 0.15:
                args.append(bytes(r.choices(b"abcdefgh", k=r.randint(40, 200))))
            else:
                args.append(r.choice(self.SMALL_KEYS))
        return args

    def command(self):
        r = self.rng
        if r.random() < 0.01:  # no command at all: no reply from either
            if r.random() < 0.5:
                return Cmd([], r.choice([b"\r\n", b"\n", b"  \r\n", b"\t\n"]), True, 0)
            return Cmd([], b"*0\r\n", False, 0)
        return frame(r, self.args())

    def pipeline(self):
        return [self.command() for _ in range(self.rng.randint(PIPELINE_MIN, PIPELINE_MAX))]

    def chunks(self, cmds):
        """The pipeline's kvs bytes cut at random offsets; and a pause between writes."""
        r = self.rng
        data = b"".join(c.wire for c in cmds)
        n = len(data)
        cuts = set()
        if n > 1:
            cuts.update(r.randrange(1, n) for _ in range(r.randint(0, 30)))
            if r.random() < 0.3:  # a run of one-byte writes
                o = r.randrange(1, n)
                cuts.update(range(o, min(n, o + r.randint(2, 64))))
            if r.random() < 0.3:  # inside the CRLF that ends some commands
                end = 0
                for c in cmds:
                    end += len(c.wire)
                    if r.random() < 0.1 and 1 < end < n:
                        cuts.add(end - 1)
        edges = [0] + sorted(cuts) + [n]
        chunks = [data[a:b] for a, b in zip(edges, edges[1:]) if b > a]
        pause = 0.0005 if r.random() < 0.25 else 0.0
        return chunks, pause


# ---- the comparison ----

class Failures:
    def __init__(self, seed, argv_tail):
        self.seed = seed
        self.argv_tail = argv_tail
        self.items = []

    def add(self, where, text, engine=None):
        replay = "%s %s %s --seed %d%s %s" % (
            sys.executable, os.path.abspath(__file__), SERVER, self.seed,
            " --engine %s" % engine if engine else "", self.argv_tail)
        msg = "FAIL seed=%d %s: %s\n  replay: %s" % (self.seed, where, text, replay.rstrip())
        self.items.append(msg)
        print(msg, flush=True)


def describe(cmds, i, kvs_raw, want_raw, want="redis"):
    lines = ["command #%d: %r" % (i, cmds[i])]
    for j in range(max(0, i - 3), i):
        lines.append("  after #%d: %r" % (j, cmds[j]))
    lines.append("  kvs:      %s" % show(kvs_raw, 300))
    lines.append("  %-9s %s" % (want + ":", show(want_raw, 300)))
    return "\n".join(lines)


KNOWN = {b"set", b"get", b"del", b"exists", b"mget", b"mset", b"ping", b"echo"}


def kind(c):
    """What a failing command was, for the summary: its name and framing."""
    name = c.args[0].lower() if c.args else b"(empty)"
    what = "refused write" if c.refused else \
        name.decode() if name in KNOWN else "unknown command"
    return "%s, %s" % (what, "inline" if c.inline else "multibulk")


def compare_replies(cmds, kvs_replies, redis_replies):
    """The first difference as (command index, text), or None. Refused commands have no Redis
    reply."""
    ri = ki = 0
    for i, c in enumerate(cmds):
        for _ in range(c.replies):
            if ki >= len(kvs_replies):
                return None  # the shortfall is reported by the caller
            kraw = kvs_replies[ki][0]
            ki += 1
            if c.refused:
                if not kraw.startswith(REFUSAL):
                    return i, describe(cmds, i, kraw, REFUSAL + b"...", "refusal")
                continue
            rraw = redis_replies[ri][0] if ri < len(redis_replies) else None
            ri += 1
            if kraw != rraw:
                return i, describe(cmds, i, kraw, rraw)
    return None


class Pair:
    """A kvs-server and the shared redis-server, one connection to each."""

    def __init__(self, kvs, redis_srv, keys):
        self.kvs = kvs
        self.redis = redis_srv
        self.keys = keys
        self.kc = self.rc = None
        self.dbsize_delta = 0   # kvs DBSIZE minus Redis's that resync could not repair

    def connect(self):
        self.close()
        self.kc = Conn(self.kvs.connect(timeout=REPLY_TIMEOUT))
        self.rc = self.redis.connect()

    def close(self):
        for c in (self.kc, self.rc):
            if c:
                c.close()
        self.kc = self.rc = None

    def run(self, cmds, chunks=None, pause=0.0):
        """Send cmds to both (kvs: as chunks; Redis: all but the refused, one write). Returns
        (kvs replies, redis replies, kvs error)."""
        if chunks is None:
            chunks = [b"".join(c.wire for c in cmds)]
        rwire = b"".join(c.wire for c in cmds if not c.refused)
        nk = sum(c.replies for c in cmds)
        nr = sum(c.replies for c in cmds if not c.refused)
        got = {}
        t = threading.Thread(target=lambda: got.update(r=self.rc.exchange([rwire], nr)),
                             daemon=True)
        t.start()
        kreplies, kerr = self.kc.exchange(chunks, nk, pause=pause)
        t.join(REPLY_TIMEOUT + STOP_TIMEOUT)
        rreplies, rerr = got.get("r", ([], "no answer"))
        if rerr:
            raise RuntimeError("redis-server failed: %s" % rerr)
        return kreplies, rreplies, kerr

    def snapshot(self, conn):
        mget = conn.call(b"MGET", *self.keys)
        size = conn.call(b"DBSIZE")
        return mget, size

    def compare_contents(self):
        """Text describing how the contents differ, or None."""
        (kraw, kvals), (_, ksize) = self.snapshot(self.kc)
        (rraw, rvals), (_, rsize) = self.snapshot(self.rc)
        if not isinstance(kvals, list) or len(kvals) != len(self.keys):
            return "MGET of every key: kvs answered %s" % show(kraw)
        diff = [k for k, a, b in zip(self.keys, kvals, rvals) if a != b]
        out = []
        if diff:
            k = diff[0]
            i = self.keys.index(k)
            out.append("%d keys differ, first %s: kvs %s, redis %s"
                       % (len(diff), show(k, 40), show(kvals[i], 80), show(rvals[i], 80)))
        if ksize - rsize != self.dbsize_delta:
            out.append("DBSIZE: kvs %s, redis %s (difference was %d)"
                       % (ksize, rsize, self.dbsize_delta))
        return "; ".join(out) or None

    def resync(self):
        """Make Redis a copy of kvs's known contents (on fresh connections)."""
        self.connect()
        (_, kvals), (_, ksize) = self.snapshot(self.kc)
        self.rc.call(b"DEL", *self.keys)
        if isinstance(kvals, list):
            for k, v in zip(self.keys, kvals):
                if isinstance(v, bytes):
                    self.rc.call(b"SET", k, v)
        rsize = self.rc.call(b"DBSIZE")[1]
        self.dbsize_delta = ksize - rsize if isinstance(ksize, int) else 0


def run_random(pair, gen, engine, ncommands, failures, details=DETAILS):
    """Pipelines until ncommands commands have been sent. Returns (commands, pipelines,
    {failure kind: failing pipelines})."""
    sent = pipelines = failed = timeouts = 0
    kinds = {}
    r = gen.rng
    pair.connect()
    while sent < ncommands:
        cmds = gen.pipeline()
        chunks, pause = gen.chunks(cmds)
        new_conn = r.random() < 0.1
        where = "engine=%s pipeline=%d" % (engine, pipelines)
        pipelines += 1
        sent += sum(1 for c in cmds if c.replies)
        if new_conn:
            pair.connect()
        kreplies, rreplies, kerr = pair.run(cmds, chunks, pause)
        problem = compare_replies(cmds, kreplies, rreplies)
        if problem:
            what, problem = kind(cmds[problem[0]]), problem[1]
        elif kerr:
            i = min(len(kreplies), len(cmds) - 1)
            what = "no reply or connection lost"
            problem = "kvs: %s; at command #%d of %d: %r" % (kerr, i, len(cmds), cmds[i])
            timeouts += "deadline" in kerr
        else:
            what = "contents after a pipeline"
            try:
                problem = pair.compare_contents()
            except ReplyError as e:
                problem = "kvs: %s" % e
            if problem:
                problem = "contents after the pipeline: " + problem
        if not problem:
            continue
        failed += 1
        kinds[what] = kinds.get(what, 0) + 1
        failures.add(where, problem if failed <= details else
                     "%s (--details N shows more than the first %d)" % (what, details), engine)
        pair.resync()
        if failed >= MAX_FAILURES or timeouts >= MAX_TIMEOUTS:
            failures.add(where, "giving up on this engine after %d failing pipelines" % failed,
                         engine)
            break
    return sent, pipelines, kinds


# ---- the fixed cases ----

def I(line):
    """An inline request, exactly these bytes plus CRLF."""
    args = line.split()
    return Cmd(args, line + b"\r\n", True)


def M(*args):
    return Cmd(list(args), multibulk(list(args)), False)


LONG = b"\xab" * 70000
EDGE = b"e" * KVS_MAX_KEY


def fixed_cases():
    """(name, setup commands, writes: each [(command, expected kvs reply)]). A reply expected
    as REFUSAL is matched as a prefix; Redis is sent everything but refused commands."""
    return [
        ("two inline SETs in one write, then GETs",
         [M(b"DEL", b"a", b"b", b"bb")],
         [[(I(b"SET a 1"), OK), (I(b"SET bb 22"), OK)],
          [(I(b"GET a"), bulk(b"1")), (I(b"GET bb"), bulk(b"22")), (I(b"GET b"), NIL)]]),
        ("DEL and PING inline, pipelined",
         [M(b"SET", b"a", b"1")],
         [[(I(b"DEL a"), b":1\r\n"), (I(b"PING"), b"+PONG\r\n")],
          [(I(b"GET a"), NIL)]]),
        ("MSET with a 70000-byte key, then MGET",
         [M(b"DEL", b"a", b"b")],
         [[(M(b"MSET", b"a", b"1", LONG, b"v", b"b", b"2"), REFUSAL)],
          [(M(b"MGET", b"a", b"b"), b"*2\r\n$-1\r\n$-1\r\n")]]),
        ("MSET with a 70000-byte key amid batched writes",
         [M(b"DEL", b"a", b"b", b"x", b"y")],
         [[(M(b"SET", b"x", b"1"), OK), (M(b"MSET", b"a", b"1", LONG, b"v", b"b", b"2"), REFUSAL),
           (M(b"SET", b"y", b"2"), OK), (M(b"SET", LONG, b"v"), REFUSAL),
           (I(b"DEL x"), b":1\r\n")],
          [(M(b"MGET", b"x", b"a", b"b", b"y", LONG),
            b"*5\r\n$-1\r\n$-1\r\n$-1\r\n$1\r\n2\r\n$-1\r\n")]]),
        ("DEL of a key and a 70000-byte key",
         [M(b"SET", b"a", b"1")],
         [[(M(b"DEL", b"a", LONG), b":1\r\n"), (M(b"EXISTS", b"a", LONG), b":0\r\n"),
           (M(b"GET", LONG), NIL)]]),
        ("SET and GET of a key of exactly 65536 bytes",
         [M(b"DEL", EDGE)],
         [[(M(b"SET", EDGE, b"edge"), OK), (M(b"GET", EDGE), bulk(b"edge")),
           (M(b"EXISTS", EDGE), b":1\r\n")]]),
        ("PING with two arguments",
         [],
         [[(I(b"PING a b"), err_arity(b"ping")), (M(b"PING", b"a", b"b", b"c"), err_arity(b"ping")),
           (I(b"PING hi"), bulk(b"hi"))]]),
        ("inline lines starting with '$'",
         [],
         [[(I(b"$3"), b"-ERR unknown command '$3', with args beginning with: \r\n"),
           (I(b"$1 a"), b"-ERR unknown command '$1', with args beginning with: 'a' \r\n"),
           (I(b"PING"), b"+PONG\r\n")]]),
    ]


def run_fixed(pair, engine, failures):
    """Returns (passed, failed)."""
    passed = failed = 0
    for name, setup, writes in fixed_cases():
        where = "engine=%s fixed case %r" % (engine, name)
        problem = None
        try:
            pair.connect()
            for c in setup:
                pair.kc.call(*c.args)
                pair.rc.call(*c.args)
            for w in writes:
                cmds = [c for c, _ in w]
                kreplies, rreplies, kerr = pair.run(cmds)
                rexpect = [e for c, e in w if not c.refused]
                for i, (c, e) in enumerate(w):
                    got = kreplies[i][0] if i < len(kreplies) else None
                    ok = got is not None and (got.startswith(e) if e is REFUSAL else got == e)
                    if not ok:
                        problem = describe(cmds, i, got, e, "expected")
                        break
                if not problem and kerr:
                    problem = "kvs: " + kerr
                if not problem and [r[0] for r in rreplies] != rexpect:
                    problem = "redis-server does not answer as this test expects: %s" % (
                        [show(r[0]) for r in rreplies])
                if problem:
                    break
            if not problem:
                problem = pair.compare_contents()
        except ReplyError as e:
            problem = str(e)
        if problem:
            failed += 1
            failures.add(where, problem, engine)
            pair.resync()
        else:
            passed += 1
    return passed, failed


# ---- main ----

SERVER = None


def log_excerpt(text, n=3000):
    """The part of a server log worth showing: a sanitizer's report from its start, else the
    end."""
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        i = text.find(mark)
        if i >= 0:
            return text[text.rfind("\n", 0, i) + 1:][:n]
    return text[-n:]


def run_engine(engine, redis_srv, args, failures):
    """Fixed cases, then the random run, then a restart; returns (passed, failed)."""
    passed = failed = 0
    gen = Generator(args.seed)
    with tempfile.TemporaryDirectory(prefix="kvs-diff-") as d:
        with Server(SERVER, d, "--engine", engine) as kvs:
            pair = Pair(kvs, redis_srv, gen.all_keys())
            try:
                pair.connect()
                pair.rc.call(b"FLUSHALL")
                if args.only in (None, "fixed"):
                    p, f = run_fixed(pair, engine, failures)
                    passed += p
                    failed += f
                    print("engine=%s fixed cases: %d passed, %d failed" % (engine, p, f),
                          flush=True)
                if args.only in (None, "random"):
                    t0 = time.monotonic()
                    pair.resync()
                    n, pipes, kinds = run_random(pair, gen, engine, args.commands, failures,
                                                 args.details)
                    bad = sum(kinds.values())
                    print("engine=%s random: %d commands in %d pipelines, %.1fs, %d failing%s"
                          % (engine, n, pipes, time.monotonic() - t0, bad,
                             "".join("\n  %4d x %s" % (v, k) for k, v in
                                     sorted(kinds.items(), key=lambda kv: -kv[1]))),
                          flush=True)
                    passed += bad == 0
                    failed += bad != 0
            except (ReplyError, OSError) as e:
                if not kvs.running():
                    kvs.wait_exit(STOP_TIMEOUT)  # the whole log of a server that died
                raise ReplyError("%s; kvs-server (%s) log:\n%s"
                                 % (e, "running" if kvs.running() else "exited %s"
                                    % kvs.proc.returncode, log_excerpt(kvs.stderr_text())))
            finally:
                pair.close()
            rc = kvs.stop(check=False)
            log = log_excerpt(kvs.stderr_text())
        # what kvs acknowledged must survive a clean stop and a start on the same directory
        with Server(SERVER, d, "--engine", engine) as kvs:
            pair.kvs = kvs
            try:
                pair.connect()
                problem = pair.compare_contents()
            except ReplyError as e:
                problem = str(e)
            finally:
                pair.close()
        if rc != 0 or problem:
            failed += 1
            failures.add("engine=%s after a restart" % engine,
                         problem or "kvs-server exited %s on SIGTERM; its log:\n%s"
                         % (rc, log), engine)
        else:
            passed += 1
    return passed, failed


def main():
    global SERVER
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("server", help="path to kvs-server")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--commands", type=int, default=10000, help="per engine (default 10000)")
    ap.add_argument("--engine", action="append", choices=["kvs", "lmdb"],
                    help="engine to test (repeatable; default both)")
    ap.add_argument("--only", choices=["fixed", "random"], help="run only this part")
    ap.add_argument("--details", type=int, default=DETAILS,
                    help="failures described in full per engine (default %d)" % DETAILS)
    args = ap.parse_args()
    SERVER = os.path.abspath(args.server)
    if not os.access(REDIS_SERVER, os.X_OK):
        sys.exit("missing %s (Debian package redis-server)" % REDIS_SERVER)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    engines = args.engine or ["kvs", "lmdb"]
    tail = "--commands %d%s" % (args.commands, " --only " + args.only if args.only else "")
    print("seed=%d (replay: --seed %d)" % (args.seed, args.seed), flush=True)
    failures = Failures(args.seed, tail)
    passed = failed = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kvs-diff-redis-") as rd:
        redis_srv = RedisServer(rd).start()
        try:
            for engine in engines:
                try:
                    p, f = run_engine(engine, redis_srv, args, failures)
                except (ReplyError, OSError, AssertionError) as e:  # ServerError: bad exit
                    failures.add("engine=%s" % engine, "aborted: %s" % e, engine)
                    p, f = 0, 1
                passed += p
                failed += f
        finally:
            redis_srv.stop()
    print("seed=%d: %d passed, %d failed (%.1fs)" % (args.seed, passed, failed,
                                                     time.monotonic() - t0), flush=True)
    sys.exit(1 if failed or failures.items else 0)


if __name__ == "__main__":
    main()

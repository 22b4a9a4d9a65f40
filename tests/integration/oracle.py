"""oracle.py -- the expected state of a key space whose writers may be cut off by a crash.

A load client asks the oracle for each value it writes, tells it when the write was sent and when
it was acknowledged (or failed), and after a crash -- kill -9, a power cut -- hands it what the
restarted store holds. The oracle says whether that state is one the promises allow:

  - every value read is one that was sent for that key (values carry key, write number and a
    checksum, so a value from another key, a made-up one or a damaged one is caught);
  - every key holds its last acknowledged value or a later one (acknowledged or in flight) --
    "acknowledged" meaning, for a given promise, acknowledged before the cut (kill -9, and a
    power cut with --sync always) or more than `grace` seconds before it (a power cut with
    everysec); a removed key stays removed in the same way;
  - with `prefix=True`, what survived is a prefix of the commit order: if a write survived,
    every write acknowledged before it was sent survived too (or was overwritten by a later one).

Writes to one key must come from one writer at a time (give each client its own keys): the
order of a key's writes is then the order they were sent. After a check the state read becomes
the baseline for the next round (check() returns the problems; settle() adopts the state).

    o = Oracle(seed)
    w = o.begin(key, o.value(key, 100))   # or o.begin(key, None) for a remove
    ... send it ...
    o.ack(w)                               # or o.fail(w): the store answered an error
    ... crash, restart ...
    problems = o.check(read_all(o.keys()), cut_time=t, grace=0.0, prefix=False)
    o.settle(state)

Several writer threads may share one oracle: new_write() makes a value and begins its write
under the oracle's lock (value() and begin() must not be split by another thread's begin), and
check_read() judges a read made while writes of its key may still be in flight.
"""
import bisect
import random
import threading
import time
import zlib

MAGIC = b"kvso"


class Write:
    __slots__ = ("key", "value", "n", "sent", "acked", "failed")

    def __init__(self, key, value, n, sent):
        self.key, self.value, self.n, self.sent = key, value, n, sent
        self.acked = None   # time of the acknowledgement
        self.failed = False  # answered with an error: it may or may not have happened

    def __repr__(self):
        return "<write %d of %r: %s, sent %.3f, %s>" % (
            self.n, self.key, "remove" if self.value is None else "%d bytes" % len(self.value),
            self.sent, "acked %.3f" % self.acked if self.acked else
            ("failed" if self.failed else "in flight"))


def decode(value):
    """(key, write number) of a value made by Oracle.value, or None if it is not one (or is
    damaged: its checksum fails)."""
    if not isinstance(value, (bytes, bytearray)) or not value.startswith(MAGIC + b"|"):
        return None
    parts = bytes(value).split(b"|", 4)
    if len(parts) != 5:
        return None
    _, key, n, crc, pad = parts
    try:
        n = int(n)
        crc = int(crc, 16)
    except ValueError:
        return None
    if zlib.crc32(key + b"|" + b"%d" % n + b"|" + pad) != crc:
        return None
    return key, n


class Oracle:
    def __init__(self, seed=None):
        self.rng = random.Random(seed)
        self.n = 0
        self.history = {}   # key -> [Write] since the last settle, oldest first
        self.base = {}      # key -> value (None: absent) at the last settle
        self.by_n = {}      # write number -> Write (this round)
        self.lock = threading.Lock()  # for new_write(): value() + begin() as one step

    # ---- writing ----

    def value(self, key, size):
        """A value for key of about size bytes (at least the header) that says what it is."""
        key = key if isinstance(key, bytes) else key.encode()
        n = self.n + 1
        head = b"%d" % n
        pad_len = max(0, size - len(MAGIC) - len(key) - len(head) - 14)
        pad = bytes(self.rng.getrandbits(8) for _ in range(min(pad_len, 64))) * \
            (pad_len // 64 + 1)
        pad = pad[:pad_len].replace(b"|", b"_")
        crc = zlib.crc32(key + b"|" + head + b"|" + pad)
        return MAGIC + b"|" + key + b"|" + head + b"|" + b"%08x" % crc + b"|" + pad

    def begin(self, key, value):
        """A write of value (None: a remove) to key, about to be sent. Returns its handle."""
        key = key if isinstance(key, bytes) else key.encode()
        self.n += 1
        if value is not None:
            d = decode(value)
            assert d == (key, self.n), "make the value with value() right before begin()"
        w = Write(key, value, self.n, time.monotonic())
        self.history.setdefault(key, []).append(w)
        self.by_n[w.n] = w
        return w

    def new_write(self, key, size):
        """value() and begin() as one step, safe among threads: a write to key of a new value of
        about size bytes, or a remove if size is None. Returns the handle."""
        with self.lock:
            return self.begin(key, None if size is None else self.value(key, size))

    def last_n(self):
        """The number of the last write begun so far."""
        return self.n

    def ack(self, w, at=None):
        w.acked = time.monotonic() if at is None else at

    def fail(self, w):
        w.failed = True

    def keys(self):
        return sorted(set(self.base) | set(self.history))

    # ---- checking ----

    def _required(self, key, deadline):
        """Index in the key's history of the last write acknowledged by deadline (-1: the
        baseline)."""
        req = -1
        for i, w in enumerate(self.history.get(key, [])):
            if w.acked is not None and w.acked <= deadline:
                req = i
        return req

    def _which(self, key, got):
        """What got is for key: ('base', None), ('write', index) or ('bad', reason)."""
        hist = self.history.get(key, [])
        if got is None:
            cands = [i for i, w in enumerate(hist) if w.value is None]
            if self.base.get(key) is None:
                cands.insert(0, -1)
            return ("ok", cands) if cands else ("bad", "absent, but every write of it set it")
        d = decode(got)
        if d is None:
            if got == self.base.get(key):
                return ("ok", [-1])
            return ("bad", "a value never sent, or damaged: %r" % bytes(got[:60]))
        k, n = d
        if k != key:
            return ("bad", "holds the value of key %r (write %d)" % (k, n))
        if got == self.base.get(key):
            return ("ok", [-1])
        for i, w in enumerate(hist):
            if w.n == n:
                if w.value != got:
                    return ("bad", "write %d's value, damaged" % n)
                return ("ok", [i])
        return ("bad", "write %d was never sent for it" % n)

    def check(self, state, cut_time=None, grace=0.0, prefix=False):
        """Problems (a list of strings, empty if none) of state, a dict key -> value (None:
        absent) read after a cut at cut_time (monotonic; None: now). Writes acknowledged more
        than grace seconds before the cut must have survived."""
        cut = time.monotonic() if cut_time is None else cut_time
        problems, chosen = [], {}
        for key in self.keys():
            got = state.get(key)
            kind, what = self._which(key, got)
            if kind == "bad":
                problems.append("%r: %s" % (key, what))
                continue
            req = self._required(key, cut - grace)
            ok = [i for i in what if i >= req]
            if not ok:
                w = self.history[key][req]
                problems.append("%r: lost %r (acknowledged %.3f s before the cut); holds %s"
                                % (key, w, cut - w.acked,
                                   "the baseline" if what == [-1] else
                                   ", ".join(repr(self.history[key][i]) for i in what)))
                continue
            # An absent key matches the baseline and every remove alike (and a DEL of an absent
            # key writes nothing): as the survivor the prefix check takes the earliest write the
            # state can be, as the one that must have survived the latest -- no false alarm.
            chosen[key] = (ok[0], ok[-1])
        if prefix and not problems:
            problems += self._check_prefix(chosen)
        return problems

    def check_read(self, key, got, since, upto=None):
        """Problems (a list, empty if none) of a read of key answered got (None: absent) while
        writes may be in flight. The read was sent at since (monotonic): it must return the last
        write of key acknowledged by then (the baseline if none) or a later one, acknowledged or
        not -- but none numbered above upto (the last write number begun before the read was
        sent; None: no bound), which the store had not been asked for yet."""
        kind, what = self._which(key, got)
        if kind == "bad":
            return ["%r: read %s" % (key, what)]
        hist = self.history.get(key, [])
        req = self._required(key, since)
        ok = [i for i in what if i >= req and (upto is None or i < 0 or hist[i].n <= upto)]
        if ok:
            return []
        return ["%r: read %s, but %s" % (
            key, "absent" if got is None else "the baseline" if what == [-1] else
            ", ".join(repr(hist[i]) for i in what),
            "%r was acknowledged before the read was sent" % hist[req] if req >= 0 and
            all(i < req for i in what) else "that write was sent after the read")]

    def _required_table(self, keys):
        """A function (key, deadline) -> _required(key, deadline) for these keys that takes
        log time: per key the acknowledgement times sorted, with the highest history index
        acknowledged up to each."""
        table = {}
        for key in keys:
            acks = sorted((w.acked, i) for i, w in enumerate(self.history.get(key, []))
                          if w.acked is not None)
            best, top = [], -1
            for _, i in acks:
                top = max(top, i)
                best.append(top)
            table[key] = ([t for t, _ in acks], best)

        def required(key, deadline):
            times, best = table[key]
            k = bisect.bisect_right(times, deadline)
            return best[k - 1] if k else -1
        return required

    def _check_prefix(self, chosen):
        """Every write acknowledged before a surviving write was sent survived (or a later one of
        its key did). chosen: key -> (earliest, latest) history index its state can be."""
        problems = []
        required = self._required_table(chosen)
        for key, (i, _) in chosen.items():
            if i < 0:
                continue
            sent = self.history[key][i].sent
            for other, (_, j) in chosen.items():
                req = required(other, sent)
                if j < req:
                    problems.append("not a prefix: %r survived, but %r, acknowledged before it "
                                    "was sent, did not" % (self.history[key][i],
                                                           self.history[other][req]))
                    if len(problems) > 20:
                        return problems
        return problems

    def settle(self, state):
        """Adopt state (key -> value or None) as the new baseline."""
        self.base = {k: v for k, v in state.items()}
        for k in self.history:
            self.base.setdefault(k, None)
        self.history.clear()
        self.by_n.clear()

    def counts(self):
        ws = [w for h in self.history.values() for w in h]
        return {"writes": len(ws), "acked": sum(w.acked is not None for w in ws),
                "failed": sum(w.failed for w in ws),
                "in_flight": sum(w.acked is None and not w.failed for w in ws)}

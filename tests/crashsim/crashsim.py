"""crashsim.py -- the test side of the power-cut shim (crashsim.c): run a program under it, and
rebuild from what it recorded the directory a power loss could have left.

    lib = ".../libcrashsim.so"
    env = crashsim.env(lib, data_dir, shadow_dir, cut_on="rename:hint.tmp:1")
    ... start the program on data_dir with env; it is SIGKILLed, or exits CUT_EXIT by itself ...
    report = crashsim.rebuild(shadow_dir, data_dir, new_dir, random.Random(seed))
    ... open the store on new_dir and check what it holds ...

The rebuilt directory holds the names the last fsync of the directory made durable -- plus, half
the time, a random prefix of the creations, renames and unlinks made after it (a journaling file
system keeps its metadata operations in order) -- each with the content its file had at its last
sync (empty if it was never synced). Half the files (decided file by file) get random bytes in
what they lost: the bytes written but not synced, and the room past the durable length up to the
length the file had (never the durable bytes beside them in a sector: see _lost_span). Only
space that held nothing durable (zeros, or past the end) gets random bytes -- stale blocks of an
extent allocated but never written; a sector overwritten in place and not synced keeps its old
bytes (sectors are written whole or not at all).

A file whose sync the cut interrupted keeps the new content of the first sectors (in file order,
a random number of them) of those that sync had to write, and the old content of the rest. Real
devices may persist any subset in any order; that is not modelled, on purpose: a damaged record
with an intact one after it then reads as corruption of data that was durable (issue 9: a key
whose newest record is damaged reads as corrupt, never as its older value), and the record
format holds no sync watermark that could tell the two apart. See crashsim.c for the record
this reads.

Also here: the events, faults and cut the shim logged, for tests that aim their cuts and faults.
"""
import os
import random
import shutil

CUT_EXIT = 99   # the shim's exit status when it cuts by itself (CRASHSIM_CUT_AT / _CUT_ON)
SECTOR = 512

# The counted operations and the classes of file the shim names in its events (crashsim.c).
OPS = ("create", "write", "trunc", "fallocate", "fsync", "fdatasync", "msync", "rename", "unlink")


def env(lib, data_dir, shadow_dir, base=None, cut_at=None, cut_on=None, arm=None, fail=None,
        fail_mode=None, fail_errno=None, landed=False, sync_delay_us=0):
    """The environment for a program run under the shim (base: os.environ by default). fail is
    "OP:N[,OP:N]"; fail_mode "once", "always" or a count; fail_errno "EIO", "ENOSPC"...; arm: a
    path whose creation arms cut_on (counted from then on)."""
    e = dict(os.environ if base is None else base)
    e["LD_PRELOAD"] = lib + ((" " + e["LD_PRELOAD"]) if e.get("LD_PRELOAD") else "")
    e["CRASHSIM_DIR"] = os.path.abspath(data_dir)
    e["CRASHSIM_SHADOW"] = os.path.abspath(shadow_dir)
    for k in ("CRASHSIM_CUT_AT", "CRASHSIM_CUT_ON", "CRASHSIM_ARM", "CRASHSIM_FAIL",
              "CRASHSIM_FAIL_MODE", "CRASHSIM_FAIL_ERRNO", "CRASHSIM_FAIL_LANDED",
              "CRASHSIM_SYNC_DELAY_US"):
        e.pop(k, None)
    if arm:
        e["CRASHSIM_ARM"] = arm
    if cut_at:
        e["CRASHSIM_CUT_AT"] = str(cut_at)
    if cut_on:
        e["CRASHSIM_CUT_ON"] = cut_on
    if fail:
        e["CRASHSIM_FAIL"] = fail
    if fail_mode:
        e["CRASHSIM_FAIL_MODE"] = str(fail_mode)
    if fail_errno:
        e["CRASHSIM_FAIL_ERRNO"] = fail_errno
    if landed:
        e["CRASHSIM_FAIL_LANDED"] = "1"
    if sync_delay_us:
        e["CRASHSIM_SYNC_DELAY_US"] = str(sync_delay_us)
    # An ASan build of the program: its runtime no longer comes first in the library list.
    opts = e.get("ASAN_OPTIONS", "")
    if "verify_asan_link_order" not in opts:
        e["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "verify_asan_link_order=0"
    return e


def _read(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return default


def durable_map(shadow_dir):
    """name -> uid as of the last fsync of the directory."""
    m = {}
    for line in (_read(os.path.join(shadow_dir, "dir"), b"") or b"").decode().splitlines():
        uid, name = line.split(" ", 1)
        m[name] = int(uid)
    return m


def dirops(shadow_dir):
    """The directory operations since the last fsync of the directory, in order: tuples
    ("create", uid, name), ("rename", old, new), ("unlink", name)."""
    ops = []
    for line in (_read(os.path.join(shadow_dir, "dirops"), b"") or b"").decode().splitlines():
        p = line.split(" ")
        if p[0] == "create" and len(p) == 3:
            ops.append(("create", int(p[1]), p[2]))
        elif p[0] == "rename" and len(p) == 3:
            ops.append(("rename", p[1], p[2]))
        elif p[0] == "unlink" and len(p) == 2:
            ops.append(("unlink", p[1]))
        # a line cut short by the kill is not an operation that completed
    return ops


def apply_ops(m, ops):
    m = dict(m)
    for op in ops:
        if op[0] == "create":
            m[op[2]] = op[1]
        elif op[0] == "rename":
            if op[1] in m:
                m[op[2]] = m.pop(op[1])
        else:
            m.pop(op[1], None)
    return m


def events(shadow_dir):
    """The counted calls: [(n, op, class, name)]."""
    out = []
    for line in (_read(os.path.join(shadow_dir, "events"), b"") or b"").decode(
            errors="replace").splitlines():
        p = line.split(" ", 3)
        if len(p) == 4 and p[0].isdigit():
            out.append((int(p[0]), p[1], p[2], p[3]))
    return out


def faults(shadow_dir):
    """The injected failures: [(k, op, name, errno, mode, time)]."""
    out = []
    for line in (_read(os.path.join(shadow_dir, "faults"), b"") or b"").decode().splitlines():
        p = line.split(" ")
        if len(p) == 6:
            out.append((int(p[0]), p[1], p[2], int(p[3]), p[4], float(p[5])))
    return out


def synced(shadow_dir):
    """The sync calls that returned: [(n, op, class, name, begin, end, errno)], begin and end
    on CLOCK_MONOTONIC (time.monotonic()). A line cut short by a kill is left out."""
    out = []
    for line in (_read(os.path.join(shadow_dir, "synced"), b"") or b"").decode(
            errors="replace").splitlines():
        p = line.split(" ")
        if len(p) == 7 and p[0].isdigit():
            try:
                out.append((int(p[0]), p[1], p[2], p[3], float(p[4]), float(p[5]), int(p[6])))
            except ValueError:
                pass
    return out


def cut_info(shadow_dir):
    """(n, op, name, time) of a cut the shim made itself, or None."""
    b = _read(os.path.join(shadow_dir, "cut"))
    if not b:
        return None
    p = b.decode().split()
    return int(p[0]), p[1], p[2], float(p[3])


def _lost_sectors(durable, cur):
    """Offsets of the sectors of cur that the durable content does not hold."""
    out = []
    for off in range(0, len(cur), SECTOR):
        if cur[off:off + SECTOR] != durable[off:off + SECTOR]:
            out.append(off)
    return out


def _lost_span(durable, cur, off):
    """[a, b): the bytes of the sector at off that were written and not synced, from the first
    that differs from the durable content to the last (or to the end of cur, past the durable
    length). The bytes of the sector before and after them stay as they were: a sector written
    in part never damages the rest of it (SQLite's "powersafe overwrite", which drives and file
    systems give today)."""
    end = min(off + SECTOR, len(cur))
    a = off
    while a < end and a < len(durable) and cur[a] == durable[a]:
        a += 1
    b = end
    while b > a and b <= len(durable) and cur[b - 1] == durable[b - 1]:
        b -= 1
    return a, b


def rebuild(shadow_dir, real_dir, out_dir, rng, garbage_p=0.5, dirops_p=0.5):
    """Write into out_dir (created; must not exist) a directory a power cut could have left.
    real_dir is the directory the program wrote (its files hold what the page cache held).
    Returns a report: files, dirops applied of how many, files given garbage, inflight."""
    dur = durable_map(shadow_dir)
    ops = dirops(shadow_dir)
    cur = apply_ops(dur, ops)
    by_uid = {uid: name for name, uid in cur.items()}
    k = 0 if not ops or rng.random() >= dirops_p else rng.randint(0, len(ops))
    final = apply_ops(dur, ops[:k])
    inflight = _read(os.path.join(shadow_dir, "inflight"))
    inflight = int(inflight) if inflight and inflight.strip().isdigit() else None
    os.makedirs(out_dir)
    report = {"files": len(final), "dirops": "%d/%d" % (k, len(ops)), "garbage": [],
              "inflight": None}
    for name, uid in sorted(final.items()):
        data = bytearray(_read(os.path.join(shadow_dir, "files", str(uid)), b""))
        now = _read(os.path.join(real_dir, by_uid[uid])) if uid in by_uid else None
        if now is not None:
            if uid == inflight:
                # the sync the cut interrupted: the first sectors it had to write
                report["inflight"] = name
                lost = _lost_sectors(data, now)
                for off in lost[:rng.randint(0, len(lost))]:
                    chunk = now[off:off + SECTOR]
                    if len(data) < off + len(chunk):
                        data.extend(b"\0" * (off + len(chunk) - len(data)))
                    data[off:off + len(chunk)] = chunk
            if rng.random() < garbage_p:
                lost = _lost_sectors(data, now)
                if lost:
                    report["garbage"].append(name)
                for off in lost:
                    a, b = _lost_span(data, now, off)
                    if any(data[a:b]):
                        continue  # an overwrite of durable bytes: the old sector, not garbage
                    if len(data) < b:
                        data.extend(b"\0" * (b - len(data)))
                    data[a:b] = rng.randbytes(b - a)
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return report


def replace_dir(data_dir, new_dir):
    """Put new_dir where data_dir was."""
    shutil.rmtree(data_dir)
    os.rename(new_dir, data_dir)

#!/usr/bin/env python3
"""test_man.py -- the man pages (docs/man/*.1) against the programs they describe.

Usage: python3 test_man.py MANDIR kvs=PATH kvs-server=PATH kvs-client=PATH kvs-bench=PATH
       [unittest options]

The pages are written in roff by hand, so nothing but this test keeps them true to the code. For
each program, run as a process:

  * every flag its --help prints (--name, -x) is in its page, and so is every command of its
    usage lines (kvs set/get/rm/..., kvs-client set/get/rm) as an entry of its own: a flag or
    command added to a program and not to its page fails here;
  * the exit status of a usage error (an unknown flag) is one the page's EXIT STATUS lists;
  * the version in the page's .TH line is the one `--version` prints;
  * the page has the sections a man page of a command has (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
    EXIT STATUS, EXAMPLES, SEE ALSO) and groff renders it with every warning on (-ww) and none
    printed.

Every process has a timeout.
"""
import os
import re
import subprocess
import sys
import unittest

MANDIR = None
PROGRAMS = {}  # name -> path, from the command line
TIMEOUT = 30
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO")

# A flag in --help's text: --name (up to '=' or a space) or -x alone; not the '-' inside a word
# (kvs-lmdb), nor an error name (-OOM).
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9_-]*|-[A-Za-z](?![\w-]))")
# The command of a usage line: "usage: kvs [--dir DIR] set KEY VALUE" -> set.
COMMAND = r"^\s*(?:usage:)?\s*{prog}\s+(?:\[[^\]]*\]\s+)*([a-z]+)\b"


def run(*argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT)


def page_source(prog):
    with open(os.path.join(MANDIR, prog + ".1"), encoding="ascii") as f:
        return f.read()


def plain(src):
    """The page's words as a reader sees them: \\- is -, font changes and quotes are gone."""
    text = re.sub(r"\\f[BIRP]", "", src)
    text = text.replace("\\-", "-").replace("\\e", "\\")
    return text


def has_word(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


class ManPageTest(unittest.TestCase):
    def help_text(self, prog):
        r = run(PROGRAMS[prog], "--help")
        self.assertEqual(r.returncode, 0, f"{prog} --help: {r.stderr}")
        self.assertTrue(r.stdout.strip(), f"{prog} --help printed nothing")
        return r.stdout

    def test_every_flag_of_help_is_documented(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                flags = sorted(set(FLAG.findall(self.help_text(prog))))
                self.assertGreaterEqual(len(flags), 3, f"{prog}: flags not found in --help")
                text = plain(page_source(prog))
                missing = [f for f in flags if not has_word(text, f)]
                self.assertEqual(missing, [], f"{prog}.1 lacks flags its --help lists")

    def test_every_command_has_an_entry(self):
        for prog in ("kvs", "kvs-client"):
            with self.subTest(prog=prog):
                usage = re.compile(COMMAND.format(prog=re.escape(prog)), re.M)
                commands = sorted(set(usage.findall(self.help_text(prog))))
                self.assertTrue(commands, f"{prog}: no commands found in its usage")
                src = page_source(prog)
                missing = [c for c in commands
                           if not re.search(r"^\.TP\n\.B[IR]? " + c + r"\b", src, re.M)]
                self.assertEqual(missing, [], f"{prog}.1 has no entry (.TP) for these commands")

    def test_usage_error_status_is_documented(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                r = run(PROGRAMS[prog], "--no-such-flag")
                self.assertNotEqual(r.returncode, 0, f"{prog} accepted --no-such-flag")
                self.assertTrue(r.stderr, f"{prog}: a usage error said nothing on stderr")
                src = page_source(prog)
                m = re.search(r"^\.SH EXIT STATUS\n(.*?)^\.SH ", src, re.M | re.S)
                self.assertIsNotNone(m, f"{prog}.1 has no EXIT STATUS")
                codes = re.findall(r"^\.TP\n\.B (\d+)$", m.group(1), re.M)
                self.assertIn(str(r.returncode), codes,
                              f"{prog} exits {r.returncode} on a usage error; "
                              f"its page lists {codes}")

    def test_version_matches(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                r = run(PROGRAMS[prog], "--version")
                self.assertEqual(r.returncode, 0, r.stderr)
                m = re.fullmatch(re.escape(prog) + r" (\S+)\n", r.stdout)
                self.assertIsNotNone(m, f"{prog} --version printed {r.stdout!r}")
                th = re.search(r'^\.TH \S+ 1 "[^"]*" "kvs ([^"]+)"', page_source(prog), re.M)
                self.assertIsNotNone(th, f"{prog}.1: no .TH line with 'kvs VERSION'")
                self.assertEqual(th.group(1), m.group(1), f"{prog}.1 names another version")

    def test_sections_and_clean_rendering(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                path = os.path.join(MANDIR, prog + ".1")
                src = page_source(prog)
                heads = re.findall(r'^\.SH "?([A-Z ]+?)"?$', src, re.M)
                for s in SECTIONS:
                    self.assertIn(s, heads, f"{prog}.1 has no {s} section")
                r = run("groff", "-man", "-Tutf8", "-ww", "-z", path)
                self.assertEqual((r.returncode, r.stderr), (0, ""), f"groff on {prog}.1")
                r = run("groff", "-man", "-Tutf8", path)
                self.assertIn(prog, r.stdout, f"{prog}.1 renders without its name")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_man.py MANDIR prog=PATH... [unittest options]")
    MANDIR = os.path.abspath(sys.argv.pop(1))
    while len(sys.argv) > 1 and "=" in sys.argv[1] and not sys.argv[1].startswith("-"):
        name, path = sys.argv.pop(1).split("=", 1)
        PROGRAMS[name] = os.path.abspath(path)
    if sorted(PROGRAMS) != ["kvs", "kvs-bench", "kvs-client", "kvs-server"]:
        sys.exit("test_man.py: want kvs, kvs-server, kvs-client and kvs-bench, "
                 f"got {sorted(PROGRAMS)}")
    unittest.main()

#!/usr/bin/env python3
"""test_docs.py -- the documentation points where it says and lists the commands there are.

Usage: python3 test_docs.py PATH_TO_kvs-server [unittest options]

Two checks that keep README.md and docs/ honest as the code moves:

  - every relative link in README.md and docs/*.md ([text](path) and [text](path#anchor))
    names a file or directory that exists in the source tree, and an anchor names a heading of
    that file (GitHub's rule: lower case, punctuation dropped, spaces to dashes);
  - docs/library.md shows examples/basic.c whole: its ```c block after the heading
    "The example: examples/basic.c" is the file, byte for byte;
  - the commands in docs/commands.md's tables (the first cell of each row: every `NAME ...` in
    backticks whose first word is upper case) are exactly the commands a kvs-server started on
    a free loopback port lists in COMMAND: none missing from the page, none on the page that
    the server does not have.

The server is stopped by PID (kvstest); everything is bounded in time.
"""
import glob
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def pages():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs",
                                                                             "*.md")))


def prose(path):
    """The lines of a Markdown file outside fenced code blocks, with their numbers."""
    out, fenced = [], False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if FENCE.match(line.strip()):
                fenced = not fenced
            elif not fenced:
                out.append((n, line))
    return out


def slug(heading):
    """GitHub's anchor for a heading."""
    s = re.sub(r"[`*_]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    return {slug(line.lstrip("#")) for _, line in prose(path) if line.startswith("#")}


def broken_links(path):
    bad = []
    for n, line in prose(path):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:, man: ... : not a file of the tree
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            where = "%s:%d: %s" % (os.path.relpath(path, ROOT), n, target)
            if not os.path.exists(dest):
                bad.append(where + " (no such file)")
            elif anchor and (not dest.endswith(".md") or anchor not in anchors(dest)):
                bad.append(where + " (no such heading)")
    return bad


def table_commands(path):
    """{command name (lower case): line number} of the commands named in the first cell of
    the page's table rows."""
    found = {}
    for n, line in prose(path):
        if not line.startswith("|") or re.match(r"^\|[\s:|-]+\|?\s*$", line):
            continue
        first = re.split(r"(?<!\\)\|", line.strip())[1]
        for span in re.findall(r"`([^`]+)`", first):
            word = span.split()[0]
            if re.fullmatch(r"[A-Z][A-Z0-9]+", word):
                found.setdefault(word.lower(), n)
    return found


class Links(unittest.TestCase):
    def test_relative_links_resolve(self):
        checked = pages()
        self.assertIn(os.path.join(ROOT, "docs", "commands.md"), checked)
        bad = [b for p in checked for b in broken_links(p)]
        self.assertEqual(bad, [], "broken relative links in README.md and docs/")


class Example(unittest.TestCase):
    def test_library_page_shows_basic_c(self):
        with open(os.path.join(ROOT, "docs", "library.md"), encoding="utf-8") as f:
            page = f.read()
        m = re.search(r"^## The example: examples/basic\.c\n.*?^```c\n(.*?)^```$", page,
                      re.S | re.M)
        self.assertIsNotNone(m, "docs/library.md has no ```c block under its example heading")
        with open(os.path.join(ROOT, "examples", "basic.c"), encoding="utf-8") as f:
            self.assertEqual(m.group(1), f.read(),
                             "docs/library.md's copy of examples/basic.c differs from the file")


class CommandTables(kvstest.ServerTestCase):
    def test_tables_match_the_server(self):
        doc = os.path.join(ROOT, "docs", "commands.md")
        listed = table_commands(doc)
        s = self.start("--threads", "1")
        known = kvstest.command_names(s.port)
        self.assertGreater(len(known), 10, "COMMAND lists the server's commands")
        self.assertEqual(sorted(known - set(listed)), [],
                         "commands kvs-server has that docs/commands.md's tables leave out")
        self.assertEqual(sorted("%s (line %d)" % (c, listed[c]) for c in set(listed) - known),
                         [], "commands in docs/commands.md's tables that kvs-server lacks")


if __name__ == "__main__":
    kvstest.main("test_docs.py")

#!/usr/bin/env python3
"""test_install.py -- `make install` into a staging folder, and a program built against what it
installed, as a user outside this tree builds one.

Usage: python3 test_install.py SOURCE_DIR WORK_DIR [unittest options]

Once, for every test: `make install PREFIX=/kvs-test-prefix DESTDIR=WORK_DIR/stage
INSTALL_BUILD=WORK_DIR/tree` in SOURCE_DIR, the Makefile's own target, which configures a tree of
its own without the tests (kept in WORK_DIR between runs, so a second run rebuilds only what
changed) and installs from it. The prefix is one nothing else uses, so that a path the install
gets wrong cannot be found by luck. Then:

  * the layout: the four executables, libkvs.so.0.1.0 with the links libkvs.so.0 and libkvs.so,
    libkvs.a, kvs.h and kvs/client.h, kvs.pc, the four man pages (the same bytes as docs/man/),
    the systemd unit, and the sample config when the source has one (etc/kvs-server.conf); the
    installed kvs-server runs: it serves a SET and GET of the installed kvs-client;
  * the shared library's soname is libkvs.so.0, and `nm -D --defined-only` shows exactly the
    functions the installed headers declare: all kvs_* or kvsc_*, none kvs_test_*, none missing;
  * no test hook (kvs_test_*, pool_test_*, KVS_TEST_MANIFEST_RESET_EDITS) in libkvs.a or in the
    installed executables;
  * kvs.pc: its version is kvs.h's, and --static adds what libkvs.a needs (urcu-bp, xxhash,
    lmdb, uv, m);
  * each installed header compiles alone, and twice (its guard), as C99 with -Wpedantic -Werror
    and as C++11 (kvs/client.h includes <uv.h>, which needs POSIX's types: _POSIX_C_SOURCE);
  * examples/Makefile builds every examples/*.c (there must be one) with pkg-config against the
    staged tree (PKG_CONFIG_PATH, PKG_CONFIG_SYSROOT_DIR), in two variants: NAME, which loads the
    staged libkvs.so.0 (ldd says from where), and NAME-static, which needs no libkvs.so. Each runs
    on a data directory of its own, and must exit 0, print its report on stdout and leave a store
    in the directory;
  * the systemd unit names the prefix's kvs-server and config, and `systemd-analyze verify` (with
    the paths pointed into the staging folder and MANPATH at its man pages) has nothing to say;
    skipped only where systemd-analyze is not installed.

Every process has a timeout; the server is stopped by its pid (kvstest.Server).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvstest  # noqa: E402

SRC = None   # the source tree, from the command line
WORK = None  # this test's folder in the build tree, from the command line
PREFIX = "/kvs-test-prefix"
PROGRAMS = ("kvs", "kvs-server", "kvs-client", "kvs-bench")
MAN_PAGES = tuple(p + ".1" for p in PROGRAMS)
BUILD_TIMEOUT = 900
TIMEOUT = 60


def run(argv, timeout=TIMEOUT, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def header_version():
    with open(os.path.join(SRC, "include", "kvs.h")) as f:
        return re.search(r'^#define KVS_VERSION_STRING "([^"]+)"', f.read(), re.M).group(1)


def declared_functions(path):
    """The functions a header declares: names followed by '(' outside comments and macros, not
    the return type of a function pointer (`int (*fn)(...)`)."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    return set(re.findall(r"\b([A-Za-z_]\w*)\s*\((?!\s*\*)", text)) - {"sizeof"}


def defined_dynamic(path):
    out = run(["nm", "-D", "--defined-only", path]).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stage = os.path.join(WORK, "stage")
        cls.root = cls.stage + PREFIX
        shutil.rmtree(cls.stage, ignore_errors=True)
        # A make of its own: not a sub-make of the `make test` that may have started ctest.
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        run(["make", "-C", SRC, "install", f"PREFIX={PREFIX}", f"DESTDIR={cls.stage}",
             f"INSTALL_BUILD={os.path.join(WORK, 'tree')}", "JOBS=2"], timeout=BUILD_TIMEOUT,
            env=env)
        cls.lib = os.path.join(cls.root, "lib")
        cls.pc_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(cls.lib, "pkgconfig"),
                          PKG_CONFIG_SYSROOT_DIR=cls.stage)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def pkg_config(self, *args):
        return run(["pkg-config", *args, "kvs"], env=self.pc_env).stdout.split()

    # ---- layout ----

    def test_layout(self):
        for prog in PROGRAMS:
            self.assertTrue(os.access(self.path("bin", prog), os.X_OK), prog)
            r = run([self.path("bin", prog), "--version"])
            self.assertEqual(r.stdout, f"{prog} {header_version()}\n")
        real = f"libkvs.so.{header_version()}"
        self.assertTrue(os.path.isfile(self.path("lib", real)))
        self.assertFalse(os.path.islink(self.path("lib", real)))
        self.assertEqual(os.readlink(self.path("lib", "libkvs.so.0")), real)
        self.assertEqual(os.readlink(self.path("lib", "libkvs.so")), "libkvs.so.0")
        self.assertTrue(os.path.isfile(self.path("lib", "libkvs.a")))
        for h in ("kvs.h", os.path.join("kvs", "client.h")):
            with open(self.path("include", h), "rb") as a, \
                    open(os.path.join(SRC, "include", h), "rb") as b:
                self.assertEqual(a.read(), b.read(), h)
        for page in MAN_PAGES:
            with open(self.path("share", "man", "man1", page), "rb") as a, \
                    open(os.path.join(SRC, "docs", "man", page), "rb") as b:
                self.assertEqual(a.read(), b.read(), page)
        self.assertTrue(os.path.isfile(self.path("lib", "pkgconfig", "kvs.pc")))
        self.assertTrue(os.path.isfile(self.path("lib", "systemd", "system", "kvs-server.service")))
        conf = self.path("etc", "kvs", "kvs-server.conf")
        if os.path.exists(os.path.join(SRC, "etc", "kvs-server.conf")):
            self.assertTrue(os.path.isfile(conf), "the sample config is not installed")
        else:
            self.assertFalse(os.path.exists(conf))

    def test_installed_server_and_client_work(self):
        with tempfile.TemporaryDirectory() as d:
            with kvstest.Server(self.path("bin", "kvs-server"), d) as s:
                addr = f"--addr={s.host}:{s.port}"
                run([self.path("bin", "kvs-client"), "set", "greeting", "hello", addr])
                r = run([self.path("bin", "kvs-client"), "get", "greeting", addr])
                self.assertEqual(r.stdout, "hello\n")
                self.assertEqual(s.stop(), 0)

    # ---- the shared library's ABI, and no test hooks ----

    def test_soname(self):
        out = run(["readelf", "-d", self.path("lib", "libkvs.so")]).stdout
        self.assertIn("Library soname: [libkvs.so.0]", out)

    def test_exports_exactly_the_public_api(self):
        exported = defined_dynamic(self.path("lib", "libkvs.so"))
        declared = declared_functions(self.path("include", "kvs.h")) | \
            declared_functions(self.path("include", "kvs", "client.h"))
        self.assertGreater(len(declared), 40, "the headers' functions were not found")
        self.assertEqual(sorted(s for s in exported if not re.match(r"kvsc?_", s)), [],
                         "exported without the public prefix")
        self.assertEqual(sorted(s for s in exported if s.startswith("kvs_test_")), [])
        self.assertEqual(sorted(exported - declared), [], "exported but not declared public")
        self.assertEqual(sorted(declared - exported), [], "declared public but not exported")

    def test_no_test_hooks(self):
        hooks = re.compile(r"\b(kvs_test_\w+|pool_test_\w+)")
        for f in [self.path("lib", "libkvs.a")] + [self.path("bin", p) for p in PROGRAMS]:
            found = sorted(set(hooks.findall(run(["nm", f]).stdout)))
            self.assertEqual(found, [], f"test hooks in {f}")
        with open(self.path("bin", "kvs-server"), "rb") as f:
            self.assertFalse(b"KVS_TEST_MANIFEST_RESET_EDITS" in f.read(),
                             "kvs-server reads the test knob KVS_TEST_MANIFEST_RESET_EDITS")

    # ---- pkg-config and the headers ----

    def test_pkg_config(self):
        self.assertEqual(self.pkg_config("--modversion"), [header_version()])
        self.assertIn(f"-I{self.root}/include", self.pkg_config("--cflags"))
        libs = self.pkg_config("--libs")
        self.assertIn(f"-L{self.lib}", libs)
        self.assertIn("-lkvs", libs)
        static = self.pkg_config("--static", "--libs")
        for lib in ("-lurcu-bp", "-lxxhash", "-llmdb", "-luv", "-lm"):
            self.assertIn(lib, static)

    def test_headers_compile_alone(self):
        cflags = self.pkg_config("--cflags")
        with tempfile.TemporaryDirectory() as d:
            for h in ("kvs.h", "kvs/client.h"):
                src = os.path.join(d, "h.c")
                with open(src, "w") as f:
                    f.write(f"#include <{h}>\n#include <{h}>\nint main(void) {{ return 0; }}\n")
                posix = ["-D_POSIX_C_SOURCE=200809L"] if h == "kvs/client.h" else []
                for cc in (["cc", "-std=c99"], ["c++", "-std=c++11", "-x", "c++"]):
                    with self.subTest(header=h, compiler=cc[0]):
                        run(cc + posix + ["-Wall", "-Wextra", "-Wpedantic", "-Werror", *cflags,
                                          "-c", "-o", os.path.join(d, "h.o"), src])

    # ---- the examples, built against the staged tree ----

    def test_examples_build_and_run(self):
        names = sorted(f[:-2] for f in os.listdir(os.path.join(SRC, "examples"))
                       if f.endswith(".c"))
        self.assertTrue(names, "examples/ has no .c file to build")
        out = os.path.join(WORK, "examples")
        shutil.rmtree(out, ignore_errors=True)
        run(["make", "-C", os.path.join(SRC, "examples"), f"O={out}"], env=self.pc_env,
            timeout=BUILD_TIMEOUT)
        run_env = dict(os.environ, LD_LIBRARY_PATH=self.lib)
        for name in names:
            shared, static = os.path.join(out, name), os.path.join(out, name + "-static")
            with self.subTest(example=name):
                ldd = run(["ldd", shared], env=run_env).stdout
                self.assertRegex(ldd, rf"libkvs\.so\.0 => {re.escape(self.lib)}/libkvs\.so\.0 ")
                needed = run(["readelf", "-d", static]).stdout
                self.assertNotIn("libkvs", needed, f"{name}-static needs a libkvs.so")
                for prog, env in ((shared, run_env), (static, dict(os.environ))):
                    with tempfile.TemporaryDirectory() as d:
                        data = os.path.join(d, "data")
                        r = run([prog, data], cwd=d, env=env, check=False)
                        self.assertEqual(r.returncode, 0,
                                         f"{prog}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
                        self.assertTrue(r.stdout.strip(), f"{prog} printed nothing")
                        self.assertTrue(os.path.isdir(data) and os.listdir(data),
                                        f"{prog} left no store in the directory it was given")

    # ---- the systemd unit ----

    def test_systemd_unit(self):
        unit = self.path("lib", "systemd", "system", "kvs-server.service")
        with open(unit) as f:
            text = f.read()
        self.assertNotIn("@", text, "a placeholder was not configured")
        self.assertRegex(text, rf"(?m)^ExecStart={PREFIX}/bin/kvs-server --config "
                               rf"{PREFIX}/etc/kvs/kvs-server\.conf$")
        self.assertRegex(text, r"(?m)^StateDirectory=kvs$")
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed: the unit is not verified")
        with tempfile.TemporaryDirectory() as d:
            staged = os.path.join(d, "kvs-server.service")
            with open(staged, "w") as f:
                f.write(text.replace(PREFIX + "/", self.root + "/"))
            env = dict(os.environ, MANPATH=self.path("share", "man"))
            r = run(["systemd-analyze", "verify", staged], env=env, check=False)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""),
                             "systemd-analyze verify")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_install.py SOURCE_DIR WORK_DIR [unittest options]")
    SRC = os.path.abspath(sys.argv.pop(1))
    WORK = os.path.abspath(sys.argv.pop(1))
    os.makedirs(WORK, exist_ok=True)
    unittest.main()

# kvs — the two commands: `make run` and `make test`. Everything is built by CMake under build/.
#
#   make          optimised build (RelWithDebInfo); executables in build/bin/
#   make test     build + the whole suite (CTest), then again under ASan+UBSan (build-asan/),
#                 then the concurrency tests under ThreadSanitizer (build-tsan/, make test-tsan)
#   make check T=<test> [C=<case>] [SAN=asan|tsan]
#                 one CTest test (T: its name, or a regex: T='test_engine_.*'), in the tree SAN
#                 names (default build/); C picks cmocka cases by name (* and ? allowed)
#   make run      build and start kvs-server on 127.0.0.1:4000 with its data in ./data
#   make bench    build, then bench/run.sh: kvs-server vs redis-server, and the thread pools
#                 (CSVs, text and PNG charts in bench/results/; see BENCHMARKS.md)
#   make deps     install the Debian packages the build and the tests need (only what is missing)
#   make fuzz     the libFuzzer targets of tests/fuzz (clang, ASan+UBSan, build-fuzz/), FUZZ_SECONDS
#                 (default 600) each, two at a time; make test runs them 60 s each (test-fuzz)
#   make torture  the kill -9 torture at length (TORTURE_CYCLES=200 per engine x sync mode, through
#                 kvs-server and through libkvs), then the power-cut long run (torture-powercut:
#                 POWERCUT_CUTS=1000 power cuts per sync mode, IOERR_RUNS=400 I/O-fault runs)
#   make soak     SOAK_SECONDS (default 1800) of mixed load with compaction, kills and power cuts
#                 (SOAK_CUTS=0: kills only)
#   make install  the executables, libkvs (.so and .a), headers, kvs.pc, man pages, the sample
#                 config and the systemd unit under PREFIX (default /usr/local), DESTDIR honoured
#   make clean

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
CTEST_ARGS ?= --output-on-failure

.PHONY: all build test test-release test-asan test-tsan check run bench deps clean torture soak

all: build

deps:
	@scripts/deps.sh

# The three trees of make test: where each lives, how it is configured, and the environment its
# tests run in (make check uses the same).
DIR_release = $(BUILD)
DIR_asan = $(ASAN_BUILD)
DIR_tsan = $(TSAN_BUILD)
CONFIG_release = -DCMAKE_BUILD_TYPE=RelWithDebInfo
CONFIG_asan = -DCMAKE_BUILD_TYPE=Debug -DKVS_SANITIZE=address
CONFIG_tsan = -DCMAKE_BUILD_TYPE=Debug -DKVS_SANITIZE=thread
ENV_release =
ENV_asan = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ENV_tsan = TSAN_OPTIONS="$(TSAN_OPTIONS_TEST)" KVS_TEST_SCALE=0.5
# $(call tree,release|asan|tsan): configure (once) and build that tree.
tree = @cmake -S . -B $(DIR_$(1)) $(CONFIG_$(1)) -DBUILD_TESTING=ON >/dev/null && \
  cmake --build $(DIR_$(1)) -j $(JOBS)

build: deps
	$(call tree,release)

test: test-release test-asan test-tsan test-fuzz

test-release: build
	cd $(BUILD) && ctest $(CTEST_ARGS) -j $(JOBS)

test-asan: deps
	$(call tree,asan)
	cd $(ASAN_BUILD) && $(ENV_asan) ctest $(CTEST_ARGS) -j $(JOBS)

# ThreadSanitizer on the tests labelled "concurrency" (many threads on one store, thread pools).
# tests/tsan.supp holds the false positives of uninstrumented liburcu, each with its reason.
# suppress_equal_addresses=0: with it on, TSan keeps every racy address it meets, suppressed or
# not, in a list it scans linearly for each new one — quadratic in the (suppressed) RCU reads of
# these tests, minutes instead of seconds; each report is still deduplicated by its stacks.
# KVS_TEST_SCALE shrinks the iteration counts of test_concurrency for the slower build.
TSAN_OPTIONS_TEST = suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1 \
  suppress_equal_addresses=0
test-tsan: deps
	$(call tree,tsan)
	cd $(TSAN_BUILD) && $(ENV_tsan) ctest $(CTEST_ARGS) -j $(JOBS) -L concurrency

# One test (README, "Running one test"): the tests' names are listed by `ctest -N` in a tree.
# A C that matches no case of the test fails rather than passing with nothing run.
T ?=
C ?=
SAN ?= release
check: deps
	@test -n "$(T)" || { echo "usage: make check T=<test> [C=<case>] [SAN=asan|tsan]" >&2; exit 2; }
	$(call tree,$(SAN))
	@cd $(DIR_$(SAN)) && { $(ENV_$(SAN)) KVS_TEST_CASE='$(C)' ctest --output-on-failure \
	  --no-tests=error -R '^($(T))$$' $(if $(C),-V) > check.log 2>&1; rc=$$?; cat check.log; \
	  if [ -n '$(C)' ] && grep -q '\] 0 test(s) run' check.log; then \
	    echo "make check: no cmocka case of $(T) matches C=$(C)" >&2; rc=1; fi; exit $$rc; }

ARGS ?=
run: build
	@mkdir -p data
	$(BUILD)/bin/kvs-server --addr 127.0.0.1:4000 --dir data $(ARGS)

bench: build
	bench/run.sh $(BUILD)/bin/kvs-server

# The long runs of tests/integration/test_torture.py (seeded: the seed is printed; replay with
# KVS_TORTURE_SEED=N). Each prints what it checked: cycles, kills during compaction, writes acked,
# keys checked, losses.
TORTURE_CYCLES ?= 200
SOAK_SECONDS ?= 1800
SOAK_CUTS ?= 1
TORTURE = /usr/bin/python3 tests/integration/test_torture.py $(BUILD)/bin/kvs-server \
  $(BUILD)/bin/kvs_writer
torture: build
	KVS_TORTURE_CYCLES=$(TORTURE_CYCLES) $(TORTURE)
	$(POWERCUT)

# Power cuts and I/O faults at length (tests/integration/test_powercut.py over the shim of
# tests/crashsim): POWERCUT_CUTS cuts per sync mode (always, everysec: 2,000 in all), IOERR_RUNS
# fault runs. Seeded, the seed printed (replay with KVS_POWERCUT_SEED=N); KVS_POWERCUT_KEEP=1 keeps
# the directories of a failure. `make torture` runs it after the kill -9 torture.
POWERCUT_CUTS ?= 1000
IOERR_RUNS ?= 400
POWERCUT = KVS_POWERCUT_CUTS=$(POWERCUT_CUTS) KVS_IOERR_RUNS=$(IOERR_RUNS) /usr/bin/python3 \
  tests/integration/test_powercut.py $(BUILD)/bin/kvs-server $(BUILD)/lib/libcrashsim.so
.PHONY: torture-powercut
torture-powercut: build
	$(POWERCUT)

soak: build
	SOAK_CUTS=$(SOAK_CUTS) $(TORTURE) --soak $(SOAK_SECONDS)

# Fuzzing (tests/fuzz): its own build with clang (-DKVS_FUZZ=ON), the targets FUZZ_JOBS at a
# time; a crash, leak or hang fails the run and names its reproducer (tests/fuzz/run.sh).
# make fuzz FUZZ_SECONDS=3600 FUZZ_TARGETS="fuzz_recover" narrows it; make fuzz-seeds rewrites
# the committed seed corpora (tests/fuzz/corpus) from fuzz_seeds.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_JOBS ?= 2
.PHONY: fuzz fuzz-build test-fuzz fuzz-seeds
fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVS_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_all

test-fuzz: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

fuzz: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-seeds: fuzz-build
	rm -rf tests/fuzz/corpus
	UBSAN_OPTIONS=halt_on_error=1 $(FUZZ_BUILD)/bin/fuzz_seeds tests/fuzz/corpus

# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]: what CMakeLists.txt's "Install" lists,
# built in a tree of its own (INSTALL_BUILD, configured without the tests): the trees of make
# test compile the test hooks (KVS_TEST_HOOKS), which an installed library or server must not
# have. The prefix is written into kvs.pc and the systemd unit, so it is given at configure time.
PREFIX ?= /usr/local
INSTALL_BUILD ?= build-install
.PHONY: install
install: deps
	@cmake -S . -B $(INSTALL_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
	  -DKVS_TEST_HOOKS=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(INSTALL_BUILD) -j $(JOBS)
	DESTDIR=$(abspath $(DESTDIR)) cmake --install $(INSTALL_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(INSTALL_BUILD)

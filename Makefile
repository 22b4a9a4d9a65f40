# kvs — the two commands: `make run` and `make test`. Everything is built by CMake under build/.
#
#   make          Release build; executables in build/bin/
#   make test     build + the whole suite (CTest), then again under ASan+UBSan (build-asan/),
#                 then the concurrency tests under ThreadSanitizer (build-tsan/, make test-tsan)
#   make run      build and start kvs-server on 127.0.0.1:4000 with its data in ./data
#   make bench    build, then bench/run.sh: kvs-server vs redis-server, and the thread pools
#                 (CSVs, text and PNG charts in bench/results/; see BENCHMARKS.md)
#   make deps     install the Debian packages the build and the tests need (only what is missing)
#   make clean

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
CTEST_ARGS ?= --output-on-failure

.PHONY: all build test test-release test-asan test-tsan run bench deps clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: test-release test-asan test-tsan

test-release: build
	cd $(BUILD) && ctest $(CTEST_ARGS) -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKVS_SANITIZE=address -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_ARGS) -j $(JOBS)

# ThreadSanitizer on the tests labelled "concurrency" (many threads on one store, thread pools).
# tests/tsan.supp holds the false positives of uninstrumented liburcu, each with its reason.
# suppress_equal_addresses=0: with it on, TSan keeps every racy address it meets, suppressed or
# not, in a list it scans linearly for each new one — quadratic in the (suppressed) RCU reads of
# these tests, minutes instead of seconds; each report is still deduplicated by its stacks.
# KVS_TEST_SCALE shrinks the iteration counts of test_concurrency for the slower build.
TSAN_OPTIONS_TEST = suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1 \
  suppress_equal_addresses=0
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKVS_SANITIZE=thread -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="$(TSAN_OPTIONS_TEST)" KVS_TEST_SCALE=0.5 \
	  ctest $(CTEST_ARGS) -j $(JOBS) -L concurrency

ARGS ?=
run: build
	@mkdir -p data
	$(BUILD)/bin/kvs-server --addr 127.0.0.1:4000 --dir data $(ARGS)

bench: build
	bench/run.sh $(BUILD)/bin/kvs-server

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

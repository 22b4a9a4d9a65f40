# kvs — the two commands: `make run` and `make test`. Everything is built by CMake under build/.
#
#   make          Release build; executables in build/bin/
#   make test     build + the whole suite (CTest), then again under ASan+UBSan (build-asan/)
#   make run      build and start kvs-server on 127.0.0.1:4000 with its data in ./data
#   make bench    build, then bench/run.sh: kvs-server vs redis-server, and the thread pools
#                 (CSVs, text and PNG charts in bench/results/; see BENCHMARKS.md)
#   make deps     install the Debian packages the build and the tests need (only what is missing)
#   make clean

JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CTEST_ARGS ?= --output-on-failure

.PHONY: all build test test-release test-asan run bench deps clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: test-release test-asan

test-release: build
	cd $(BUILD) && ctest $(CTEST_ARGS) -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKVS_SANITIZE=address -DBUILD_TESTING=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_ARGS) -j $(JOBS)

ARGS ?=
run: build
	@mkdir -p data
	$(BUILD)/bin/kvs-server --addr 127.0.0.1:4000 --dir data $(ARGS)

bench: build
	bench/run.sh $(BUILD)/bin/kvs-server

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

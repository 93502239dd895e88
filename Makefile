# fedgate - top-level driver around CMake. `make run` and `make test` do all the set-up
# on a fresh Debian 12 machine (they install missing packages with apt-get).
BUILD      ?= build
ASAN_BUILD ?= build-asan
DOMAIN     ?= localhost
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build asan deps test-deps run setup test unit integration check-contracts \
        format clean

all: build

deps:
	@scripts/install-deps build

test-deps:
	@scripts/install-deps all

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

$(ASAN_BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFG_SANITIZE=ON

asan: deps $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# Writes fedgate.conf (if absent), certificates, the store and a first server-admin,
# then runs fedgated in the foreground.
run: build
	@scripts/setup "$(DOMAIN)" "$(BUILD)"
	@exec $(BUILD)/fedgated --config fedgate.conf

setup: build
	@scripts/setup "$(DOMAIN)" "$(BUILD)"

test: test-deps build asan
	@scripts/run-tests "$(BUILD)" "$(ASAN_BUILD)"

unit: asan
	cd $(ASAN_BUILD) && ctest --output-on-failure

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# Benchmarks (issue 8, doc/BENCHMARKS.md): fedgate against Prosody and ejabberd, server on
# CPU 0 and load on CPU 1; bench-deps installs the servers under test (scripts/install-deps
# bench keeps their services from starting). bench-smoke is the short harness check
# (fedgate only, about 30 s).
.PHONY: bench bench-deps bench-smoke
bench-deps:
	@scripts/install-deps bench

bench: build
	@scripts/install-deps bench
	FG_BUILD_DIR=$(BUILD) bench/run all

bench-smoke: build
	FG_BUILD_DIR=$(BUILD) bench/run all --smoke

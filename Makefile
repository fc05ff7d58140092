# The user's interface. `make test` and `make run` work on a fresh Debian bookworm machine.
PRESET ?= release
BUILD_DIR := build
JOBS ?= $(shell nproc)

.PHONY: deps build test run bench asan tsan clean

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	ctest --preset release -j $(JOBS)

# The server arrives with issue #5; until then `make run` says so and runs the ANN demo.
run: build
	@echo "make run: kyrodb_server is not built yet (issue #5)."
	@echo "make run: running the cold-tier demo instead: kyrodb_bench ann on 20,000 x 64 clustered vectors."
	$(BUILD_DIR)/bin/kyrodb_bench ann --dataset clustered --n 20000 --dim 64 --queries 200 --metric l2 --engines kyrodb

bench: build
	$(BUILD_DIR)/bin/kyrodb_bench ann --dataset clustered --n 100000 --dim 128 --metric l2 --queries 1000 --seed 1
	$(BUILD_DIR)/bin/kyrodb_bench ann --dataset clustered --n 100000 --dim 768 --metric cosine --queries 1000 --seed 2

asan: deps
	cmake --preset asan >/dev/null && cmake --build --preset asan -j $(JOBS) && ctest --preset asan -j $(JOBS)

tsan: deps
	cmake --preset tsan >/dev/null && cmake --build --preset tsan -j $(JOBS) && ctest --preset tsan -j $(JOBS)

clean:
	rm -rf build build-debug build-asan build-tsan

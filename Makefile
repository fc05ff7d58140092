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

# Starts the server in the foreground on config/default.yaml (HTTP 127.0.0.1:51051, gRPC
# 127.0.0.1:50051, data in ./data). Ctrl-C stops it cleanly.
run: build
	$(BUILD_DIR)/bin/kyrodb_server --config config/default.yaml

bench: build
	$(BUILD_DIR)/bin/kyrodb_bench ann --dataset clustered --n 100000 --dim 128 --metric l2 --queries 1000 --seed 1
	$(BUILD_DIR)/bin/kyrodb_bench ann --dataset clustered --n 100000 --dim 768 --metric cosine --queries 1000 --seed 2

asan: deps
	cmake --preset asan >/dev/null && cmake --build --preset asan -j $(JOBS) && ctest --preset asan -j $(JOBS)

tsan: deps
	cmake --preset tsan >/dev/null && cmake --build --preset tsan -j $(JOBS) && ctest --preset tsan -j $(JOBS)

clean:
	rm -rf build build-debug build-asan build-tsan build-fuzz

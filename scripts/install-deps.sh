#!/usr/bin/env bash
# Installs every Debian bookworm package KyroDB needs to build, test and benchmark.
# Idempotent: does nothing when all packages are present; runs `apt-get update` only when
# something is missing. This is the one place the package list lives.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # fuzzing (fuzz/run_fuzz.sh): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
  # server libraries
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libsimdjson-dev libfast-float-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libssl-dev libzstd-dev libabsl-dev libboost-dev
  # the benchmark's lean gRPC load client (HTTP/2 framing)
  libnghttp2-dev
  # tests and micro benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # TLS tests (certificates made by the openssl command); the power-loss test file system (FUSE)
  openssl libfuse3-dev fuse3
  # ANN benchmark contenders (never linked into the server)
  libhnswlib-dev libfaiss-dev libopenblas-dev
  # end-to-end tests (Debian's /usr/bin/python3) and the README's examples
  python3 python3-requests python3-grpcio python3-protobuf curl
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

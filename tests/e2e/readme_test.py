#!/usr/bin/python3
"""Runs the README's curl examples against a fresh kyrodb_server and checks that each prints
what the README says (search_latency_ms, which varies, is compared by presence only).

Usage: readme_test.py --server-bin PATH --readme README.md
"""
import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile


def examples(readme):
    """(command, expected output) pairs: a `$ curl ...` line and the line after it."""
    lines = open(readme).read().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("$ curl ") and i + 1 < len(lines):
            out.append((line[2:], lines[i + 1]))
    return out


def normalize(text):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(doc, dict) and "search_latency_ms" in doc:
        doc["search_latency_ms"] = "<varies>"
    return doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--readme", required=True)
    args = ap.parse_args()
    cases = examples(args.readme)
    assert len(cases) >= 6, f"expected the README's curl examples, found {len(cases)}"
    work = tempfile.mkdtemp(prefix="kyrodb_readme_")
    port_file = os.path.join(work, "ports.json")
    config = os.path.join(os.path.dirname(os.path.abspath(args.readme)), "config", "default.yaml")
    proc = subprocess.Popen(
        [args.server_bin, "--config", config, "--data-dir", os.path.join(work, "data"),
         "--http-port", "0", "--grpc-port", "0", "--port-file", port_file,
         "--set", "hnsw.dimension=4"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    for line in proc.stdout:
        log.append(line)
        if line.rstrip().endswith(" ready"):
            break
    else:
        sys.exit("server exited before ready:\n" + "".join(log))
    port = json.load(open(port_file))["http"]
    failures = 0
    try:
        for command, expected in cases:
            argv = [a.replace("localhost:51051", f"127.0.0.1:{port}") for a in shlex.split(command)]
            got = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
            if normalize(got) != normalize(expected):
                failures += 1
                print(f"FAIL: {command}\n  README: {expected}\n  got:    {got}")
            else:
                print(f"ok: {command}")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, f"server exit code {code}"
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

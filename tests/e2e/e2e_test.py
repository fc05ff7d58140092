#!/usr/bin/python3
"""End-to-end test of kyrodb_server from Python, as a client application would use it.

Inserts 10,000 vectors over HTTP (bulk and single inserts, some string ids), searches over gRPC
with stubs generated from proto/kyrodb/v1/kyrodb.proto by protoc + grpc_python_plugin, checks
recall@10 against brute force (>= 0.95), restarts the server and checks the same answers.

Usage: e2e_test.py --server-bin PATH --proto-dir DIR
Needs Debian's python3-requests, python3-grpcio, python3-protobuf (run with /usr/bin/python3).
"""
import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import grpc
import requests

DIM = 32
N = 10_000
QUERIES = 100
K = 10


def generate_stubs(proto_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(
        ["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         os.path.join(proto_dir, "kyrodb/v1/kyrodb.proto")],
        check=True)
    sys.path.insert(0, out_dir)
    from kyrodb.v1 import kyrodb_pb2, kyrodb_pb2_grpc  # noqa: E402
    return kyrodb_pb2, kyrodb_pb2_grpc


class Server:
    """kyrodb_server on ephemeral loopback ports; ready once it logs 'ready'."""

    def __init__(self, binary, data_dir):
        self.port_file = data_dir + ".ports.json"
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.proc = subprocess.Popen(
            [binary, "--data-dir", data_dir, "--http-port", "0", "--grpc-port", "0",
             "--port-file", self.port_file, "--set", f"hnsw.dimension={DIM}",
             "--set", "hnsw.distance=cosine"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []
        for line in self.proc.stdout:
            self.output.append(line)
            if line.rstrip().endswith(" ready"):
                break
        else:
            raise RuntimeError("server exited before ready:\n" + "".join(self.output))
        # Keep draining its output so it never blocks on a full pipe.
        self.drain = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self.drain.start()
        with open(self.port_file) as f:
            ports = json.load(f)
        self.http = f"http://127.0.0.1:{ports['http']}"
        self.grpc_target = f"127.0.0.1:{ports['grpc']}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.drain.join(timeout=10)
        assert code == 0, f"server exited with {code}:\n" + "".join(self.output)


def normalize(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def make_data(seed):
    rng = random.Random(seed)
    # A mixture of 50 clusters, like real embeddings (not uniform noise).
    centers = [[rng.gauss(0, 1) for _ in range(DIM)] for _ in range(50)]
    def sample():
        c = centers[rng.randrange(len(centers))]
        return [c[d] + rng.gauss(0, 0.35) for d in range(DIM)]
    docs = [sample() for _ in range(N)]
    queries = [sample() for _ in range(QUERIES)]
    return docs, queries


def brute_force(docs_n, query, k):
    q = normalize(query)
    scored = [(sum(a * b for a, b in zip(q, d)), i + 1) for i, d in enumerate(docs_n)]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [i for _, i in scored[:k]]


def grpc_search(pb2, stub, queries):
    out = []
    for q in queries:
        resp = stub.Search(pb2.SearchRequest(query_embedding=q, k=K, ef_search=128), timeout=30)
        assert resp.error == "", resp.error
        scores = [r.score for r in resp.results]
        assert scores == sorted(scores, reverse=True), "results not sorted by score"
        out.append([r.doc_id for r in resp.results])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="kyrodb_e2e_")
    try:
        pb2, pb2_grpc = generate_stubs(args.proto_dir, os.path.join(work, "stubs"))
        data_dir = os.path.join(work, "data")
        docs, queries = make_data(seed=7)
        server = Server(args.server_bin, data_dir)
        http = requests.Session()

        # Readiness and an empty database.
        assert http.get(server.http + "/ready").status_code == 200
        r = http.get(server.http + "/v1/documents/1")
        assert r.status_code == 404, r.text
        assert r.json()["error_code"] == "DOCUMENT_NOT_FOUND", r.text

        # 10,000 documents over HTTP: the first 100 one by one, the rest in bulk; flush halfway
        # so that searches merge the hot tier with HNSW.
        for i in range(100):
            r = http.post(server.http + "/v1/insert",
                          json={"doc_id": i + 1, "embedding": docs[i], "metadata": {"n": str(i + 1)}})
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        for start in range(100, N, 1000):
            batch = [{"doc_id": i + 1, "embedding": docs[i], "metadata": {"n": str(i + 1)}}
                     for i in range(start, min(N, start + 1000))]
            r = http.post(server.http + "/v1/bulk_insert", json={"documents": batch})
            assert r.status_code == 200, r.text
            assert r.json()["inserted"] == len(batch), r.text
            if start == 5100:
                r = http.post(server.http + "/v1/flush", json={})
                assert r.status_code == 200 and r.json()["docs_flushed"] > 0, r.text
        # String ids round-trip and do not collide with numeric ones.
        r = http.post(server.http + "/v1/insert",
                      json={"doc_id": "doc_123", "embedding": docs[0], "metadata": {"kind": "string"}})
        assert r.status_code == 200 and r.json()["doc_id"] == "doc_123", r.text
        r = http.get(server.http + "/v1/documents/doc_123")
        assert r.status_code == 200 and r.json()["metadata"] == {"kind": "string"}, r.text
        r = http.post(server.http + "/v1/delete", json={"doc_id": "doc_123"})
        assert r.status_code == 200, r.text
        # Validation over HTTP.
        r = http.post(server.http + "/v1/insert", json={"doc_id": 1, "embedding": [1.0, 2.0]})
        assert r.status_code == 400 and r.json()["error_code"] == "DIMENSION_MISMATCH", r.text

        # Search over gRPC; recall@10 against brute force.
        channel = grpc.insecure_channel(server.grpc_target)
        stub = pb2_grpc.KyroDBServiceStub(channel)
        try:
            stub.Search(pb2.SearchRequest(query_embedding=queries[0], k=0), timeout=10)
            raise AssertionError("k=0 accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        docs_n = [normalize(d) for d in docs]
        truth = [brute_force(docs_n, q, K) for q in queries]
        got = grpc_search(pb2, stub, queries)
        hits = sum(len(set(g) & set(t)) for g, t in zip(got, truth))
        recall = hits / (K * len(queries))
        print(f"recall@{K} over gRPC: {recall:.4f}")
        assert recall >= 0.95, f"recall@{K} {recall:.4f} < 0.95"
        q = stub.Query(pb2.QueryRequest(doc_id=42, include_embedding=True), timeout=10)
        assert q.found and q.metadata["n"] == "42"
        assert all(abs(a - b) < 1e-5 for a, b in zip(q.embedding, normalize(docs[41])))

        # Snapshot, restart, same answers.
        r = http.post(server.http + "/v1/snapshot", json={})
        assert r.status_code == 200, r.text
        channel.close()
        server.stop()
        server = Server(args.server_bin, data_dir)
        channel = grpc.insecure_channel(server.grpc_target)
        stub = pb2_grpc.KyroDBServiceStub(channel)
        again = grpc_search(pb2, stub, queries)
        assert again == got, "search answers changed across a restart"
        q2 = stub.Query(pb2.QueryRequest(doc_id=42, include_embedding=True), timeout=10)
        assert q2.found and list(q2.embedding) == list(q.embedding) and dict(q2.metadata) == dict(q.metadata)
        r = http.get(server.http + "/v1/documents/doc_123")
        assert r.status_code == 404, "a deleted document came back after restart: " + r.text
        channel.close()
        server.stop()
        print("e2e: OK")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

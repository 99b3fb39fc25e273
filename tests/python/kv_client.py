"""A client that is not ours: Python grpcio stubs generated from native-node/proto, talking to a
running Ringside node.

Usage: python kv_client.py HOST:PORT PROTO_DIR

Exits non-zero with a message on the first failed check.
"""

import importlib
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def generate(proto_dir: str, out: str) -> None:
    protos = [
        os.path.join("ringside", "v1", name)
        for name in ("kv.proto", "admin.proto")
    ]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(
        ["grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
         f"--grpc_python_out={out}", *protos]
    )
    if code != 0:
        sys.exit(f"protoc failed on {protos} (exit {code})")


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def main() -> None:
    address, proto_dir = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="ringside-py-")
    generate(proto_dir, out)
    sys.path.insert(0, out)
    kv_pb2 = importlib.import_module("ringside.v1.kv_pb2")
    kv_grpc = importlib.import_module("ringside.v1.kv_pb2_grpc")
    admin_pb2 = importlib.import_module("ringside.v1.admin_pb2")
    admin_grpc = importlib.import_module("ringside.v1.admin_pb2_grpc")

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=30)

    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(reply.status == health_pb2.HealthCheckResponse.SERVING, "grpc.health.v1 says SERVING")

    kv = kv_grpc.KvStub(channel)
    quorum = kv_pb2.CONSISTENCY_LEVEL_QUORUM
    written = kv.Put(kv_pb2.PutRequest(key=b"py-key", value=b"from python", consistency=quorum),
                     timeout=10)
    check(len(written.acks) >= 1 and written.version.timestamp > 0,
          f"Put at QUORUM acknowledged by {list(written.acks)}")

    got = kv.Get(kv_pb2.GetRequest(key=b"py-key", consistency=quorum), timeout=10)
    check(got.found and list(got.values) == [b"from python"], "Get at QUORUM returns the value")

    # Two blind writes of the same key are concurrent: both come back as siblings.
    kv.Put(kv_pb2.PutRequest(key=b"py-siblings", value=b"a", consistency=quorum), timeout=10)
    kv.Put(kv_pb2.PutRequest(key=b"py-siblings", value=b"b", consistency=quorum), timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key=b"py-siblings", consistency=quorum), timeout=10)
    check(sorted(got.values) == [b"a", b"b"], "concurrent blind writes come back as siblings")

    # Writing back with the context resolves them.
    kv.Put(kv_pb2.PutRequest(key=b"py-siblings", value=b"merged", consistency=quorum,
                             context=got.context), timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key=b"py-siblings", consistency=quorum), timeout=10)
    check(list(got.values) == [b"merged"], "a write with the read's context supersedes both")

    # A blind delete is concurrent with the value (vector clocks): the value survives.
    kv.Delete(kv_pb2.DeleteRequest(key=b"py-key", consistency=quorum), timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key=b"py-key", consistency=quorum), timeout=10)
    check(list(got.values) == [b"from python"], "a blind delete does not remove a value it did not see")
    kv.Delete(kv_pb2.DeleteRequest(key=b"py-key", consistency=quorum, context=got.context),
              timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key=b"py-key", consistency=quorum), timeout=10)
    check(not got.found, "a delete with the read's context removes the key")

    try:
        kv.Put(kv_pb2.PutRequest(key=b"k", value=b"v", consistency=17), timeout=10)
        check(False, "an unknown consistency level is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT
              and "unknown consistency level" in e.details(),
              f"an unknown consistency level is refused: {e.details()}")

    admin = admin_grpc.AdminStub(channel)
    status = admin.Status(admin_pb2.StatusRequest(), timeout=10)
    check(len(status.members) >= 1 and all(m.state == "U" for m in status.members),
          f"Admin.Status lists {len(status.members)} members, all up")
    print("python grpcio client: all checks passed")


if __name__ == "__main__":
    main()

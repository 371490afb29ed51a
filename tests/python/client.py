"""An independent iamd client: Python stubs generated from proto/ with
grpcio-tools, calling a running daemon. Prints one line per check; the Rust
test (tests/it/python_client.rs) reads them.

Usage: client.py STUBS_DIR HOST:PORT
"""
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from iamd.v1 import authorizer_pb2 as pb  # noqa: E402
from iamd.v1 import authorizer_pb2_grpc as rpc  # noqa: E402

DOC = "arn:acme:docs:eu-1:123456789012:doc/guide"
T = 10  # seconds: no call may hang the test
stub = rpc.AuthorizerStub(grpc.insecure_channel(sys.argv[2]))

r = stub.Authorize(pb.AuthorizeRequest(
    principal="user/alice", action="docs:GetDocument", resource=DOC,
    context={"docs:Team": pb.ContextValue(single="docs")}), timeout=T)
print("authorize", pb.Decision.Name(r.decision), r.determining[0].policy, r.determining[0].sid)

r = stub.Authorize(pb.AuthorizeRequest(
    principal="user/bob", action="docs:DeleteDocument", resource=DOC,
    context={"aws:MultiFactorAuthPresent": pb.ContextValue(single="false"),
             "aws:TagKeys": pb.ContextValue(multi=pb.StringList(values=[]))}), timeout=T)
print("deny", pb.Decision.Name(r.decision), r.determining[0].policy)

batch = stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[
    pb.AuthorizeRequest(principal="user/alice", action="files:GetFile", resource="*"),
    pb.AuthorizeRequest(principal="user/nobody", action="files:GetFile", resource="*"),
]), timeout=T)
print("batch", " ".join(f"{pb.Decision.Name(a.decision)}/{a.denied_by}" for a in batch.responses))

try:
    stub.Authorize(pb.AuthorizeRequest(principal="user/alice", action="GetFile", resource="*"), timeout=T)
    print("invalid", "none")
except grpc.RpcError as e:
    print("invalid", e.code().name)

s = stub.GetStatus(pb.GetStatusRequest(), timeout=T)
print("status", s.serving, s.live.users, s.live.roles)

"""Writes a gRPC request body (a length-prefixed protobuf frame) for h2load,
and checks the server's answer to it.

The message types are fetched from the server itself by gRPC reflection, so
no .proto file of the peer is needed:

    grpc_body.py ADDR SERVICE METHOD REQUEST_JSON OUT_FILE

prints the answer as JSON on standard output.
"""
import json
import struct
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2


def main():
    addr, service, method, request_json, out = sys.argv[1:6]
    channel = grpc.insecure_channel(addr)
    files = {}
    ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
    # grpc.reflection.v1 first, then v1alpha: same messages, two names.
    for version in ("v1", "v1alpha"):
        info = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        try:
            for answer in info(iter([ask]), timeout=5):
                for raw in answer.file_descriptor_response.file_descriptor_proto:
                    fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                    files[fd.name] = fd
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
    pool = descriptor_pool.DescriptorPool()
    added = set()
    while len(added) < len(files):
        for name, fd in files.items():
            if name not in added and all(d in added or d not in files for d in fd.dependency):
                pool.Add(fd)
                added.add(name)
    svc = pool.FindServiceByName(service)
    m = svc.FindMethodByName(method)
    request_type = message_factory.GetMessageClass(m.input_type)
    response_type = message_factory.GetMessageClass(m.output_type)
    request = json_format.Parse(request_json, request_type())
    body = request.SerializeToString()
    with open(out, "wb") as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)
    call = channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda r: r.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    print(json_format.MessageToJson(call(request, timeout=5), indent=None))


if __name__ == "__main__":
    main()

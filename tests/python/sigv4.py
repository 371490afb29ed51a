"""Requests signed by botocore, the AWS SDK for Python's own signer, for
iamd's SigV4 tests (tests/it/credentials.rs).

  sigv4.py vectors N SEED     N random requests, signed, one JSON a line
  sigv4.py presign URL        presigned GETs of a key through Envoy: fresh,
                              expired, tampered; each URL's status and body
  sigv4.py skewed URL MINUTES a list call signed MINUTES in the past
  sigv4.py sign METHOD URL SERVICE [TOKEN]
                              one request signed (with a session token, for
                              temporary credentials): its method, path and
                              headers as JSON

The key is in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the region in
AWS_DEFAULT_REGION.
"""

import datetime
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.auth
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = os.environ.get("AWS_DEFAULT_REGION", "eu-west-1")
CREDENTIALS = Credentials(
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
)

# Characters a path segment, a query name or value, or a header value may
# hold: unreserved ones, reserved ones, spaces, percent signs, non-ASCII.
TEXT = "abcXYZ019-._~ !$&'()*+,;=:@/?#[]%\"<>^`{|}é€漢"
HEADER_TEXT = "abcXYZ019-._~ !$&'()*+,;=:@/?%\"<>"


def text(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def vector(rng):
    service = rng.choice(["s3", "docs", "execute-api"])
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"])
    segments = [text(rng, TEXT.replace("/", ""), 0, 8) for _ in range(rng.randint(0, 4))]
    if service != "s3" and rng.random() < 0.3:
        # Dot segments and empty ones, which every service but S3
        # normalizes before signing.
        segments.insert(rng.randint(0, len(segments)), rng.choice([".", "..", ""]))
    path = "/" + "/".join(urllib.parse.quote(s, safe="~") for s in segments)
    if rng.random() < 0.2:
        path += "/"
    pairs = [
        (text(rng, TEXT, 1, 6), text(rng, TEXT, 0, 6)) for _ in range(rng.randint(0, 4))
    ]
    if pairs and rng.random() < 0.5:
        pairs.append((pairs[0][0], text(rng, TEXT, 0, 6)))
    url = "http://service.internal:8443" + path
    params = None
    if rng.random() < 0.5:
        # As the SDK's serializers build a query: botocore encodes it.
        params = pairs
    elif pairs:
        url += "?" + "&".join(
            urllib.parse.quote(k, safe="-_.~") + "=" + urllib.parse.quote(v, safe="-_.~")
            for k, v in pairs
        )
    headers = {}
    for i in range(rng.randint(0, 3)):
        value = text(rng, HEADER_TEXT, 0, 10)
        if rng.random() < 0.3:
            value = "  " + value.replace(" ", "   ") + "  "
        headers[rng.choice(["X-Amz-Meta-", "X-Custom-", "Content-Type"]) + (str(i) if i else "")] = value
    body = b""
    if method in ("PUT", "POST", "PATCH") and rng.random() < 0.8:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    request = AWSRequest(method=method, url=url, headers=headers, data=body, params=params)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(CREDENTIALS, service, REGION).add_auth(request)
    prepared = request.prepare()
    parts = urllib.parse.urlsplit(prepared.url)
    wire = parts.path + ("?" + parts.query if parts.query else "")
    sent = {k.lower(): str(v).strip() for k, v in prepared.headers.items()}
    sent["host"] = parts.netloc
    return {
        "service": service,
        "method": method,
        "path": wire,
        "headers": sent,
        "body": body.hex(),
    }


def vectors(n, seed):
    rng = random.Random(seed)
    for _ in range(n):
        print(json.dumps(vector(rng)))


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def presign(endpoint):
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    params = {"Bucket": "reports", "Key": "2026/q4.txt"}
    fresh = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600)
    short = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=1)
    tampered = fresh.replace("2026/q4.txt", "2026/q3.txt")
    restricted = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "reports", "Key": "restricted/plan.txt"}, ExpiresIn=600
    )
    time.sleep(2.5)
    for name, url in [
        ("fresh", fresh),
        ("expired", short),
        ("tampered", tampered),
        ("restricted", restricted),
    ]:
        status, body = fetch(url)
        print(json.dumps({"name": name, "status": status, "body": body}))


def skewed(endpoint, minutes):
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: real() - datetime.timedelta(minutes=minutes)
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    try:
        s3.list_objects_v2(Bucket="reports")
        print(json.dumps({"code": None}))
    except s3.exceptions.ClientError as e:
        print(json.dumps({"code": e.response["Error"]["Code"]}))


def sign(method, url, service, token=None):
    credentials = Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token)
    request = AWSRequest(method=method, url=url)
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    signer(credentials, service, REGION).add_auth(request)
    prepared = request.prepare()
    parts = urllib.parse.urlsplit(prepared.url)
    headers = {k.lower(): str(v) for k, v in prepared.headers.items()}
    headers["host"] = parts.netloc
    print(json.dumps({"method": method, "path": parts.path + ("?" + parts.query if parts.query else ""), "headers": headers}))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "vectors":
        vectors(int(sys.argv[2]), int(sys.argv[3]))
    elif command == "presign":
        presign(sys.argv[2])
    elif command == "sign":
        sign(*sys.argv[2:])
    elif command == "skewed":
        skewed(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"unknown command {command}")

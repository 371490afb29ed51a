#!/usr/bin/env bash
# AuthZEN subject search ("who can") on a 100,000-user bundle (the synthetic
# bundle of benches/bundle.rs: 100,000 users, 10,000 roles), walked page by
# page: the time of each call (curl's time_total), the pages, the results.
# The first call also sorts the bundle's names once (Bundle::known).
#
#   benches/authzen/search.sh [USERS]     (default 100000)
#
# Loopback only; 60 calls at most.
set -euo pipefail
cd "$(dirname "$0")/../.."
USERS=${1:-100000}
WORK=target/authzen-search
mkdir -p "$WORK"
cargo build --release --quiet --bin iamd
if [ ! -f "$WORK/big-$USERS/users.yaml" ]; then
  cargo bench --quiet --bench bundle -- --write "$WORK/big-$USERS" "$USERS"
fi
cat > "$WORK/iamd.yaml" <<YAML
bundle: $WORK/big-$USERS
listen: 127.0.0.1:50091
adminListen: 127.0.0.1:0
log: {level: warn}
authzen:
  listen: 127.0.0.1:8291
  mapping:
    action: "svc3:{name}"
    resources: {thing: "arn:acme:svc3:eu-1:123456789012:thing/{id}"}
    contextKeys: {secure: "aws:SecureTransport"}
YAML
target/release/iamd serve --config "$WORK/iamd.yaml" & PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf -o /dev/null http://127.0.0.1:8291/.well-known/authzen-configuration && break
  sleep 0.2
done
# Who may svc3:GetReport on thing 0/x: the users whose groups or policies
# hold P0 (the team0 tag, over TLS).
token=""
calls=0; results=0
: > "$WORK/times"
while :; do
  body=$(printf '{"subject":{"type":"user"},"action":{"name":"GetReport"},"resource":{"type":"thing","id":"0/x"},"context":{"secure":"true"},"page":{"token":"%s"}}' "$token")
  out=$(curl -s -w '\n%{time_total}' -X POST -H 'content-type: application/json' -d "$body" http://127.0.0.1:8291/access/v1/search/subject)
  time=$(tail -1 <<<"$out"); json=$(head -1 <<<"$out")
  n=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["results"]))' "$json")
  token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["page"]["next_token"])' "$json")
  calls=$((calls + 1)); results=$((results + n))
  echo "$time" >> "$WORK/times"
  echo "call $calls: $n results in ${time}s, next_token '${token}'"
  [ -z "$token" ] && break
  [ "$calls" -ge 60 ] && { echo "more than 60 calls" >&2; exit 1; }
done
sort -n "$WORK/times" | awk -v c="$calls" -v r="$results" '{a[NR]=$1; s+=$1} END {printf "%d calls, %d results; per call: median %.1f ms, max %.1f ms; all pages %.0f ms\n", c, r, a[int((NR+1)/2)]*1000, a[NR]*1000, s*1000}'

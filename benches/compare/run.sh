#!/usr/bin/env bash
# Side by side, on this machine, in one run: iamd, an empty tonic handler
# (the cost of a gRPC round trip), and the Cerbos PDP with an equivalent
# policy, loaded by two generators (iamd bench, and h2load with pre-encoded
# gRPC bodies, so that the generator cannot flatter iamd). Every answer is
# checked before the load. Prints a Markdown table of medians over RUNS runs
# for each layout:
#   pinned  each server on CPU 0, the generators on CPU 1 (taskset): a core
#           each, as a sidecar with a CPU of its own; the steady reading.
#   shared  the scheduler places them: the generator and the server meet on
#           a core now and then, and the runs spread more.
#
#   benches/compare/run.sh [RUNS] [pinned|shared|both]
#
# Needs: the Rust toolchain, python3 with venv, npm (for Cerbos) and h2load
# (Debian: apt-get install nghttp2-client). Loopback only; every load is
# bounded by a request count and a timeout.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
LAYOUTS=${2:-both}
[ "$LAYOUTS" = both ] && LAYOUTS="pinned shared"
WORK=target/compare
mkdir -p "$WORK"
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 2; }
case " $LAYOUTS " in *" pinned "*)
  { command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; } || { echo "the pinned layout needs taskset and two CPUs" >&2; exit 2; } ;;
esac

cargo build --release --quiet --bin iamd --example empty_server
IAMD=target/release/iamd
EMPTY=target/release/examples/empty_server

# Tools: grpcio-reflection (to encode request bodies), Cerbos from npm.
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet grpcio==1.85.1 grpcio-reflection==1.85.1
fi
CERBOS=$WORK/cerbos/package/cerbos-linux-x64
if [ ! -x "$CERBOS" ]; then
  mkdir -p "$WORK/cerbos"
  (cd "$WORK/cerbos" && npm pack --silent @cerbos/cerbos-linux-x64@0.55.0 >/dev/null && tar xzf cerbos-cerbos-linux-x64-0.55.0.tgz)
  chmod +x "$CERBOS"
fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
PY=$WORK/venv/bin/python
"$PY" -c 'import json
for l in open("examples/bench/docs-mix.jsonl"):
    d = json.loads(l); d.pop("expect", None); print(json.dumps(d))' > "$WORK/empty-mix.jsonl"

h2() { # PORT BODY PATH COUNT -> requests/s
  timeout 120 $GEN h2load -n "$4" -c 2 -m 16 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$2" "http://127.0.0.1:$1$3" | awk '/finished in/ {gsub(",", "", $4); print $4}'
}
bench() { # PORT PID [ARGS] -> "rps p99_us cpu_us"
  local port=$1 pid=$2 mix=examples/bench/docs-mix.jsonl; shift 2
  # The empty handler allows everything: its mix expects nothing.
  [ "$pid" = "$EMPTY_PID" ] && mix=$WORK/empty-mix.jsonl
  timeout 120 $GEN $IAMD bench --addr "127.0.0.1:$port" --mix "$mix" --quiet --json \
    --server-pid "$pid" --warmup 1 --duration 5 "$@" \
    | $PY -c 'import json,sys; r=json.load(sys.stdin); assert r["wrong"]==0 and not r["errors"], r; print(round(r["throughput"]), round(r["latencyUs"]["p99"]), round(r["serverCpuUs"] or 0, 1))'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk "BEGIN {printf \"$3\", $1/$2}"; }

measure() { # LAYOUT: starts the three servers, loads them RUNS times, prints a table
  local layout=$1 SRV="" desc="placed by the scheduler"
  GEN=""
  if [ "$layout" = pinned ]; then
    SRV="taskset -c 0"; GEN="taskset -c 1"; desc="each server on CPU 0, the generators on CPU 1"
  fi
  PIDS=()
  $SRV $IAMD serve --bundle examples/bundle --listen 127.0.0.1:50077 --admin-listen 127.0.0.1:0 --log-level warn & PIDS+=($!); IAMD_PID=$!
  $SRV $EMPTY 127.0.0.1:50078 2>/dev/null & PIDS+=($!); EMPTY_PID=$!
  (cd benches/compare/cerbos && CERBOS_NO_TELEMETRY=1 exec $SRV "../../../$CERBOS" server --config=config.yaml --log-level=warn) & PIDS+=($!)
  for _ in $(seq 50); do
    $IAMD health --addr 127.0.0.1:50077 >/dev/null 2>&1 && curl -sf localhost:3592/_cerbos/health >/dev/null && break
    sleep 0.2
  done

  # The same decision for each: alice reads a document of her team.
  $PY benches/compare/grpc_body.py 127.0.0.1:50077 iamd.v1.Authorizer Authorize \
    '{"principal":"user/alice","action":"docs:GetDocument","resource":"arn:acme:docs:eu-1:123456789012:doc/guide","context":{"docs:Team":{"single":"docs"}}}' \
    "$WORK/iamd.bin" | grep -q '"decision": "ALLOW"' || { echo "iamd did not allow" >&2; exit 1; }
  $PY benches/compare/grpc_body.py 127.0.0.1:3593 cerbos.svc.v1.CerbosService CheckResources \
    '{"requestId":"1","principal":{"id":"alice","roles":["user"],"attr":{"team":"docs","mfa":true}},"resources":[{"actions":["get"],"resource":{"kind":"document","id":"guide","attr":{"team":"docs"}}}]}' \
    "$WORK/cerbos.bin" | grep -q '"get": "EFFECT_ALLOW"' || { echo "Cerbos did not allow" >&2; exit 1; }

  declare -A R
  last() { awk "BEGIN {printf \"%.0f\", $(tr ' ' '\n' <<<"${R[$1]}" | grep . | tail -1)$2$(tr ' ' '\n' <<<"${R[$3]}" | grep . | tail -1)}"; }
  local run rps p99 cpu
  for run in $(seq "$RUNS"); do
    R[h2_iamd]+="$(h2 50077 "$WORK/iamd.bin" /iamd.v1.Authorizer/Authorize 200000) "
    R[h2_empty]+="$(h2 50078 "$WORK/iamd.bin" /iamd.v1.Authorizer/Authorize 200000) "
    R[h2_cerbos]+="$(h2 3593 "$WORK/cerbos.bin" /cerbos.svc.v1.CerbosService/CheckResources 50000) "
    read -r rps p99 cpu <<<"$(bench 50077 "$IAMD_PID")"
    R[b_iamd]+="$rps "; R[b_iamd_p99]+="$p99 "; R[b_iamd_cpu]+="$cpu "
    read -r rps p99 cpu <<<"$(bench 50078 "$EMPTY_PID")"
    R[b_empty]+="$rps "; R[b_empty_p99]+="$p99 "; R[b_empty_cpu]+="$cpu "
    # Each run's ratios, the two servers measured a few seconds apart.
    R[h2_ratio]+="$(last h2_iamd "*100/" h2_empty) "
    R[b_ratio]+="$(last b_iamd "*100/" b_empty) "
  done
  m() { tr ' ' '\n' <<<"${R[$1]}" | grep . | median; }
  # The median, and the spread of the runs when there are several.
  ms() { local v; v=$(tr ' ' '\n' <<<"${R[$1]}" | grep . | sort -n | awk '{a[NR]=$1} END {if (NR > 1) printf " (%s to %s)", a[1], a[NR]}'); echo "$(m "$1")$v"; }
  # Open loop at half of iamd's closed-loop throughput, for iamd and for the
  # empty handler at the same rate: the round trip's own tail beside iamd's.
  local half=$(( $(m b_iamd) / 2 ))
  for run in $(seq "$RUNS"); do
    read -r rps p99 cpu <<<"$(bench 50077 "$IAMD_PID" --rate "$half")"
    R[o_iamd_p99]+="$p99 "; R[o_iamd_cpu]+="$cpu "
    read -r rps p99 cpu <<<"$(bench 50078 "$EMPTY_PID" --rate "$half")"
    R[o_empty_p99]+="$p99 "; R[o_empty_cpu]+="$cpu "
  done
  cleanup
  wait 2>/dev/null || true

  cat <<EOF

### Layout: $layout ($desc)

| generator | iamd | empty handler | Cerbos 0.55 | iamd / empty | iamd / Cerbos |
|---|---|---|---|---|---|
| h2load, requests/s | $(ms h2_iamd) | $(ms h2_empty) | $(ms h2_cerbos) | $(ratio "$(m h2_iamd)*100" "$(m h2_empty)" "%.0f%%") (runs: $(sed "s/ $//; s/ /, /g" <<<"${R[h2_ratio]}")%) | $(ratio "$(m h2_iamd)" "$(m h2_cerbos)" "%.1fx") |
| iamd bench, requests/s | $(ms b_iamd) | $(ms b_empty) | | $(ratio "$(m b_iamd)*100" "$(m b_empty)" "%.0f%%") (runs: $(sed "s/ $//; s/ /, /g" <<<"${R[b_ratio]}")%) | |
| iamd bench, p99 µs (closed loop) | $(ms b_iamd_p99) | $(ms b_empty_p99) | | | |
| server CPU µs per request (closed loop) | $(m b_iamd_cpu) | $(m b_empty_cpu) | | | |
| open loop at $half/s (half of iamd's), p99 µs | $(ms o_iamd_p99) | $(ms o_empty_p99) | | | |
| server CPU µs per request (open loop) | $(m o_iamd_cpu) | $(m o_empty_cpu) | | | |

Medians of $RUNS runs (in brackets: the lowest and the highest); h2load: 2 connections x 16 streams, 200,000 requests (Cerbos 50,000); iamd bench: 5 s after 1 s of warm-up, closed loop and open loop.
EOF
}

for layout in $LAYOUTS; do measure "$layout"; done

#!/usr/bin/env bash
# iamd's AuthZEN endpoint (POST /access/v1/evaluation), an empty HTTP handler
# on the same stack (examples/empty_http_server.rs: the round-trip limit) and
# the Cerbos PDP's AuthZEN endpoint, side by side, loaded by h2load over
# HTTP/2 (prior knowledge) and over HTTP/1.1 (`--h1`), and by wrk over
# HTTP/1.1 (a second, independent generator), each server pinned to CPU 0
# and the generator to CPU 1. The same question for each: alice reads
# a document of her team.
#
#   benches/authzen/run.sh [RUNS]      (default 3; medians, each run listed)
#
# Every answer is checked: each server's answer is `{"decision":true}`
# (17 bytes), checked once with curl and then for every request of a run by
# h2load's count of body bytes (17 x the requests; a deny would be 18), and
# no request may fail; wrk's script (check.lua) compares every answer's
# status and body, and no answer may be wrong. Then an open loop at a fixed rate (the same for iamd
# and the empty handler), whose per-request times h2load logs: p50 and p99
# from the log.
#
# Needs: the Rust toolchain, h2load (apt-get install nghttp2-client), wrk
# (apt-get install wrk), curl,
# npm (for Cerbos). Loopback only; every load is bounded by a count or a
# duration.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
N=${N:-200000}
RATE=${RATE:-5000}   # per connection, 4 connections: 20,000 requests/s
WORK=target/authzen-bench
mkdir -p "$WORK"
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
WRK_SECONDS=${WRK_SECONDS:-10}
cargo build --release --quiet --bin iamd --example empty_http_server
IAMD=target/release/iamd
EMPTY=target/release/examples/empty_http_server
CERBOS=$WORK/cerbos/package/cerbos-linux-x64
if [ ! -x "$CERBOS" ]; then
  mkdir -p "$WORK/cerbos"
  (cd "$WORK/cerbos" && timeout 300 npm pack --silent @cerbos/cerbos-linux-x64@0.55.0 >/dev/null && tar xzf cerbos-cerbos-linux-x64-0.55.0.tgz)
  chmod +x "$CERBOS"
fi

cat > "$WORK/iamd.yaml" <<YAML
bundle: examples/bundle
listen: 127.0.0.1:50081
adminListen: 127.0.0.1:0
log: {level: warn}
authzen:
  listen: 127.0.0.1:8281
  mapping:
    action: "docs:{name}"
    resources: {document: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
    contextKeys: {team: "docs:Team"}
YAML
printf '%s' '{"subject":{"type":"user","id":"alice"},"action":{"name":"GetDocument"},"resource":{"type":"document","id":"guide"},"context":{"team":"docs"}}' > "$WORK/iamd.json"
printf '%s' '{"subject":{"type":"user","id":"alice","properties":{"team":"docs"}},"action":{"name":"get"},"resource":{"type":"document","id":"guide","properties":{"team":"docs"}}}' > "$WORK/cerbos.json"
cp "$WORK/iamd.json" "$WORK/empty.json"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c 0 $IAMD serve --config "$WORK/iamd.yaml" & PIDS+=($!)
taskset -c 0 $EMPTY 127.0.0.1:8282 2>/dev/null & PIDS+=($!)
(cd benches/compare/cerbos && CERBOS_NO_TELEMETRY=1 exec taskset -c 0 "../../../$CERBOS" server --config=config.yaml --log-level=warn) & PIDS+=($!)
declare -A PORT=([iamd]=8281 [empty]=8282 [cerbos]=3592)
for name in iamd empty cerbos; do
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null -X POST -H 'content-type: application/json' --data-binary @"$WORK/$name.json" "http://127.0.0.1:${PORT[$name]}/access/v1/evaluation" && break
    sleep 0.2
  done
  got=$(curl -s -X POST -H 'content-type: application/json' --data-binary @"$WORK/$name.json" "http://127.0.0.1:${PORT[$name]}/access/v1/evaluation")
  [ "$got" = '{"decision":true}' ] || { echo "$name answered $got" >&2; exit 1; }
done

# closed NAME H1? : requests/s, after checking every answer.
closed() {
  local name=$1 proto=$2 out flags
  if [ "$proto" = h1 ]; then flags=(--h1 -c 32 -m 1); else flags=(-c 2 -m 16); fi
  out=$(timeout 300 taskset -c 1 h2load -n "$N" "${flags[@]}" -t 1 -H 'content-type: application/json' \
    -d "$WORK/$name.json" "http://127.0.0.1:${PORT[$name]}/access/v1/evaluation")
  check "$name" "$out" "$N"
  awk '/^finished in/ {gsub(",", "", $4); print int($4)}' <<<"$out"
}
# with_wrk NAME: requests/s over HTTP/1.1 by wrk (32 connections, one
# thread, WRK_SECONDS), after checking that every answer was right.
with_wrk() {
  local name=$1 out seen wrong
  out=$(BODY="$WORK/$name.json" timeout $((WRK_SECONDS + 30)) taskset -c 1 wrk -t 1 -c 32 -d "${WRK_SECONDS}s" \
    -s benches/authzen/check.lua "http://127.0.0.1:${PORT[$name]}/access/v1/evaluation")
  read -r seen wrong < <(awk '/^checked/ {print $2, $4}' <<<"$out")
  if [ -z "$seen" ] || [ "$seen" -eq 0 ] || [ "$wrong" != 0 ] || grep -q -E 'Socket errors|Non-2xx' <<<"$out"; then
    echo "$name: wrk saw wrong answers or errors" >&2; echo "$out" >&2; exit 1
  fi
  awk '/^Requests\/sec:/ {print int($2)}' <<<"$out"
}
# check NAME OUTPUT COUNT: every request succeeded, and each answer was 17 bytes.
check() {
  local ok data
  ok=$(awk '/^requests:/ {print $8}' <<<"$2")
  data=$(awk '/^traffic:/ {for (i=1;i<=NF;i++) if ($i == "data") {gsub(/[()]/, "", $(i-1)); print $(i-1)}}' <<<"$2")
  [ "$ok" = "$3" ] || { echo "$1: $ok of $3 requests succeeded" >&2; echo "$2" >&2; exit 1; }
  [ "$data" = "$((17 * $3))" ] || { echo "$1: $data body bytes for $3 answers of 17 bytes" >&2; exit 1; }
}
# open NAME: p50 and p99 in µs at 4 x RATE requests/s for 10 s.
open_loop() {
  local name=$1 out log=$WORK/open-$1.log count
  rm -f "$log"
  out=$(timeout 60 taskset -c 1 h2load -c 4 -m 1 -t 1 --rps "$RATE" -D 10 --log-file="$log" \
    -H 'content-type: application/json' -d "$WORK/$name.json" "http://127.0.0.1:${PORT[$name]}/access/v1/evaluation")
  count=$(awk '/^requests:/ {print $8}' <<<"$out")
  check "$name" "$out" "$count"
  awk '{print $3}' "$log" | sort -n | awk '{a[NR]=$1} END {printf "%d %d %d\n", a[int(NR*0.5)], a[int(NR*0.99)], NR}'
}

declare -A R
for run in $(seq 1 "$RUNS"); do
  for proto in h2 h1; do
    for name in iamd empty cerbos; do
      R[$proto,$name]+="$(closed $name $proto) "
    done
  done
  for name in iamd empty cerbos; do
    R[wrk,$name]+="$(with_wrk $name) "
  done
  for name in iamd empty; do
    R[open,$name]+="$(open_loop $name | tr ' ' ',') "
  done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| generator | iamd requests/s | empty handler | Cerbos | iamd / empty | iamd / Cerbos |"
echo "|---|---|---|---|---|---|"
for proto in h2 h1 wrk; do
  i=$(median "${R[$proto,iamd]}"); e=$(median "${R[$proto,empty]}"); c=$(median "${R[$proto,cerbos]}")
  case $proto in
    h2) label="h2load, HTTP/2, 2 connections x 16 streams" ;;
    h1) label="h2load --h1, HTTP/1.1, 32 connections" ;;
    wrk) label="wrk, HTTP/1.1, 32 connections, every answer compared" ;;
  esac
  printf '| %s | %s (%s) | %s (%s) | %s (%s) | %.0f%% | %.1fx |\n' "$label" "$i" "${R[$proto,iamd]% }" "$e" "${R[$proto,empty]% }" "$c" "${R[$proto,cerbos]% }" \
    "$(echo "$i*100/$e" | bc -l)" "$(echo "$i/$c" | bc -l)"
done
echo
echo "Open loop, $((4 * RATE)) requests/s for 10 s (p50,p99 µs,requests per run):"
echo "- iamd: ${R[open,iamd]}"
echo "- empty handler: ${R[open,empty]}"

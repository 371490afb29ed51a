#!/usr/bin/env bash
# The reload of a 10,000-user bundle under full load (docs/benchmarks.md): a
# steady closed-loop run of 20 s, then a 20 s run during which `users.yaml`
# changes once (at 4 s). Prints each run's per-second p99 and three ratios:
# the p99 of the whole run with the reload (which runs for most of it) over
# the steady run's; the worst second from the reload on over the steady
# run's worst second; and, strictest, over the steady run's median second;
# with the daemon on a core of its own (`pinned`: daemon on CPU 0, the
# generator on CPU 1) and sharing both cores with the generator (`shared`).
# Every answer is checked against the expectation `iamd simulate` gives.
#
#   benches/reload/run.sh [RUNS] [pinned|shared|both]
#
# Needs: the Rust toolchain, python3, taskset (util-linux). Loopback only;
# every load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-2}
LAYOUT=${2:-both}
WORK=target/reload
PORT=50177
ADMIN=50178
mkdir -p "$WORK"

cargo build --release --quiet --bin iamd
IAMD=target/release/iamd
if [ ! -f "$WORK/big/users.yaml" ]; then
  cargo bench --quiet --bench bundle -- --write "$WORK/big" 10000
fi

# 120 requests over random users: a user's own document (allowed), another
# user's (implicitly denied), a delete without MFA (explicitly denied); the
# expected decisions come from the offline simulator, not from the daemon.
if [ ! -f "$WORK/mix.jsonl" ]; then
  python3 - "$WORK" "$IAMD" <<'PY'
import json, random, subprocess, sys
work, iamd = sys.argv[1], sys.argv[2]
random.seed(7)
doc = "arn:acme:docs:eu-1:123456789012:doc/{}/x"
reqs = []
for _ in range(40):
    u = random.randrange(10000)
    reqs.append({"principal": f"user/user{u}", "action": "docs:GetDocument", "resource": doc.format(f"user{u}")})
    reqs.append({"principal": f"user/user{u}", "action": "docs:GetDocument", "resource": doc.format(f"user{(u + 1) % 10000}")})
    reqs.append({"principal": f"user/user{u}", "action": "docs:DeleteDocument", "resource": doc.format(f"user{u}")})
cases = "".join(json.dumps({"request": r}) + "\n" for r in reqs)
out = subprocess.run([iamd, "simulate", "--bundle", f"{work}/big", "--batch"], input=cases,
                     capture_output=True, text=True, check=True).stdout.splitlines()
names = {"Allowed": "ALLOW", "ImplicitlyDenied": "IMPLICIT_DENY", "ExplicitlyDenied": "EXPLICIT_DENY"}
lines = []
for r, line in zip(reqs, out, strict=True):
    r["expect"] = names[json.loads(line)["decision"]]
    lines.append(json.dumps(r) + "\n")
with open(f"{work}/mix.jsonl.new", "w") as f:
    f.writelines(lines)
PY
  mv "$WORK/mix.jsonl.new" "$WORK/mix.jsonl"
  python3 - "$WORK" <<'PY'
import collections, json, sys
kinds = collections.Counter(json.loads(l)["expect"] for l in open(f"{sys.argv[1]}/mix.jsonl"))
assert sum(kinds.values()) == 120 and len(kinds) == 3, kinds
print(f"mix: {dict(kinds)}", file=sys.stderr)
PY
fi

PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT

one() { # LAYOUT
  local server=() client=()
  if [ "$1" = pinned ]; then server=(taskset -c 0); client=(taskset -c 1); fi
  "${server[@]}" "$IAMD" serve --bundle "$WORK/big" --listen "127.0.0.1:$PORT" \
    --admin-listen "127.0.0.1:$ADMIN" --log-level info 2> "$WORK/serve.log" &
  PID=$!
  for _ in $(seq 120); do "$IAMD" health --addr "127.0.0.1:$PORT" >/dev/null 2>&1 && break; sleep 0.5; done
  local bench=("${client[@]}" "$IAMD" bench --addr "127.0.0.1:$PORT" --mix "$WORK/mix.jsonl" --duration 20 --quiet --json)
  "${bench[@]}" > "$WORK/steady.json"
  "${bench[@]}" > "$WORK/reload.json" &
  local b=$!
  sleep 4
  echo "# changed $(date +%s%N)" >> "$WORK/big/users.yaml"
  wait "$b" || true
  sleep 0.5
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  local loaded
  loaded=$(grep -a "bundle loaded" "$WORK/serve.log" | tail -1 | grep -o "trigger=[A-Za-z]*.*compile_ms=[0-9]* paused_ms=[0-9]*" | sed 's/revision=[^ ]* //' || true)
  python3 - "$1" "$WORK" "$loaded" <<'PY'
import json, statistics, sys
layout, work, loaded = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(f"{work}/steady.json")); r = json.load(open(f"{work}/reload.json"))
base = statistics.median(s["timelineP99Us"])
after = r["timelineP99Us"][3:]
before = statistics.median(r["timeline"][:3])
whole = (r["latencyUs"]["p99"], s["latencyUs"]["p99"])
worst = (max(after), max(s["timelineP99Us"]))
print(f"| {layout} | {whole[0] / whole[1]:.2f}x ({whole[0]:.0f} / {whole[1]:.0f} µs) "
      f"| {worst[0] / worst[1]:.2f}x ({worst[0]} / {worst[1]} µs) "
      f"| {max(after) / base:.2f}x ({max(after)} / {base:.0f} µs) "
      f"| {min(r['timeline'][3:]) / before:.2f} | {s['wrong'] + r['wrong']} | {dict(s['errors'], **r['errors'])} | {loaded} |")
print(f"|   | steady p99/s {s['timelineP99Us']} | reload p99/s {r['timelineP99Us']} | | | | | |")
PY
}

echo "| layout | p99 with the reload / steady | worst second: reload / steady | worst reload second / median steady second | lowest answers per second / before | wrong | errors | the reload (log) |"
echo "|---|---|---|---|---|---|---|---|"
for _ in $(seq "$RUNS"); do
  case "$LAYOUT" in
    pinned|shared) one "$LAYOUT" ;;
    *) one pinned; one shared ;;
  esac
done

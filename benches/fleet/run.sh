#!/usr/bin/env bash
# A fleet polling one server: N daemons (default 50) on loopback, each
# pulling the same bundle archive from one nginx with polls drawn between
# MIN and MAX seconds. Measures the requests per second nginx sees (from
# its own access log, by the second) and how long after a new bundle is
# published every daemon serves it.
#
#   benches/fleet/run.sh [N] [MIN] [MAX]
#
# Needs: the Rust toolchain, python3, curl, and nginx (on PATH, or fetched
# from Debian with apt-get download into target/fleet). Loopback only;
# bounded: at most 60 s to start, 4 * MAX of steady state, and MAX * 2 +
# 30 s after the new bundle.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-50}; MIN=${2:-5}; MAX=${3:-10}
root=$PWD/target/fleet
mkdir -p "$root"
cargo build --release --quiet --bin iamd
iamd=$PWD/target/release/iamd
nginx=$(command -v nginx || true)
if [ -z "$nginx" ]; then
  if [ ! -x "$root/deb/usr/sbin/nginx" ]; then
    (cd "$root" && timeout 300 apt-get download -qq nginx && dpkg -x nginx_*.deb deb && rm -f nginx_*.deb)
  fi
  nginx=$root/deb/usr/sbin/nginx
fi
run=$(mktemp -d "$root/run.XXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$run/www" "$run/tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$run/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1;
pid $run/nginx.pid; error_log $run/error.log;
events { worker_connections 4096; }
http {
  log_format t '\$msec \$status';
  access_log $run/access.log t;
  client_body_temp_path $run/tmp/b; proxy_temp_path $run/tmp/p; fastcgi_temp_path $run/tmp/f; uwsgi_temp_path $run/tmp/u; scgi_temp_path $run/tmp/s;
  server { listen 127.0.0.1:$port; root $run/www; }
}
CONF
"$nginx" -p "$run" -e "$run/error.log" -c "$run/nginx.conf" & pids+=($!)
# Two revisions of the example bundle.
for r in fleet-1 fleet-2; do
  cp -r examples/bundle "$run/$r"
  sed -i "s/^revision: .*/revision: $r/" "$run/$r/bundle.yaml"
  "$iamd" bundle build "$run/$r" -o "$run/$r.tar.gz" >/dev/null
done
cp "$run/fleet-1.tar.gz" "$run/www/b.tar.gz"
cat > "$run/iamd.yaml" <<CONF
bundle:
  source: http://127.0.0.1:$port/b.tar.gz
  pollMinSeconds: $MIN
  pollMaxSeconds: $MAX
log: {level: warn}
CONF
base=$((20000 + RANDOM % 20000))
for i in $(seq 0 $((N - 1))); do
  "$iamd" serve --config "$run/iamd.yaml" --listen "127.0.0.1:$((base + 2 * i))" \
    --admin-listen "127.0.0.1:$((base + 2 * i + 1))" 2>>"$run/iamd.log" & pids+=($!)
done
python3 - "$run" "$N" "$MIN" "$MAX" "$base" <<'PY'
import json, os, shutil, statistics, sys, time, urllib.request
run, n, lo, hi, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def label(i):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{base + 2 * i + 1}/status", timeout=2) as r:
            s = json.load(r)
        return (s.get("live") or {}).get("revision", "").split(" ")[0]
    except OSError:
        return None
deadline = time.time() + 60
while any(label(i) != "fleet-1" for i in range(n)):
    if time.time() > deadline:
        sys.exit("not every daemon served fleet-1 within 60 s")
    time.sleep(0.2)
# Steady state, after the first polls (which all follow one start): the
# requests nginx sees over 3 * MAX seconds.
time.sleep(hi)
log = os.path.join(run, "access.log")
def lines(since):
    out = []
    for l in open(log):
        t, status = l.split()
        if float(t) >= since:
            out.append((float(t), status))
    return out
start = time.time()
time.sleep(3 * hi)
steady = lines(start)
per_second = {}
for t, _ in steady:
    per_second[int(t)] = per_second.get(int(t), 0) + 1
window = 3 * hi
print(f"{n} daemons, polls every {lo}-{hi} s (uniform), one nginx on loopback")
print(f"steady state: {len(steady)} requests in {window} s = {len(steady) / window:.1f}/s "
      f"(expected {n / ((lo + hi) / 2):.1f}/s); busiest second {max(per_second.values(), default=0)}, "
      f"statuses {sorted(set(s for _, s in steady))}")
# A new bundle: written beside and renamed over the old one.
shutil.copy(os.path.join(run, "fleet-2.tar.gz"), os.path.join(run, "www", ".b.tmp"))
t0 = time.time()
os.rename(os.path.join(run, "www", ".b.tmp"), os.path.join(run, "www", "b.tar.gz"))
done = {}
stop = t0 + 2 * hi + 30
while len(done) < n and time.time() < stop:
    for i in range(n):
        if i not in done and label(i) == "fleet-2":
            done[i] = time.time() - t0
    time.sleep(0.05)
after = lines(t0)
seconds = {}
for t, _ in after:
    seconds[int(t - t0)] = seconds.get(int(t - t0), 0) + 1
times = sorted(done.values())
print(f"new bundle: {len(done)}/{n} daemons served it; median {statistics.median(times):.1f} s, "
      f"max {times[-1]:.1f} s (bound: MAX + one poll = {hi + hi} s)")
print(f"after the change: {len(after)} requests, by second {[seconds.get(s, 0) for s in range(int(max(times)) + 2)]}")
print(f"200s (downloads): {sum(1 for _, s in after if s == '200')}, 304s: {sum(1 for _, s in after if s == '304')}")
if len(done) < n or times[-1] > 2 * hi + 1:
    sys.exit(1)
PY

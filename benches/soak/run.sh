#!/usr/bin/env bash
# The reload soak (tests/it/soak.rs) for ten minutes on the release build:
# the daemon on loopback answers four callers while its bundle is swapped
# ConfigMap-style every 20-200 ms among good, broken, widened, huge and
# special-file versions, with SIGHUP storms. It prints one line: swaps,
# answers, failed and wrong answers, revisions served, RSS and descriptors;
# it fails on any wrong or failed answer.
#
#   benches/soak/run.sh            # 600 s
#   benches/soak/run.sh 60         # a shorter run
#   IAMD_SOAK_BINARY=/path/to/iamd benches/soak/run.sh 60   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-600}"
IAMD_SOAK_SECONDS="$seconds" timeout $((seconds + 900)) \
  cargo test --release --locked --test it soak:: -- --nocapture 2>&1 \
  | grep -E '^soak:|test result|panicked|wrong answers' 

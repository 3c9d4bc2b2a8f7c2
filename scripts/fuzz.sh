#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_targets) for a bounded time: event decoding and
# upcasting, id parsing, payload validation, snapshot decoding. Fails on the first crash and
# leaves the input in fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh            # 30 s per target
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh payload
#
# cargo fuzz needs unstable compiler flags (sanitizer coverage); the machines have only the
# stable toolchain, so RUSTC_BOOTSTRAP=1 enables them for this build alone.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"
[ "$seconds" -gt 0 ] || { echo "FUZZ_SECONDS must be at least 1" >&2; exit 2; }
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is not installed; installing it from crates.io (about a minute)"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(decode_event ids payload snapshot)
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  if ! cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs="$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -n1 || true)"
  echo "fuzz $target: ${runs:-no summary} in ${seconds} s, no crash"
  rm -f "$log"
done

#!/usr/bin/env bash
# Mutation testing with cargo-mutants: does the suite fail when the code is subtly broken?
#
#   bash scripts/mutants.sh            # CI: only mutants on lines changed since MUTANTS_BASE
#                                      # (default HEAD~1) in es-memory and es-core's store/
#                                      # and snapshot/ modules (measured), bounded time: at most
#                                      # MUTANTS_MAX (35) of them, an even share of a larger set
#   bash scripts/mutants.sh full       # every mutant of es-core and es-memory (hours on 2 cores)
#   bash scripts/mutants.sh memory     # every mutant of es-memory (about half an hour)
#   bash scripts/mutants.sh repository # es-core's repository/ against the `tests` crate (about
#                                      # 50 minutes; PostgreSQL: DATABASE_URL)
#   bash scripts/mutants.sh projection # es-core's projection/ against the `tests` crate (hours)
#
# Each package's mutants are tested with that package's own tests (es-memory's include the
# conformance and capability suites): fast, no database. es-core's repository/ and projection/
# are tested by the `tests` crate: modes `repository` and `projection` (`--test-package tests`).
# Results land in mutants.out/ (missed.txt lists survivors; the ones
# known to be equivalent are excluded in .cargo/mutants.toml with the reason, see docs/testing.md).
# Exit status: 0 when every viable mutant was caught (by a failing test or by a timeout: a mutant
# that makes a loop endless is caught too), non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-diff}"
if ! command -v cargo-mutants >/dev/null; then
  echo "cargo-mutants is not installed; installing it from crates.io (about a minute)"
  cargo install --locked cargo-mutants
fi
common=(-j 1 --timeout 120)
# cargo-mutants exits 3 when the only uncaught mutants timed out: those are caught too.
mutants() {
  local status=0
  cargo mutants "$@" || status=$?
  if [ "$status" -eq 0 ] || [ "$status" -eq 3 ]; then return 0; fi
  echo "mutants: some mutants survived (mutants.out/missed.txt); add a test or, if harmless, exclude it in .cargo/mutants.toml with the reason in docs/testing.md" >&2
  return "$status"
}
case "$mode" in
  full) mutants -p es-core -p es-memory "${common[@]}" ;;
  memory) mutants -p es-memory "${common[@]}" ;;
  repository|projection)
    # Tested by the `tests` crate (both backends): cargo-mutants 27.1.0 tests its baseline with
    # the mutated package only, which has none of these targets, so the baseline is skipped (CI
    # runs the suites on the unmutated tree). Debug info off: each rebuild links less.
    # The transactional runner's tests are es-postgres's (`transactional`, `deferred_writes`).
    if [ "$mode" = repository ]; then
      targets=(repository fault hostile_input spans derive_domain)
      packages=(--test-package tests)
    else
      targets=(projection_runner projection_lag fault derive_domain spans transactional deferred_writes)
      packages=(--test-package tests --test-package es-postgres)
    fi
    args=()
    for target in "${targets[@]}"; do args+=("--cargo-test-arg=--test=$target"); done
    CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0 mutants -p es-core \
      -f "es-core/src/$mode/**" "${packages[@]}" --baseline skip -j 1 --timeout 240 \
      --build-timeout 1500 "${args[@]}"
    ;;
  diff)
    base="${MUTANTS_BASE:-HEAD~1}"
    diff_file="$(mktemp)"
    # Where a package's own tests are the ones that test the code (es-core's repository and
    # projection modules are tested from the `tests` crate, which cargo-mutants does not run here).
    if ! git diff "$base" -- es-memory/src es-core/src/store es-core/src/snapshot > "$diff_file" 2>/dev/null; then
      echo "mutants: cannot diff against $base (a shallow clone?); nothing mutated"
      exit 0
    fi
    if [ ! -s "$diff_file" ]; then
      echo "mutants: no change to es-memory or es-core's store/ and snapshot/ since $base; nothing to mutate"
      exit 0
    fi
    # A large change has more mutants than the time budget tests (about 30 s each here): test an
    # evenly spread share of them (cargo-mutants' shards take every k-th mutant), say so, and
    # leave the rest to `scripts/mutants.sh memory` / `full`.
    max="${MUTANTS_MAX:-35}"
    count="$(cargo mutants -p es-core -p es-memory --in-diff "$diff_file" --list 2>/dev/null | wc -l)"
    shard=()
    if [ "$count" -gt "$max" ]; then
      k=$(( (count + max - 1) / max ))
      echo "mutants: $count mutants in the change, more than the $max this run's budget tests; testing shard 0/$k (every ${k}th)"
      shard=(--shard "0/$k")
    fi
    export -f mutants
    timeout "${MUTANTS_SECONDS:-1500}" bash -c 'mutants "$@"' _ -p es-core -p es-memory --in-diff "$diff_file" "${shard[@]}" "${common[@]}"
    ;;
  *) echo "usage: scripts/mutants.sh [diff|memory|full|repository|projection]" >&2; exit 2 ;;
esac

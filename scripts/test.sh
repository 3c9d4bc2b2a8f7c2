#!/usr/bin/env bash
# The project's whole check, from a fresh clone on a fresh machine: reach (or start) PostgreSQL,
# then formatting, lints, and every test of the workspace (doc-tests and the conformance suites
# included). Fails loudly on the first problem; never skips a backend.
#
#   bash scripts/test.sh
#
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed; install Rust with rustup (toolchain in rust-toolchain.toml)"

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_hostport="${DATABASE_URL#*@}"; pg_hostport="${pg_hostport%%/*}"
pg_host="${pg_hostport%%:*}"; pg_port="${pg_hostport##*:}"
[ "$pg_port" = "$pg_hostport" ] && pg_port=5432

pg_up() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$pg_host" -p "$pg_port"
  else
    (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null
  fi
}

step "PostgreSQL at $pg_host:$pg_port"
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for version in /etc/postgresql/*; do
      echo "starting PostgreSQL cluster $(basename "$version")/main"
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || die "PostgreSQL is not reachable at $pg_host:$pg_port and could not be started; set DATABASE_URL to a reachable server"
fi
echo "PostgreSQL is up; DATABASE_URL=$DATABASE_URL"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo test (workspace, all features, doc-tests included)"
cargo test --workspace --all-features --no-fail-fast

step "the README's first command: cargo run -p examples --bin bank (and on PostgreSQL)"
cargo run -q -p examples --bin bank
cargo run -q -p examples --bin bank -- --postgres

step "all checks passed"

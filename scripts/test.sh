#!/usr/bin/env bash
# The project's whole check, from a fresh clone on a fresh machine: reach (or start) PostgreSQL,
# then formatting, lints, and every test of the workspace (doc-tests and the conformance suites
# included). Fails loudly on the first problem; never skips a backend.
#
#   bash scripts/test.sh
#
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), NATS_URL
# (default nats://127.0.0.1:4222: a NATS server with JetStream, started here when none answers).
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

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
nats_hostport="${NATS_URL#*://}"; nats_hostport="${nats_hostport%%/*}"
nats_host="${nats_hostport%%:*}"; nats_port="${nats_hostport##*:}"
[ "$nats_port" = "$nats_hostport" ] && nats_port=4222
nats_up() { (exec 3<>"/dev/tcp/$nats_host/$nats_port") 2>/dev/null; }

step "NATS with JetStream at $nats_host:$nats_port"
if ! nats_up; then
  if ! command -v nats-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "nats-server is not installed; installing Debian's nats-server package"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server >/dev/null \
        || die "could not install nats-server; install it (Debian: apt-get install nats-server) or set NATS_URL"
    else
      die "NATS is not reachable at $nats_host:$nats_port and nats-server is not installed; install it (Debian: apt-get install nats-server) or set NATS_URL"
    fi
  fi
  nats_dir="${TMPDIR:-/tmp}/es-nats-$nats_port"
  mkdir -p "$nats_dir"
  echo "starting nats-server -a $nats_host -p $nats_port -js -sd $nats_dir"
  nohup nats-server -a "$nats_host" -p "$nats_port" -js -sd "$nats_dir" >"$nats_dir/server.log" 2>&1 &
  for _ in $(seq 1 30); do nats_up && break; sleep 0.5; done
  nats_up || die "NATS did not start on $nats_host:$nats_port (see $nats_dir/server.log)"
fi
echo "NATS is up; NATS_URL=$NATS_URL"

step "Chromium and ChromeDriver for the console's browser tests"
if [ "${ES_BROWSER_TESTS:-on}" = "off" ]; then
  echo "ES_BROWSER_TESTS=off: the console's browser tests will say SKIPPED"
elif ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || ! [ -x "${CHROMEDRIVER:-/usr/bin/chromedriver}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium and chromium-driver packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
      || die "could not install chromium and chromium-driver; install them, set CHROMIUM and CHROMEDRIVER, or set ES_BROWSER_TESTS=off"
  else
    die "the console's browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver (or set CHROMIUM and CHROMEDRIVER, or ES_BROWSER_TESTS=off)"
  fi
fi
[ "${ES_BROWSER_TESTS:-on}" = "off" ] || "${CHROMEDRIVER:-/usr/bin/chromedriver}" --version

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "the facade's feature combinations build (es: memory, postgres, nats, console, testing)"
for features in "--no-default-features" "--no-default-features --features postgres" "--no-default-features --features nats" "--no-default-features --features console" "--features postgres,nats,console,testing"; do
  echo "cargo check -p es $features"
  # shellcheck disable=SC2086
  cargo check -q -p es $features
done

step "cargo doc (every crate, all features, warnings are errors)"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --all-features

step "cargo deny: licences, bans and sources of every dependency (deny.toml)"
if ! command -v cargo-deny >/dev/null; then
  echo "cargo-deny is not installed; installing it from crates.io (about 4 minutes on 2 cores)"
  cargo install --locked cargo-deny
fi
cargo deny check licenses bans sources
advisories="checked"
if cargo deny fetch >/dev/null 2>&1; then
  cargo deny check advisories
else
  advisories="NOT checked (the RustSec database on github.com is not reachable from here; run \`cargo deny check advisories\` where it is)"
  printf '\nNOTE: security advisories were %s\n' "$advisories"
fi

step "cargo test (workspace, all features, doc-tests included)"
cargo test --workspace --all-features --no-fail-fast

step "fuzzing: every target for ${FUZZ_SECONDS:-30} s (scripts/fuzz.sh)"
bash scripts/fuzz.sh

step "mutation testing of the last change to es-core and es-memory (scripts/mutants.sh)"
bash scripts/mutants.sh

step "the README's first command: cargo run -p examples --bin bank (serves on the in-memory store)"
cargo build -q -p examples --bins
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bank="$target_dir/debug/bank"
smoke_log="$(mktemp)"
# Port 0: the service takes a free port and prints it, so a busy 8080 (or anything else) cannot
# make this check pass against another process or fail for a reason of its own.
env -u DATABASE_URL "$bank" serve --listen 127.0.0.1:0 > "$smoke_log" 2>&1 &
bank_pid=$!
listen=""
for _ in $(seq 1 100); do
  listen="$(sed -n 's|^listening on http://||p' "$smoke_log")"
  [ -n "$listen" ] && break
  sleep 0.1
done
[ -n "$listen" ] || { cat "$smoke_log"; kill "$bank_pid" || true; die "the bank service did not start listening"; }
ready=""
for _ in $(seq 1 100); do
  if curl -fsS "http://$listen/health/ready" >/dev/null 2>&1; then ready=yes; break; fi
  sleep 0.1
done
[ -n "$ready" ] || { cat "$smoke_log"; kill "$bank_pid" || true; die "the bank service did not become ready on $listen"; }
curl -fsS -X POST -H 'content-type: application/json' -d '{"id":"smoke","owner":"Smoke Test"}' "http://$listen/accounts"; echo
curl -fsS "http://$listen/admin/projections"; echo
kill -TERM "$bank_pid"
wait "$bank_pid" || die "the bank service did not stop cleanly on SIGTERM"
grep -q "store: in memory" "$smoke_log" || die "the bank service did not start on the in-memory store"

step "the bank demo on both backends"
cargo run -q -p examples --bin bank -- --store memory demo --accounts 1000 --transfers 3000 --concurrency 16
cargo run -q -p examples --bin bank -- --store postgres demo --accounts 300 --transfers 600 --concurrency 16


step "all checks passed (security advisories: $advisories)"

#!/usr/bin/env bash
# Runs every test of weir: Rust unit and integration tests (SQLite, MariaDB, PostgreSQL and a
# real S3 server) and the kfp SDK compatibility suite (the real kfp.Client against weir on
# SQLite+folder, MariaDB+S3 and PostgreSQL+S3).
#
# Needs: cargo, python3 (3.9+), MariaDB on 127.0.0.1:3306 (root, no password) and PostgreSQL on
# 127.0.0.1:5432 (user root, trust) unless WEIR_TEST_MYSQL_URL / WEIR_TEST_POSTGRES_URL say
# otherwise. The S3 server (moto) is installed into .venv and started here on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Python environment for the SDK suite and the S3 test server; rebuilt when requirements change.
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/sdk/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing the Python test environment (.venv)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  echo "$want" > "$stamp"
fi

mkdir -p target
# A real S3-protocol server on a free loopback port, with the bucket the Rust tests use.
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
export WEIR_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
.venv/bin/python - <<PY
import time, urllib.request, boto3
endpoint = "$WEIR_TEST_S3_ENDPOINT"
for _ in range(150):
    try:
        urllib.request.urlopen(endpoint, timeout=1)
        break
    except Exception:
        time.sleep(0.2)
else:
    raise SystemExit("the S3 test server (moto) did not start; see target/moto.log")
boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="weir-test")
PY

echo "== Rust tests" >&2
cargo build --workspace --all-targets
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== kfp SDK compatibility suite" >&2
export WEIR_BIN="$root/target/debug/weir"
.venv/bin/python -m pytest tests/sdk -q

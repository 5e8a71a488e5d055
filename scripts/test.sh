#!/usr/bin/env bash
# Runs every test of weir: Rust unit and integration tests (SQLite, MariaDB, PostgreSQL, a real
# S3 server and Azurite) and the kfp SDK compatibility suite (the real kfp.Client against weir on
# SQLite+folder, MariaDB+S3 and PostgreSQL+S3).
#
# Needs: cargo, python3 (3.9+), npm, root (apt-get: etcd, Go, Debian's kubernetes sources for the
# control plane the deploy tests start), MariaDB on 127.0.0.1:3306 (root, no password) and
# PostgreSQL on 127.0.0.1:5432 (user root, trust) unless WEIR_TEST_MYSQL_URL /
# WEIR_TEST_POSTGRES_URL say otherwise. The S3 server (moto) is installed into .venv, the Azure
# Blob Storage server (Azurite) from npm into a cache folder outside the clone (WEIR_CACHE_DIR,
# default ~/.cache/weir-ci); both are started here on loopback.
#
#   bash scripts/test.sh              # everything
#   bash scripts/test.sh --venv-only  # only (re)build .venv (fuzz/run.sh needs it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-ci}

# Python environment for the SDK suite and the S3 test server; rebuilt when requirements change.
stamp=.venv/.requirements.sha256
want=$(sha256sum tests/sdk/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing the Python test environment (.venv)" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "--venv-only" ]; then exit 0; fi

# Azurite, once per version. 3.35.0 is the newest release that runs on the machine's Node.js 20
# (3.36 wants 21, 3.37 wants 22).
azurite_version=3.35.0
azurite_dir=$cache/azurite-$azurite_version
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
  echo "== installing Azurite $azurite_version into $azurite_dir" >&2
  mkdir -p "$cache"
  # Into a temporary folder first, so an interrupted install never looks finished.
  tmp=$(mktemp -d "$azurite_dir.XXXXXX")
  npm install --prefix "$tmp" --save-exact --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
  mv -T "$tmp" "$azurite_dir" 2>/dev/null || rm -rf "$tmp"   # another run may have won the race
fi

# The Kubernetes control plane the deploy tests run against, built from Debian's source package
# once per machine and cached beside Azurite (scripts/k8s/build.sh; ~5 minutes cold).
if [ -z "${WEIR_K8S_BIN:-}" ]; then
  echo "== Kubernetes control plane (scripts/k8s/build.sh, cached in $cache)" >&2
  WEIR_K8S_BIN=$(WEIR_CACHE_DIR=$cache bash scripts/k8s/build.sh)
  export WEIR_K8S_BIN
fi

# The Kubernetes end-to-end test's stand-in for SeaweedFS's S3 API on a volume: s3s-fs, an S3
# server on a folder, built once per version (~3 minutes cold).
s3s_version=0.13.0
s3s_dir=$cache/s3s-fs-$s3s_version
if [ ! -x "$s3s_dir/bin/s3s-fs" ]; then
  echo "== installing s3s-fs $s3s_version into $s3s_dir" >&2
  mkdir -p "$cache"
  tmp=$(mktemp -d "$s3s_dir.XXXXXX")
  cargo install --quiet --locked --features binary --version "$s3s_version" --root "$tmp" s3s-fs >&2
  mv -T "$tmp" "$s3s_dir" 2>/dev/null || rm -rf "$tmp"
fi
export WEIR_S3S_FS=$s3s_dir/bin/s3s-fs

mkdir -p target
# The object stores the Rust tests use, on free loopback ports: a real S3-protocol server (moto)
# with the bucket `weir-test`, and Azurite with the container `weir-test`.
started=$SECONDS
# Two ports that were free a moment ago (held together, so they differ).
read -r port az_port < <(.venv/bin/python -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
# In memory, without telemetry (Azurite reports usage to Microsoft unless told not to), and
# accepting any API version: object_store may be newer than the pinned Azurite.
"$azurite_dir/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$az_port" --inMemoryPersistence \
  --disableTelemetry --skipApiVersionCheck --silent > target/azurite.log 2>&1 &
azurite_pid=$!
trap 'kill "$moto_pid" "$azurite_pid" 2>/dev/null || true' EXIT
export WEIR_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
# az:// is configured as a deployment would configure it for Azurite: object_store reads every
# AZURE_* variable, and with the emulator flag uses Azurite's well-known account and key.
export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL="http://127.0.0.1:$az_port"
.venv/bin/python - <<PY
import base64, email.utils, hashlib, hmac, time, urllib.error, urllib.request
import boto3

def wait_for(name, url, log):
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"the {name} test server did not start; see {log}")

s3 = "$WEIR_TEST_S3_ENDPOINT"
wait_for("S3 (moto)", s3, "target/moto.log")
boto3.client("s3", endpoint_url=s3).create_bucket(Bucket="weir-test")

# Create Container, signed with Azurite's well-known account key (Shared Key authorization).
azurite = "$AZURITE_BLOB_STORAGE_URL"
wait_for("Azure (Azurite)", azurite, "target/azurite.log")
account = "devstoreaccount1"
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
path = f"/{account}/weir-test"
string_to_sign = ("PUT" + "\n" * 12 + "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
                  + f"/{account}{path}\nrestype:container")
signature = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(f"{azurite}{path}?restype=container", method="PUT", headers={
    **headers, "Content-Length": "0", "Authorization": f"SharedKey {account}:{signature}"})
urllib.request.urlopen(request, timeout=10)
PY
echo "== test object stores up in $((SECONDS - started)) s" >&2

# The reference folder beside the repository exists on developer machines only; the tests that
# read it are then reported as skipped, and this says why once, whatever the test runner shows.
shared=${WEIR_SHARED_DIR:-$root/../shared}
export WEIR_SHARED_DIR=$shared
if [ ! -d "$shared/fixtures/kfp" ]; then
  echo "== no shared fixtures at $shared/fixtures/kfp: the tests that read them are skipped" >&2
fi

echo "== Rust tests" >&2
cargo build --workspace --all-targets
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

# The release binary and the OCI image made from it (no registry, no daemon; tests/sdk/test_image.py
# runs it). The release build's target folder is cached outside the clone: its dependencies are
# built once per machine, then only weir's own crates are.
echo "== release binary and OCI image" >&2
started=$SECONDS
CARGO_TARGET_DIR=$cache/release-target cargo build --release --locked -p weir
bash scripts/image/build.sh "$cache/release-target/release/weir" target/image
export WEIR_IMAGE_DIR=$root/target/image
echo "== release binary and image in $((SECONDS - started)) s" >&2

echo "== kfp SDK compatibility suite" >&2
export WEIR_BIN="$root/target/debug/weir"
# -rs: a skipped test says why (the shared-fixture tests where ../shared is missing).
.venv/bin/python -m pytest tests/sdk -q -rs

#!/usr/bin/env bash
# Builds every fuzz target and runs each for a while (default 30 s); exits non-zero if any
# target finds a crash, a timeout or a leak. CI runs it (.ci/run); by hand:
#
#   bash fuzz/run.sh            # 30 s per target
#   bash fuzz/run.sh 300 cel    # 300 s, one target
#
# cargo-fuzz is installed once per version outside the clone (WEIR_CACHE_DIR, default
# ~/.cache/weir-ci), so a fresh machine works and a warm one starts at once; the targets build
# there too (fuzz-target/), so a new clone on a warm machine recompiles only weir's own crates
# (an instrumented release build of all dependencies takes over ten minutes on two cores). They
# build with libFuzzer on the stable toolchain of rust-toolchain.toml: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags (the address sanitizer) to it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_parser list_query cel placeholders)

cargo_fuzz_version=0.13.2
cache=${WEIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weir-ci}
fuzz_root=$cache/cargo-fuzz-$cargo_fuzz_version
if [ ! -x "$fuzz_root/bin/cargo-fuzz" ]; then
  echo "== installing cargo-fuzz $cargo_fuzz_version into $fuzz_root" >&2
  mkdir -p "$cache"
  # Into a temporary root first, so an interrupted install never looks finished.
  tmp=$(mktemp -d "$fuzz_root.XXXXXX")
  cargo install --locked --quiet --root "$tmp" cargo-fuzz --version "$cargo_fuzz_version"
  mv -T "$tmp" "$fuzz_root" 2>/dev/null || rm -rf "$tmp"   # another run may have won the race
fi
export PATH="$fuzz_root/bin:$PATH"
export RUSTC_BOOTSTRAP=1
target_dir=$cache/fuzz-target

# Seeds: the committed corpus plus one made now from the project's pipelines (and ../shared
# where it exists), which needs the Python environment of scripts/test.sh. libFuzzer adds what
# it finds to the first corpus folder, a scratch one, so the committed corpus stays as it is.
bash scripts/test.sh --venv-only
work=$root/fuzz/target/ci-corpus
rm -rf "$work"
.venv/bin/python fuzz/seed_corpus.py --out "$work"

echo "== building the fuzz targets" >&2
start=$SECONDS
(cd fuzz && cargo fuzz build --target-dir "$target_dir")
echo "== fuzz targets built in $((SECONDS - start)) s" >&2

failed=()
for target in "${targets[@]}"; do
  echo "== fuzzing $target for $seconds s" >&2
  mkdir -p "$work/$target"
  # -timeout: one input running this long is a hang, reported like a crash.
  if ! (cd fuzz && cargo fuzz run --target-dir "$target_dir" "$target" "$work/$target" "corpus/$target" -- \
          -max_total_time="$seconds" -timeout=10 -print_final_stats=1); then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed; the inputs are in fuzz/artifacts/<target>/ (replay one with" \
       "RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file> in fuzz/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds} s each without a crash" >&2

#!/usr/bin/env bash
# Rebuilds the bundled plugins into plugins/dist/<name>.wasm (WebAssembly components), and the
# test fixtures into plugins/fixtures/<name>.wasm.
# Needs the wasm32-wasip2 target: `rustup target add wasm32-wasip2`.
# Paths are remapped so the output does not depend on where the repository or cargo's
# registry lives: a rebuild on another machine gives the same bytes with the same toolchain.
set -euo pipefail
cd "$(dirname "$0")"
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$PWD=/plugins --remap-path-prefix=$CARGO_HOME_DIR=/cargo ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked --target wasm32-wasip2 --quiet
mkdir -p dist
for crate in number_format error_classifier templates priority_rules pacing auto_reply; do
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/$crate.wasm" "dist/$crate.wasm"
done
# Test fixtures (never loaded by the committed gateway.toml).
cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/hostile.wasm" fixtures/hostile.wasm
ls -l dist/*.wasm fixtures/*.wasm

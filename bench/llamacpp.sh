#!/bin/sh
# Build llama.cpp's CPU tools (llama-bench, llama-server, llama-completion,
# llama-cli, llama-quantize) for comparisons with melt, outside the
# repository under ${MELT_CACHE:-$HOME/.cache/melt}/llama.cpp.
# The source is the git bundle the npm package node-llama-cpp ships
# (llama/gitRelease.bundle), so no GitHub access is needed, only npm.
# Idempotent: with the tools built it only prints where they are.
# Usage: bench/llamacpp.sh            (env JOBS=N for make -jN, default 2)
# Prints lines LLAMA_BENCH=..., LLAMA_SERVER=..., LLAMA_COMPLETION=...,
# LLAMA_CLI=..., LLAMA_QUANTIZE=... on stdout.
set -eu

CACHE=${MELT_CACHE:-$HOME/.cache/melt}
ROOT=$CACHE/llama.cpp
SRC=$ROOT/src
BLD=$ROOT/build
BIN=$BLD/bin
JOBS=${JOBS:-2}
TOOLS="llama-bench llama-server llama-completion llama-cli llama-quantize"

print_paths() {
    for t in $TOOLS; do
        var=$(echo "$t" | tr 'a-z-' 'A-Z_')
        if [ -x "$BIN/$t" ]; then
            echo "$var=$BIN/$t"
        else
            echo "$var=" # this llama.cpp version has no such tool
        fi
    done
}

all_built() {
    # llama-completion is newer than some bundles; the others must exist.
    for t in llama-bench llama-server llama-cli llama-quantize; do
        [ -x "$BIN/$t" ] || return 1
    done
    [ -f "$ROOT/.built" ]
}

if all_built; then
    print_paths
    exit 0
fi

# build tools, installed like scripts/deps.sh does (only what is missing)
need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v g++ >/dev/null 2>&1 || need="$need g++"
command -v git >/dev/null 2>&1 || need="$need git"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    echo "llamacpp: installing$need" >&2
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            { echo "llamacpp: missing:$need (run as root or install them)" >&2; exit 1; }
        SUDO=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

mkdir -p "$ROOT"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/melt-llamacpp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT INT TERM
    echo "llamacpp: fetching node-llama-cpp (npm pack)" >&2
    (cd "$tmp" && npm pack node-llama-cpp --silent >/dev/null)
    tarball=$(ls "$tmp"/node-llama-cpp-*.tgz | head -n 1)
    tar -xzf "$tarball" -C "$tmp"
    bundle=$tmp/package/llama/gitRelease.bundle
    [ -f "$bundle" ] || { echo "llamacpp: $tarball: no llama/gitRelease.bundle" >&2; exit 1; }
    rm -rf "$SRC"
    git -c advice.detachedHead=false clone -q "$bundle" "$SRC"
    # record which release the bundle holds (llama-bench prints it too)
    git -C "$SRC" describe --tags --always >"$ROOT/version" 2>/dev/null || true
    rm -rf "$tmp"
    trap - EXIT INT TERM
fi

echo "llamacpp: building in $BLD (make -j$JOBS)" >&2
cmake -S "$SRC" -B "$BLD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >"$ROOT/cmake.log" 2>&1 ||
    { tail -n 30 "$ROOT/cmake.log" >&2; exit 1; }
targets=""
for t in $TOOLS; do
    # only the targets this version defines (llama-completion is recent)
    if grep -rqs "set(TARGET $t)" "$SRC/tools" "$SRC/examples"; then
        targets="$targets $t"
    fi
done
[ -n "$targets" ] || targets=$TOOLS
# shellcheck disable=SC2086
cmake --build "$BLD" --config Release -j "$JOBS" --target $targets >"$ROOT/build.log" 2>&1 ||
    { tail -n 30 "$ROOT/build.log" >&2; exit 1; }
touch "$ROOT/.built"
print_paths

# Shared set-up of the decode-overhead benchmarks (sourced, with
# BENCH_NAME set): arguments [BUILD_DIR] [RUNS] [N_GEN] [THREADS], the
# binaries, a scratch folder, the model (env MODEL, default a synthesized
# tiny q8_0), the prompt, and a median helper.
set -eu
BUILD=${1:-build}
RUNS=${2:-7}
NGEN=${3:-256}
THREADS=${4:-1}
cd "$(dirname "$0")/.."
MELT=$BUILD/melt
AGENT=$BUILD/melt-agent
[ -x "$MELT" ] && [ -x "$AGENT" ] || { echo "build first: make BUILD=$BUILD" >&2; exit 2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/melt-$BENCH_NAME.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
MODEL=${MODEL:-$TMP/tiny-q8_0.gguf}
[ -f "$MODEL" ] || "$MELT" model synth --preset tiny --type q8_0 --seed 1 -o "$MODEL" >/dev/null
PROMPT="Once upon a time, in a small village by the sea, there lived"
CTX=$((NGEN + 512))

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

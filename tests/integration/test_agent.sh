# melt-agent end to end: one synthetic cell on stories260K, its JSON lines
# checked with awk (counts, order of phases, monotonic times); SIGINT in the
# middle of decoding; a bad model path; usage errors.
. "$(dirname "$0")/lib.sh"
AGENT="$ROOT/$BUILD/melt-agent"
M="$FIX/stories260K/stories260K.gguf"

# Value of a numeric key in a JSON line ("key":123) or of a string key.
num() { sed -n "s/.*\"$1\":\(-\{0,1\}[0-9][0-9.e+-]*\).*/\1/p"; }

check "agent runs --synthetic 16,8" "$AGENT" -m "$M" --synthetic 16,8 -t 1
cp "$T/out" "$T/run.jsonl"
expect_eq "every line is one JSON object" "$(grep -cv '^{"ev":"[a-z_]*","t_ns":-\{0,1\}[0-9]*[,}].*}$' "$T/run.jsonl")" 0
expect_eq "8 token lines" "$(grep -c '"ev":"token"' "$T/run.jsonl")" 8
expect_eq "one first_token" "$(grep -c '"ev":"first_token"' "$T/run.jsonl")" 1
expect_eq "one request of 16 prompt tokens" "$(grep '"ev":"request"' "$T/run.jsonl" | num n_prompt)" 16
expect "end says 8 generated, limit" "$T/run.jsonl" '"ev":"end".*"n_gen":8,"reason":"limit"'
expect_eq "hello first" "$(head -1 "$T/run.jsonl" | grep -c '"ev":"hello".*"proto":1')" 1
expect_eq "bye ok last" "$(tail -1 "$T/run.jsonl" | grep -c '"ev":"bye".*"status":"ok"')" 1
expect_eq "token indexes 0..7 in order" \
    "$(grep '"ev":"token"' "$T/run.jsonl" | num i | tr '\n' ' ')" "0 1 2 3 4 5 6 7 "
expect_eq "phases in order" \
    "$(sed -n 's/.*"ev":"phase".*"name":"\([a-z]*\)","edge":"\([a-z]*\)".*/\1:\2/p' "$T/run.jsonl" | tr '\n' ' ')" \
    "load:begin load:end prefill:begin prefill:end decode:begin decode:end "
expect_eq "t_ns never decreases" \
    "$(num t_ns < "$T/run.jsonl" | awk 'NR > 1 && $1 < prev { bad++ } { prev = $1 } END { print bad + 0 }')" 0
expect_eq "first_token at token 0's time" \
    "$(grep '"ev":"first_token"' "$T/run.jsonl" | num t_ns)" "$(grep '"ev":"token".*"i":0,' "$T/run.jsonl" | num t_ns)"
expect "engine decode_tps figure" "$T/run.jsonl" '"ev":"engine".*"key":"decode_tps","value":[0-9]'
expect_eq "nothing on stderr" "$(wc -c < "$T/err")" 0

# repetitions and an idle phase
check "agent --reps 3 --idle-ms 30" "$AGENT" -m "$M" --synthetic 8,4 -t 1 --reps 3 --idle-ms 30
expect_eq "three requests" "$(grep -c '"ev":"request"' "$T/out")" 3
expect_eq "12 tokens over 3 requests" "$(grep -c '"ev":"token"' "$T/out")" 12
expect_eq "idle phase lasts >= 30 ms" "$(grep '"name":"idle"' "$T/out" | num t_ns | \
    awk 'NR == 1 { a = $1 } NR == 2 { print ($1 - a >= 30000000) }')" 1
expect "req 2 present" "$T/out" '"ev":"end","t_ns":[0-9]*,"req":2,"n_gen":4'

# warm-up requests: a phase, no request lines
check "agent --warmup 2" "$AGENT" -m "$M" --synthetic 8,4 -t 1 --warmup 2
expect_eq "warmup: one request only" "$(grep -c '"ev":"request"' "$T/out")" 1
expect_eq "warmup: 4 token lines" "$(grep -c '"ev":"token"' "$T/out")" 4
expect_eq "warmup: phase before the request" \
    "$(grep -n -E '"name":"warmup","edge":"end"|"ev":"request"' "$T/out" | cut -d: -f1 | awk 'NR == 1 { a = $1 } NR == 2 { print ($1 > a) }')" 1

# a text prompt
check "agent --prompt" "$AGENT" -m "$M" --prompt "Once upon a time" -n 5 --ignore-eos -t 1
expect_eq "5 tokens for -n 5" "$(grep -c '"ev":"token"' "$T/out")" 5

# plans from the host (melt/plan.h)
cat >"$T/prompts.plan" <<'PLAN'
melt-plan 1
kind prompts
prompt_tokens 0
gen_tokens 0
max_gen_tokens 6
max_context_tokens 0
ignore_eos 1
conversations 2
conversation 1
turn "Once upon a time"
conversation 1
turn "The cat \"sat\"\non the mat"
end
PLAN
check "agent --plan prompts" "$AGENT" -m "$M" --plan "$T/prompts.plan" -t 1
expect_eq "prompts plan: two requests" "$(grep -c '"ev":"request"' "$T/out")" 2
expect_eq "prompts plan: 12 tokens" "$(grep -c '"ev":"token"' "$T/out")" 12
expect "prompts plan: req 1 ends at the limit" "$T/out" '"ev":"end","t_ns":[0-9]*,"req":1,"n_gen":6,"reason":"limit"'
cat >"$T/conv.plan" <<'PLAN'
melt-plan 1
kind conversations
prompt_tokens 0
gen_tokens 0
max_gen_tokens 8
max_context_tokens 0
ignore_eos 1
conversations 1
conversation 2
turn "Hello there, who are you?"
turn "Tell me a story."
end
PLAN
check "agent --plan conversations --chat-template chatml" "$AGENT" -m "$M" --plan "$T/conv.plan" \
    --chat-template chatml -t 1
expect_eq "conversation: two requests" "$(grep -c '"ev":"request"' "$T/out")" 2
n0=$(grep '"ev":"request".*"req":0' "$T/out" | num n_prompt)
n1=$(grep '"ev":"request".*"req":1' "$T/out" | num n_prompt)
# without the cache turn 2 would decode turn 1, its answer and turn 2 again (117 here)
expect_eq "conversation: turn 2 decodes only the new tokens (cache kept)" "$([ "$n1" -lt $((n0 + 8 + 10)) ] && echo yes)" yes
check_exit "conversations without a template exit 1" 1 "$AGENT" -m "$M" --plan "$T/conv.plan" -t 1
expect "no template: error says so" "$T/out" '"ev":"error".*no chat template'
printf 'melt-plan 1\nkind synthetic\nprompt_tokens 8\n' >"$T/cut.plan"
check_exit "a truncated plan exits 1" 1 "$AGENT" -m "$M" --plan "$T/cut.plan"
expect "truncated plan: error line names the plan" "$T/out" '"ev":"error".*cut\.plan'
printf 'melt-plan 1\nkind synthetic\nprompt_tokens 8\ngen_tokens 3\nmax_gen_tokens 0\nmax_context_tokens 0\nignore_eos 1\nconversations 0\nend\n' \
    >"$T/synth.plan"
check "agent --plan synthetic from stdin" sh -c "\"\$0\" -m \"\$1\" --plan - -t 1 <\"\$2\"" "$AGENT" "$M" "$T/synth.plan"
expect_eq "synthetic plan: 3 tokens" "$(grep -c '"ev":"token"' "$T/out")" 3
expect "synthetic plan: 8 prompt tokens" "$T/out" '"ev":"request".*"n_prompt":8'

# probes on a fake device tree, sampled through the idle phase
check "agent --probe on a fake laptop" "$AGENT" -m "$M" --synthetic 8,4 -t 1 --idle-ms 200 \
    --probe thermal:50 --probe cpufreq:20 --probe nvml --probe-root "$DATA/devices/x86-laptop"
expect "probes: hello lists them" "$T/out" '"ev":"hello".*"probes":"thermal:50,cpufreq:20'
expect "probes: absent nvml noted in hello" "$T/out" '"ev":"hello".*"absent":"nvml"'
expect "probes: thermal samples in mC" "$T/out" '"ev":"sample".*"probe":"thermal".*"unit":"mC"'
expect "probes: cpufreq samples" "$T/out" '"ev":"sample".*"probe":"cpufreq"'
expect_eq "probes: hello still first" "$(head -1 "$T/out" | grep -c '"ev":"hello"')" 1
expect "probes: the sampling thread's CPU time" "$T/out" '"key":"probe_cpu_ns","value":[0-9]'
check_exit "unknown probe exits 1" 1 "$AGENT" -m "$M" --synthetic 8,4 --probe bogus
expect "unknown probe: error line" "$T/out" '"ev":"error".*bogus'

# SIGINT while decoding: the current token is finished, end caller, bye interrupted, exit 130
"$AGENT" -m "$M" --synthetic 16,200000 -c 200016 -t 1 >"$T/int.jsonl" 2>"$T/int.err" &
pid=$!
n=0
while [ "$n" -lt 200 ] && ! grep -q '"ev":"token"' "$T/int.jsonl" 2>/dev/null; do sleep 0.05; n=$((n + 1)); done
kill -INT "$pid"
wait "$pid"
rc=$?
expect_eq "SIGINT exits 130" "$rc" 130
expect "SIGINT: end with reason caller" "$T/int.jsonl" '"ev":"end".*"reason":"caller"'
expect_eq "SIGINT: bye interrupted last" "$(tail -1 "$T/int.jsonl" | grep -c '"status":"interrupted"')" 1
expect_eq "SIGINT: end's n_gen equals the token lines" \
    "$(grep '"ev":"end"' "$T/int.jsonl" | num n_gen)" "$(grep -c '"ev":"token"' "$T/int.jsonl")"

# SIGTERM during the idle phase
"$AGENT" -m "$M" --synthetic 4,2 -t 1 --idle-ms 20000 >"$T/term.jsonl" 2>/dev/null &
pid=$!
n=0
while [ "$n" -lt 200 ] && ! grep -q '"name":"idle"' "$T/term.jsonl" 2>/dev/null; do sleep 0.05; n=$((n + 1)); done
kill -TERM "$pid"
wait "$pid"
expect_eq "SIGTERM in idle exits 130" "$?" 130
expect_eq "SIGTERM: bye interrupted" "$(tail -1 "$T/term.jsonl" | grep -c '"status":"interrupted"')" 1
expect_eq "SIGTERM: no request started" "$(grep -c '"ev":"request"' "$T/term.jsonl")" 0

# errors: an error line, bye error, exit 1
check_exit "bad model path exits 1" 1 "$AGENT" -m "$T/missing.gguf" --synthetic 4,2
expect "bad model: error line names the file" "$T/out" '"ev":"error".*missing\.gguf'
expect_eq "bad model: bye error" "$(tail -1 "$T/out" | grep -c '"status":"error"')" 1
printf 'not a gguf file at all' > "$T/junk.gguf"
check_exit "junk model exits 1" 1 "$AGENT" -m "$T/junk.gguf" --synthetic 4,2
expect "junk model: error line" "$T/out" '"ev":"error"'
check_exit "context too small exits 1" 1 "$AGENT" -m "$M" --synthetic 16,8 -c 10
expect "context too small: says so" "$T/out" '"ev":"error".*needs a context of 24'

# usage
check_exit "no workload is a usage error" 2 "$AGENT" -m "$M"
expect "usage error says what is missing" "$T/err" 'give one workload'
check_exit "bad --synthetic" 2 "$AGENT" -m "$M" --synthetic 16
check_exit "unknown flag" 2 "$AGENT" -m "$M" --synthetic 4,2 --bogus
check "--help" "$AGENT" --help
expect "--help lists --synthetic" "$T/out" '--synthetic PP,TG'
expect "--help lists --listen" "$T/out" '--listen PORT'
expect "--help lists --echo" "$T/out" '--echo '
expect "--help lists --describe" "$T/out" '--describe \[--root DIR\]'
check "--version" "$AGENT" --version
expect "--version prints the protocol" "$T/out" '^melt-agent [0-9.]+ .*protocol 1'

# the agent needs no library beyond libc, libm (and the loader)
if command -v ldd >/dev/null 2>&1; then
    expect_eq "linked against libc/libm only" \
        "$(ldd "$AGENT" | grep -v -E 'linux-vdso|ld-linux|libc\.so|libm\.so|libasan|libubsan|libtsan|libstdc|libgcc_s|statically' | wc -l)" 0
fi
expect_eq "no jansson/yaml/sqlite symbols" \
    "$(nm -u "$AGENT" 2>/dev/null | grep -c -E 'json_|yaml_|sqlite3_')" 0

finish

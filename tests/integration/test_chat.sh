# melt chat: multi-turn chat from a pipe, history kept in the KV cache.
. "$ROOT/tests/integration/lib.sh"
S="$FIX/stories260K/stories260K.gguf"
CHAT="$MELT chat -m $S --chat-template chatml -n 16 --temp 0 -t 2"

# two turns, /reset, a third turn, /exit (the line after it is never read)
printf 'Hello there\nTell me a story\n/reset\nHi\n/exit\nnot read\n' | $CHAT --verbose >"$T/out" 2>"$T/err"
expect_eq "chat_two_turns_reset_exit0" "$?" "0"
expect_eq "chat_three_answers" "$(grep -c '^decoded ' "$T/err")" "3"
n1=$(grep '^decoded ' "$T/err" | sed -n '1s/^decoded \([0-9]*\) new tokens (\([0-9]*\) cached).*/\1 \2/p')
n2=$(grep '^decoded ' "$T/err" | sed -n '2s/^decoded \([0-9]*\) new tokens (\([0-9]*\) cached).*/\1 \2/p')
n3=$(grep '^decoded ' "$T/err" | sed -n '3s/^decoded \([0-9]*\) new tokens (\([0-9]*\) cached).*/\1 \2/p')
expect_eq "chat_first_turn_nothing_cached" "${n1#* }" "0"
# the second turn finds the whole first prompt (and the answer) in the cache
if [ "${n2#* }" -ge "${n1% *}" ] && [ "${n2% *}" -lt $(( ${n1% *} + ${n2% *} )) ]; then
    _report "chat_second_turn_reuses_cache" 1 ""
else
    _report "chat_second_turn_reuses_cache" 0 "turn 1: '$n1', turn 2: '$n2' (decoded cached)"
fi
expect_eq "chat_reset_clears_cache" "${n3#* }" "0"
expect "chat_reset_noted" "$T/err" '^\(conversation reset\)$'
expect "chat_template_named" "$T/err" 'template chatml'

# correctness of the reuse: the second answer equals a from-scratch
# generation over the whole rendered conversation (greedy)
printf 'Hello there\n' | $CHAT >"$T/a" 2>/dev/null
printf 'Hello there\nTell me a story\n' | $CHAT >"$T/b" 2>/dev/null
expect_eq "chat_first_answer_stable" "$(head -c "$(wc -c <"$T/a")" "$T/b" | cmp -s - "$T/a" && echo same)" "same"
tail -c +"$(( $(wc -c <"$T/a") + 1 ))" "$T/b" >"$T/b2"
r1=$(cat "$T/a"; printf x); r1=${r1%x}; r1=${r1%"
"}
NL='
'
prompt="<|im_start|>user${NL}Hello there<|im_end|>${NL}<|im_start|>assistant${NL}${r1}<|im_end|>${NL}<|im_start|>user${NL}Tell me a story<|im_end|>${NL}<|im_start|>assistant${NL}"
"$MELT" generate -m "$S" -p "$prompt" -n 16 --temp 0 -t 1 >"$T/g" 2>"$T/gerr"
expect_eq "chat_cached_turn_equals_fresh_decode" "x$(cat "$T/b2")" "x$(cat "$T/g")"

# EOF ends the chat like /exit; a system message is part of the prompt
printf 'Hi\n' | $CHAT --verbose --system "You tell short stories." >"$T/out" 2>"$T/err"
expect_eq "chat_eof_exit0" "$?" "0"
ns=$(grep '^decoded ' "$T/err" | sed -n '1s/^decoded \([0-9]*\) .*/\1/p')
if [ "${ns:-0}" -gt "${n3% *}" ]; then _report "chat_system_message_decoded" 1 ""
else _report "chat_system_message_decoded" 0 "with system: '$ns' tokens, without: '${n3% *}'"; fi

# a turn that does not fit the context is refused in one line; the chat goes on
printf 'Once upon a time there was a little girl who liked to play in the park every day\nHi\n' |
    $CHAT -c 60 --verbose >"$T/out" 2>"$T/err"
expect_eq "chat_overflow_keeps_going_exit0" "$?" "0"
expect "chat_overflow_msg" "$T/err" '^melt: context overflow: the conversation needs [0-9]+ tokens, the context holds 60'
expect_eq "chat_overflow_next_turn_answered" "$(grep -c '^decoded ' "$T/err")" "1"

# errors
printf 'Hi\n' | "$MELT" chat -m "$S" >"$T/out" 2>"$T/err"
expect_eq "chat_no_template_exit1" "$?" "1"
expect "chat_no_template_msg" "$T/err" 'no chat template .*--chat-template'
check_exit "chat_unknown_template" 2 "$MELT" chat -m "$S" --chat-template nope
expect "chat_unknown_template_lists" "$T/err" 'chatml'
check_exit "chat_missing_model" 2 "$MELT" chat
check_exit "chat_missing_file" 1 "$MELT" chat -m "$T/nope.gguf" --chat-template chatml
check "chat_help" "$MELT" chat --help
expect "chat_help_usage" "$T/out" '^usage: melt chat'

finish

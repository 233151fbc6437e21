# melt — build, test, run, fuzz, install.
#   make            build build/melt and build/libmelt.a
#   make test       install deps, build, run every test (last line: N passed, N failed)
#   make run        install deps, build, run the quickstart on this machine
#   make fuzz       fuzz every parser for FUZZ_SECONDS each (clang libFuzzer)
#   make bench      engine speed: melt bench on TinyLlama-shaped Q4_0/Q8_0/Q4_K_M, the
#                   roofline fraction, and llama-bench beside it when LLAMA_BENCH is set
#   make bench-all  every benchmark (engine, probe, store, thread pool, agent/runner overhead)
#   make install PREFIX=/usr/local
# Options: SANITIZE=address,undefined  WERROR=1  CC=clang  O=2

VERSION    := 0.1.0
CC         ?= cc
O          ?= 2
PREFIX     ?= /usr/local
WERROR     ?= 0
SANITIZE   ?=
FUZZ_SECONDS ?= 60

ifeq ($(SANITIZE),)
BUILD      ?= build
else
BUILD      ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

WARN   := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
          -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN   += -Werror
endif
CFLAGS  ?= -O$(O) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -Iinclude -Isrc -I$(BUILD)/gen
LDLIBS  := -lm -ljansson -lyaml -lsqlite3 -lmicrohttpd -pthread
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIB_SRC  := $(sort $(shell find src -name '*.c' -not -path 'src/cli/*'))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/replay_%)

.PHONY: all deps test run fuzz fuzz-deps install clean lint unit-bins
all: $(BUILD)/melt $(BUILD)/libmelt.a $(BUILD)/melt-agent

deps:
	@scripts/deps.sh build

# Version header is rewritten only when its content changes.
$(BUILD)/gen/melt_version.h: FORCE
	@mkdir -p $(@D)
	@printf '#define MELT_VERSION "%s"\n#define MELT_GIT_COMMIT "%s"\n' \
	    '$(VERSION)' '$(GIT_COMMIT)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/melt_version.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/src/cli/cmd_version.o: $(BUILD)/gen/melt_version.h

$(BUILD)/libmelt.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/melt: $(CLI_OBJ) $(BUILD)/libmelt.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmelt.a $(LDLIBS)

# The on-device agent: only the objects of libmelt.a it needs, and no
# library beyond libc, libm and pthreads (-ldl for probes that dlopen).
AGENT_SRC    := $(sort $(wildcard agent/*.c))
AGENT_OBJ    := $(AGENT_SRC:%.c=$(BUILD)/obj/%.o)
AGENT_LDLIBS := -lm -pthread -ldl
$(AGENT_OBJ): $(BUILD)/gen/melt_version.h
$(BUILD)/melt-agent: $(AGENT_OBJ) $(BUILD)/libmelt.a
	$(CC) $(LDFLAGS) -o $@ $(AGENT_OBJ) $(BUILD)/libmelt.a $(AGENT_LDLIBS)
# `make agent-static`: the same, linked -static for copying to a device.
.PHONY: agent-static
agent-static: $(BUILD)/melt-agent-static
$(BUILD)/melt-agent-static: $(AGENT_OBJ) $(BUILD)/libmelt.a
	$(CC) $(LDFLAGS) -static -o $@ $(AGENT_OBJ) $(BUILD)/libmelt.a $(AGENT_LDLIBS)

# ---- Static agents for devices (docs/devices.md) ---------------------------
# `make agent-aarch64`      $(BUILD)/aarch64/melt-agent, static, aarch64-linux-gnu-gcc
# `make agent-x86_64-static` $(BUILD)/x86_64/melt-agent, static, x86-64
# Each is a separate object tree ($(BUILD)/ARCH/obj) built from AGENT_LIB_SRC:
# the library folders the agent draws on (core, model, engine, probes,
# backends) plus the two runner files it shares with the host (event.c,
# plan.c); the host
# side (cli, store, report, runner, transport, eval) and model/info.c need
# jansson, libyaml or sqlite and are left out, so a cross build needs nothing
# but the target's libc. The archive lets the linker take only what the agent
# references. -DMELT_PROBE_NO_DLOPEN: no dlopen (NVML) in a static binary;
# -DMELT_HTTP_NO_GETADDRINFO: backends' URLs take IP addresses (glibc's
# resolver cannot be linked statically without a warning).
# `*-stripped` copies next to each are what you copy to a device.
AGENT_LIB_SRC := $(filter src/core/% src/model/% src/engine/% src/probes/% src/backends/% \
                   src/runner/event.c src/runner/plan.c, \
                   $(filter-out src/model/info.c, $(LIB_SRC)))
AARCH64_CC    ?= aarch64-linux-gnu-gcc
AARCH64_STRIP ?= aarch64-linux-gnu-strip
AARCH64_AR    ?= aarch64-linux-gnu-ar
X86_64_CC     ?= x86_64-linux-gnu-gcc
X86_64_STRIP  ?= strip
X86_64_AR     ?= ar
AGENT_X_CFLAGS := -O$(O) -g -std=c11 -D_GNU_SOURCE -pthread $(WARN) \
                  -DMELT_PROBE_NO_DLOPEN -DMELT_HTTP_NO_GETADDRINFO -Iinclude -Isrc -I$(BUILD)/gen

# agent_tree ARCH CC STRIP AR: objects, archive, static agent and stripped copy
# under $(BUILD)/ARCH.
define agent_tree
$(BUILD)/$(1)/obj/%.o: %.c | $(BUILD)/gen/melt_version.h
	@mkdir -p $$(@D)
	$(2) $$(AGENT_X_CFLAGS) -MMD -MP -c $$< -o $$@
$(BUILD)/$(1)/libmelt-agent.a: $$(AGENT_LIB_SRC:%.c=$(BUILD)/$(1)/obj/%.o)
	@rm -f $$@
	$(4) rcs $$@ $$^
$(BUILD)/$(1)/melt-agent: $$(AGENT_SRC:%.c=$(BUILD)/$(1)/obj/%.o) $(BUILD)/$(1)/libmelt-agent.a
	$(2) -static -o $$@ $$^ $$(AGENT_LDLIBS)
$(BUILD)/$(1)/melt-agent-stripped: $(BUILD)/$(1)/melt-agent
	$(3) -o $$@ $$<
endef
$(eval $(call agent_tree,aarch64,$(AARCH64_CC),$(AARCH64_STRIP),$(AARCH64_AR)))
$(eval $(call agent_tree,x86_64,$(X86_64_CC),$(X86_64_STRIP),$(X86_64_AR)))

.PHONY: agent-aarch64 agent-x86_64-static
agent-aarch64: $(BUILD)/aarch64/melt-agent $(BUILD)/aarch64/melt-agent-stripped
	@ls -l $^
agent-x86_64-static: $(BUILD)/x86_64/melt-agent $(BUILD)/x86_64/melt-agent-stripped
	@ls -l $^
-include $(shell find $(BUILD)/aarch64/obj $(BUILD)/x86_64/obj -name '*.d' 2>/dev/null)
# ---- end of static agents ---------------------------------------------------

# ---- Kernel families across architectures (docs/engine.md, neon) ----------
# `make kernels-cross-aarch64`: tests/cross/test_kernels_cross.c linked
# static against the aarch64 agent library, run under qemu-aarch64-static
# by tests/integration/test_neon.sh; `make kernels-cross-native`: the same
# program for this machine (outside $(BUILD)/tests: it is not cmocka).
$(BUILD)/aarch64/tests/test_kernels_cross: tests/cross/test_kernels_cross.c $(BUILD)/aarch64/libmelt-agent.a
	@mkdir -p $(@D)
	$(AARCH64_CC) $(AGENT_X_CFLAGS) -static -o $@ $< $(BUILD)/aarch64/libmelt-agent.a $(AGENT_LDLIBS)
$(BUILD)/cross/test_kernels_cross: tests/cross/test_kernels_cross.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)
.PHONY: kernels-cross-aarch64 kernels-cross-native
kernels-cross-aarch64: $(BUILD)/aarch64/tests/test_kernels_cross
kernels-cross-native: $(BUILD)/cross/test_kernels_cross

$(BUILD)/tests/test_%: tests/unit/test_%.c tests/unit/testutil.h $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS) -lcmocka

# Fuzz targets built with a plain main() that replays the corpus (run in
# make test, so every corpus file stays a regression test).
$(BUILD)/tests/replay_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(BUILD)/libmelt.a $(LDLIBS)

# Programs the integration tests drive (tests/tools/NAME.c -> $(BUILD)/tests/NAME),
# e.g. serve_load, the 1000-connection load test of `melt serve`.
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)
$(TOOL_BIN): $(BUILD)/tests/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# Drivers linked with libmelt.a (tests/drivers/NAME.c -> $(BUILD)/tests/NAME),
# e.g. backend_client: one request through a backend's ops.
DRIVER_SRC := $(sort $(wildcard tests/drivers/*.c))
DRIVER_BIN := $(DRIVER_SRC:tests/drivers/%.c=$(BUILD)/tests/%)
$(DRIVER_BIN): $(BUILD)/tests/%: tests/drivers/%.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)

unit-bins: $(UNIT_BIN) $(REPLAY_BIN) $(TOOL_BIN) $(DRIVER_BIN)

test: deps
	@$(MAKE) --no-print-directory all unit-bins
	@MELT_SANITIZE='$(SANITIZE)' tests/run.sh $(BUILD)

# The quickstart: examples/quickstart.yaml on this machine (a synthesized
# tiny model, cached in $(BUILD)/run/.melt-models), database and report in
# $(BUILD)/run/; prints the summary table.
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p $(BUILD)/run
	$(BUILD)/melt run examples/quickstart.yaml --db $(BUILD)/run/melt.db

# libFuzzer builds: the library compiled once with coverage + ASan/UBSan into
# build/fuzz/libmelt.a, one binary per tests/fuzz/fuzz_NAME.c, each run for
# FUZZ_SECONDS on its corpus tests/fuzz/NAME/ (new inputs kept in
# build/fuzz/corpus-NAME, crashes written to build/fuzz/crash-*).
FUZZ_CC    ?= clang
FUZZ_DIR   := build/fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -Iinclude -Isrc -I$(BUILD)/gen \
               -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ   := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)

$(FUZZ_DIR)/obj/%.o: %.c | $(BUILD)/gen/melt_version.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/libmelt.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libmelt.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libmelt.a $(LDLIBS)

fuzz-deps:
	@scripts/deps.sh fuzz
fuzz: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@for b in $(FUZZ_BIN); do \
	    name=$${b##*/fuzz_}; mkdir -p $(FUZZ_DIR)/corpus-$$name; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $$b -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/ $(FUZZ_DIR)/corpus-$$name tests/fuzz/$$name \
	        > $(FUZZ_DIR)/$$name.log 2>&1; rc=$$?; \
	    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|SUMMARY' $(FUZZ_DIR)/$$name.log; \
	    [ $$rc -eq 0 ] || { echo "fuzz: $$name FAILED (log: $(FUZZ_DIR)/$$name.log)"; exit 1; }; \
	done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/melt \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/melt $(DESTDIR)$(PREFIX)/bin/melt
	install -m 644 include/melt/*.h $(DESTDIR)$(PREFIX)/include/melt/
	install -m 644 $(BUILD)/libmelt.a $(DESTDIR)$(PREFIX)/lib/libmelt.a
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' melt.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/melt.pc

# Every benchmark, each printing its figures and ratios measured in the same
# run (never asserted in tests: these machines are shared and noisy).
.PHONY: bench bench-all bench-engine bench-runner bench-agent
bench: bench-engine
bench-all: all bench-engine bench-probes bench-store bench-pool bench-runner bench-agent
# Engine speed and model load (bench/engine.sh, docs/bench.md): models made
# once under build/bench-models; env LLAMA_BENCH=path/llama-bench
# (bench/llamacpp.sh builds one) adds llama.cpp on the same files (and its
# llama-completion beside it the load times), BENCH_QUICK=1 a short run.
bench-engine: all
	bench/engine.sh $(BUILD)
bench-runner: all
	bench/runner_overhead.sh $(BUILD)
bench-agent: all
	bench/agent_overhead.sh $(BUILD)

# Probe overhead: every probe present here at 10 Hz for PROBE_BENCH_SECONDS;
# prints the sampling thread's CPU time as a fraction of one core (< 1%).
PROBE_BENCH_SECONDS ?= 10
.PHONY: bench-probes
bench-probes: $(BUILD)/bench/probe_overhead
	$(BUILD)/bench/probe_overhead $(PROBE_BENCH_SECONDS)
$(BUILD)/bench/probe_overhead: bench/probe_overhead.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)

# Store ingest: events/s into a fresh SQLite store in batches of
# STORE_BENCH_BATCH (the runner's way); target >= 200k events/s.
STORE_BENCH_EVENTS ?= 2000000
STORE_BENCH_BATCH ?= 1000
.PHONY: bench-store
bench-store: $(BUILD)/bench/store_ingest
	$(BUILD)/bench/store_ingest $(STORE_BENCH_EVENTS) $(STORE_BENCH_BATCH)
$(BUILD)/bench/store_ingest: bench/store_ingest.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)

# Thread-pool dispatch: ns per empty melt_pool_run for 1..POOL_BENCH_THREADS
# threads, the pool against the mutex + condvar one it replaced.
POOL_BENCH_DISPATCHES ?= 20000
POOL_BENCH_THREADS ?= 2
.PHONY: bench-pool
bench-pool: $(BUILD)/bench/threadpool_dispatch
	$(BUILD)/bench/threadpool_dispatch $(POOL_BENCH_DISPATCHES) $(POOL_BENCH_THREADS)
$(BUILD)/bench/threadpool_dispatch: bench/threadpool_dispatch.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)

# One matmul per x86 kernel family in thread CPU time (bench/matmul_speed.c):
# TinyLlama's FFN shape, one token and 64, per weight type.
.PHONY: bench-kernels
bench-kernels: $(BUILD)/bench/matmul_speed
	for t in q4_0 q8_0 q4_K q6_K; do for n in 1 64; do \
	    $(BUILD)/bench/matmul_speed $$t 2048 5632 $$n 3 || exit 1; done; done
$(BUILD)/bench/matmul_speed: bench/matmul_speed.c $(BUILD)/libmelt.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmelt.a $(LDLIBS)

# Functions that invite overflows; use snprintf, memcpy with sizes, strtol.
lint:
	@! grep -nE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|strtok)\s*\(' \
	    $$(find src include agent tests -name '*.[ch]') || \
	    { echo "lint: banned function used (see above)"; exit 1; }

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

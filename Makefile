# vigil build. `make` builds build/vigild and build/vigilctl; see README for the rest.
CC ?= cc
BUILD ?= build
PKGS := libavformat libavcodec libavutil sqlite3 inih jansson
GST_PKGS := gstreamer-1.0 gstreamer-rtsp-server-1.0

# CFLAGS is the user's knob (optimisation, sanitizers); the flags the code
# needs are kept apart so overriding CFLAGS on the command line keeps them.
CFLAGS ?= -O2 -g
VG_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
GST_CFLAGS := $(shell pkg-config --cflags $(GST_PKGS) 2>/dev/null)
GST_LIBS := $(shell pkg-config --libs $(GST_PKGS) 2>/dev/null)

MODULES := core capture archive index retention
LIB_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps check unit integration asan demo bench clean cppcheck

all: $(BUILD)/vigild $(BUILD)/vigilctl

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libvigil.a: $(LIB_OBJS)
	ar rcs $@ $^

$(BUILD)/vigild: $(BUILD)/cmd/vigild.o $(BUILD)/libvigil.a
	$(CC) $(CFLAGS) $(VG_CFLAGS) -o $@ $^ $(LDLIBS)

# vigilctl's command groups live in cmd/ctl_*.c beside its main.
CTL_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/ctl_*.c))

$(BUILD)/vigilctl: $(BUILD)/cmd/vigilctl.o $(CTL_OBJS) $(BUILD)/libvigil.a
	$(CC) $(CFLAGS) $(VG_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libvigil.a
	$(CC) $(CFLAGS) $(VG_CFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# The camera simulator is a test tool: it links GStreamer, the daemon does not.
# Benchmark programs (bench/bench_*.c) link the library like the tests do.
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libvigil.a
	$(CC) $(CFLAGS) $(VG_CFLAGS) -o $@ $^ $(LDLIBS)

# Built without sanitizers even under `make asan`: it is the camera, not the product.
$(BUILD)/camsim: tests/tools/camsim.c
	@mkdir -p $(dir $@)
	cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(GST_CFLAGS) -Wno-error=deprecated-declarations -o $@ $< $(GST_LIBS)

unit: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; CK_DEFAULT_TIMEOUT=60 $$t; done

integration: all $(BUILD)/camsim
	@python3 tests/integration.py --build $(BUILD)

check: deps
	@$(MAKE) --no-print-directory all $(BUILD)/camsim $(TEST_BINS)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory cppcheck

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan build-asan/camsim
	@$(MAKE) --no-print-directory BUILD=build-asan CC=gcc \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    unit integration

cppcheck:
	@if command -v cppcheck >/dev/null; then \
	    cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	        --inline-suppr --std=c11 -I. $(MODULES) cmd; \
	else echo "cppcheck not installed, skipped"; fi

# deps first, then a fresh make: pkg-config must see the installed packages.
demo: deps
	@$(MAKE) --no-print-directory all $(BUILD)/camsim
	@sh scripts/demo.sh $(BUILD)

BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

bench: deps
	@$(MAKE) --no-print-directory all $(BUILD)/camsim $(BENCH_BINS)
	@python3 bench/ingest.py --build $(BUILD)
	@for b in $(BENCH_BINS); do $$b --results bench/RESULTS.md || exit 1; done

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

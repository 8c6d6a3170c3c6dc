# vigil build. `make` builds build/vigild and build/vigilctl; see README for the rest.
CC ?= cc
BUILD ?= build
PKGS := libavformat libavcodec libavutil libswscale libzip sqlite3 inih jansson libmicrohttpd libsodium libsystemd nettle \
	gstreamer-1.0 gstreamer-app-1.0 gstreamer-rtsp-1.0 gstreamer-rtsp-server-1.0 gio-2.0 \
	gstreamer-webrtc-1.0 gstreamer-sdp-1.0
GST_PKGS := gstreamer-1.0 gstreamer-rtsp-server-1.0

# CFLAGS is the user's knob (optimisation, sanitizers); the flags the code
# needs are kept apart so overriding CFLAGS on the command line keeps them.
CFLAGS ?= -O2 -g
VG_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
GST_CFLAGS := $(shell pkg-config --cflags $(GST_PKGS) 2>/dev/null)
GST_LIBS := $(shell pkg-config --libs $(GST_PKGS) 2>/dev/null)

MODULES := core capture archive index retention playback web relay calls live
LIB_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps check unit integration ui-check asan demo bench clean cppcheck install uninstall \
	fuzz fuzz-run fuzz-smoke systemd-check crash-check

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
SHAREDIR := $(PREFIX)/share/vigil
DOCDIR := $(PREFIX)/share/doc/vigil
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
SYSCONFDIR ?= /etc
# The group that may read the installed config (vigild's).
CONF_GROUP ?= vigil

all: $(BUILD)/vigild $(BUILD)/vigilctl

# The UI's default directory ([server] ui_dir) is where `make install` puts it.
$(BUILD)/core/config.o: VG_CFLAGS += -DVG_UI_DIR='"$(SHAREDIR)/ui"'
# Export manifests name the version that made them.
$(BUILD)/playback/bundle.o: VG_CFLAGS += -DVG_VERSION='"$(shell git describe --always --dirty 2>/dev/null || echo unknown)"'

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VG_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libvigil.a: $(LIB_OBJS)
	ar rcs $@ $^

VIGILD_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/vigild_*.c))

$(BUILD)/vigild: $(BUILD)/cmd/vigild.o $(VIGILD_OBJS) $(BUILD)/libvigil.a
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
	cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(GST_CFLAGS) -Wno-error=deprecated-declarations -o $@ $< $(GST_LIBS) -lm

# The fault-injection shim (tests/tools/faultfs.c), LD_PRELOADed by the storage
# tests. Like camsim it is a tool, never built with sanitizers.
$(BUILD)/faultfs.so: tests/tools/faultfs.c
	@mkdir -p $(dir $@)
	cc -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl -pthread

# The crash harness's recorder (tests/crash/): preloaded into vigild and
# vigilctl, it logs every file operation under the data directory. Plain cc
# and no sanitizers: it is the test's disk, not the product.
$(BUILD)/crash-recorder.so: tests/crash/recorder.c
	@mkdir -p $(dir $@)
	cc -O2 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl -pthread

# A bounded crash-consistency run (200 states, about 4 minutes in its own
# lane of make check); the full run is part of `make bench`.
crash-check: all $(BUILD)/camsim $(BUILD)/crash-recorder.so
	@python3 tests/crash/harness.py --build $(BUILD) --states 200

unit: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; CK_DEFAULT_TIMEOUT=60 $$t; done

# The suites run in lanes (tests/run_suites.py: most of their time is spent
# waiting for the simulated cameras' wall clock), longest first so the lanes
# end together; the fault shim's own test runs alone first. VIGIL_TEST_JOBS=1
# runs them one by one.
SUITES := \
	"python3 tests/integration_ui.py --build {build}" \
	"python3 tests/crash/harness.py --build {build} --states 120" \
	"python3 tests/integration_storage.py --build {build}" \
	"python3 tests/integration.py --build {build}" \
	"python3 tests/integration_crash.py --build {build}" \
	"python3 tests/integration_relay.py --build {build}" \
	"python3 tests/integration_export.py --build {build}" \
	"python3 tests/integration_playback.py --build {build}" \
	"python3 tests/integration_audio.py --build {build}" \
	"python3 tests/integration_clip.py --build {build}" \
		"python3 tests/integration_retention_faults.py --build {build}" \
	"python3 tests/integration_relay_sec.py --build {build}" \
	"python3 tests/integration_audit.py --build {build}" \
	"python3 tests/integration_web.py --build {build}" \
	"python3 tests/integration_hostile.py --build {build}" \
	"python3 tests/integration_abuse.py --build {build}" \
	"python3 tests/integration_calls.py --build {build}" \
	"python3 tests/integration_qa.py --build {build}" \
	"python3 tests/integration_live.py --build {build}" \
	"python3 tests/integration_calls_dsp.py --build {build}" \
	"python3 tests/integration_live_wall.py --build {build}" \
	"python3 tests/integration_convert.py --build {build}"

integration: all $(BUILD)/camsim $(BUILD)/faultfs.so $(BUILD)/crash-recorder.so $(BUILD)/tests/announce_eval
	@sh scripts/vendor-ui.sh --check
	@python3 tests/run_suites.py --build $(BUILD) \
	    --first "python3 tests/test_faultfs.py --build {build}" $(EXTRA_SUITES) $(SUITES)

# make check's short fuzzing run, one more lane of the integration run.
fuzz-smoke:
	@if command -v clang >/dev/null; then $(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=10; \
	else echo "clang not installed, fuzzing skipped"; fi

# The browser UI end to end: headless chromium (playwright-core, axe-core from
# tests/ui's lockfile) against one vigild and the camera simulator. Writes
# docs/screenshots/. Ends with node's test summary.
ui-check: all $(BUILD)/camsim
	@sh scripts/vendor-ui.sh --check
	@python3 tests/integration_ui.py --build $(BUILD)

check: deps
	@$(MAKE) --no-print-directory all $(BUILD)/camsim $(BUILD)/faultfs.so $(TEST_BINS)
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory cppcheck
	@# last, so the suites' summary closes the output
	@$(MAKE) --no-print-directory integration EXTRA_SUITES='"$(MAKE) --no-print-directory fuzz-smoke"'

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan build-asan/camsim build-asan/faultfs.so
	@# the unit tests get the suites' sanitizer options (GLib's quark table: tests/lsan.supp)
	@VIGIL_TIMEOUT_SCALE=3 CK_TIMEOUT_MULTIPLIER=3 ASAN_OPTIONS=fast_unwind_on_malloc=0 \
	    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    $(MAKE) --no-print-directory BUILD=build-asan CC=gcc \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    unit integration

# libFuzzer targets (tests/fuzz/fuzz_*.c) over the library built with clang
# and sanitizers in its own tree; fuzz-run runs each for FUZZ_SECONDS from
# its seeds: tests/fuzz/corpus_NAME for fuzz_NAME when present, else
# tests/fuzz/corpus.
FUZZ_BUILD := build-fuzz
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION

fuzz:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
	    CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libvigil.a
	@set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	    clang $(FUZZ_FLAGS) -fsanitize=fuzzer $(VG_CFLAGS) -o $(FUZZ_BUILD)/$$n $$f \
	        $(FUZZ_BUILD)/libvigil.a $(LDLIBS); done

fuzz-run: fuzz
	@set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); mkdir -p $(FUZZ_BUILD)/corpus-$$n; \
	    seeds=tests/fuzz/corpus_$${n#fuzz_}; [ -d $$seeds ] || seeds=tests/fuzz/corpus; \
	    echo "== $$n ($(FUZZ_SECONDS) s)"; \
	    if ! $(FUZZ_BUILD)/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	        -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$n $$seeds \
	        > $(FUZZ_BUILD)/$$n.log 2>&1; then tail -40 $(FUZZ_BUILD)/$$n.log; exit 1; fi; \
	    tail -1 $(FUZZ_BUILD)/$$n.log; done

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
	@$(MAKE) --no-print-directory all $(BUILD)/camsim $(BENCH_BINS) $(BUILD)/bench/webserve \
		$(BUILD)/bench/snapfloor
	@python3 bench/ingest.py --build $(BUILD)
	@for b in $(BENCH_BINS); do $$b --results bench/RESULTS.md || exit 1; done
	@python3 bench/bench_web.py --build $(BUILD) --results bench/RESULTS.md
	@$(MAKE) --no-print-directory $(BUILD)/bench/calls_query
	@python3 bench/bench_calls.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_reports.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_relay.py --build $(BUILD) --results bench/RESULTS.md
	@# before: the commit just before startup stopped walking the whole archive
	@python3 bench/bench_startup.py --build $(BUILD) --results bench/RESULTS.md --before-rev 31e702d
	@python3 tests/integration_crash.py --build $(BUILD) --kills 100 --results bench/RESULTS.md
	@$(MAKE) --no-print-directory $(BUILD)/crash-recorder.so
	@python3 tests/crash/harness.py --build $(BUILD) --states 0 --variants 4 --results bench/RESULTS.md
	@python3 bench/bench_flood.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_ui.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_export.py --build $(BUILD) --results bench/RESULTS.md
	@$(MAKE) --no-print-directory $(BUILD)/tests/announce_eval
	@python3 bench/bench_announce.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_live.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_playback.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_snapshot.py --build $(BUILD) --results bench/RESULTS.md
	@python3 bench/bench_seek.py --build $(BUILD) --results bench/RESULTS.md

# Installs the daemon as a service (README "Install as a service"). The
# example config is installed once: an admin's edited file is never replaced.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	    $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/vigil $(DESTDIR)$(SHAREDIR) \
	    $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/vigild $(BUILD)/vigilctl $(DESTDIR)$(BINDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|' -e 's|@DOCDIR@|$(DOCDIR)|' systemd/vigil.service > $(DESTDIR)$(UNITDIR)/vigil.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vigil.service
	install -m 0644 systemd/vigil.sysusers $(DESTDIR)$(SYSUSERSDIR)/vigil.conf
	install -m 0644 systemd/vigil.tmpfiles $(DESTDIR)$(TMPFILESDIR)/vigil.conf
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 systemd/vigil.conf.example $(DESTDIR)$(SHAREDIR)/vigil.conf.example
	@# The config holds camera passwords: vigild (group vigil) reads it, no one
	@# else. The group comes from sysusers, so a real install creates it first.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/vigil.conf; fi
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/vigil/vigil.conf ]; then \
	    install -m 0640 systemd/vigil.conf.example $(DESTDIR)$(SYSCONFDIR)/vigil/vigil.conf; \
	    if [ "$$(id -u)" = 0 ] && getent group $(CONF_GROUP) >/dev/null; then \
	        chown root:$(CONF_GROUP) $(DESTDIR)$(SYSCONFDIR)/vigil/vigil.conf; \
	    else echo "$(DESTDIR)$(SYSCONFDIR)/vigil/vigil.conf: run chown root:$(CONF_GROUP) on it" \
	        "once the group exists (systemd-sysusers)"; fi; \
	else echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/vigil/vigil.conf"; fi
	@if [ -d web/ui ]; then cp -r web/ui $(DESTDIR)$(SHAREDIR)/ && \
	    chmod -R u=rwX,go=rX $(DESTDIR)$(SHAREDIR)/ui; fi

# The config and the archive stay: they hold an admin's settings and evidence.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vigild $(DESTDIR)$(BINDIR)/vigilctl \
	    $(DESTDIR)$(UNITDIR)/vigil.service $(DESTDIR)$(SYSUSERSDIR)/vigil.conf \
	    $(DESTDIR)$(TMPFILESDIR)/vigil.conf $(DESTDIR)$(DOCDIR)/README.md
	rm -rf $(DESTDIR)$(SHAREDIR)
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Tessera build.  `make` builds everything into $(BUILD)/ (binaries in
# $(BUILD)/bin); `make run` starts a local cluster; `make test` runs every
# test; `make fuzz` runs the decoders' fuzz targets; `make bench` measures.
#
# Layout: protocol/ -> libproto.a, common/ -> libcommon.a, client/ ->
# libclient.a (the mount, the NBD export, the admin CLI), one daemon per
# folder (its main() in *_main.c), admin/ -> the `tessera` CLI.  Unit tests:
# tests/<folder>/test_*.c become one cmocka binary per folder, built with
# AddressSanitizer and UndefinedBehaviorSanitizer against that folder's
# sources minus its *_main.c.

BUILD ?= build
# One spelling of the build folder whatever the caller passed (the scripts
# pass it absolute): relative inside the tree, absolute outside.  The
# targets that -MMD writes into each .d file must match the rules' targets
# exactly, or make ignores the headers an object depends on and keeps it
# stale when one of them changes.
override BUILD := $(patsubst $(CURDIR)/%,%,$(abspath $(BUILD)))
CC ?= cc
PKGS := fuse3 libuv sqlite3 libmicrohttpd nettle gnutls raft
WARN := -Wall -Wextra -Werror
BASE_CFLAGS := -std=gnu11 $(WARN) -g -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-Iprotocol -Icommon -Iclient
OPT ?= -O2
CFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(OPT) $(CFLAGS)
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer

# Quiet by default; `make V=1` shows every command.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

pc_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pc_libs = $(shell pkg-config --libs $(1) 2>/dev/null)

PROTO_SRC := $(wildcard protocol/*.c)
COMMON_SRC := $(wildcard common/*.c)
CLIENT_SRC := $(wildcard client/*.c)

# Daemons: binary name, folder, pkg-config packages.
META_SRC := $(wildcard metadata/*.c)
CHUNK_SRC := $(wildcard server/*.c)
FC_SRC := $(wildcard client-fuse/*.c)
VD_SRC := $(wildcard vmdisk/*.c)
ADMIN_SRC := $(wildcard admin/*.c)

BINS :=
ifneq ($(wildcard metadata/meta_main.c),)
BINS += $(BUILD)/bin/tessera-metad
endif
ifneq ($(wildcard server/chunk_main.c),)
BINS += $(BUILD)/bin/tessera-chunkd
endif
ifneq ($(wildcard client-fuse/fc_main.c),)
BINS += $(BUILD)/bin/tessera-mount
endif
ifneq ($(wildcard vmdisk/vd_main.c),)
BINS += $(BUILD)/bin/tessera-nbd
endif
ifneq ($(wildcard admin/adm_main.c),)
BINS += $(BUILD)/bin/tessera
endif

LIBS_COMMON := $(call pc_libs,libuv libmicrohttpd gnutls) -lpthread -lm

.PHONY: all deps run test test-unit test-integration fuzz bench e2e clean format \
	man install uninstall deb test-deb
all: $(BINS)

deps:
	@scripts/deps.sh

# ---- Objects ---------------------------------------------------------------
# $(BUILD)/obj/<path>.o for release, $(BUILD)/san/<path>.o for tests.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(call pc_cflags,$(PKGS)) -MMD -MP -c $< -o $@

# Tests reach the folder-private headers of the code they test.
TEST_INC := -Imetadata -Iserver -Iclient-fuse -Ivmdisk -Iadmin -Itests/common

$(BUILD)/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC-SAN,$<)
	$(Q)$(CC) $(BASE_CFLAGS) $(TEST_INC) -O1 $(SAN) $(CFLAGS) $(call pc_cflags,$(PKGS) cmocka) \
		-MMD -MP -c $< -o $@

objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
sobjs = $(patsubst %.c,$(BUILD)/san/%.o,$(1))

$(BUILD)/lib/libproto.a: $(call objs,$(PROTO_SRC))
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/lib/libcommon.a: $(call objs,$(COMMON_SRC))
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/lib/libclient.a: $(call objs,$(CLIENT_SRC))
	@mkdir -p $(dir $@)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

LIBDEPS := $(BUILD)/lib/libcommon.a $(BUILD)/lib/libproto.a
CLIENT_LIBDEPS := $(BUILD)/lib/libclient.a $(LIBDEPS)

# Files built into a binary as C arrays (scripts/embed.sh).
$(BUILD)/gen/meta_page.c: metadata/meta_page.html scripts/embed.sh
	@mkdir -p $(dir $@)
	$(call say,EMBED,$<)
	$(Q)scripts/embed.sh meta_page_html $< > $@.tmp && mv $@.tmp $@
META_GEN := $(BUILD)/gen/meta_page.c

$(BUILD)/bin/tessera-metad: $(call objs,$(META_SRC) $(META_GEN)) $(LIBDEPS)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(call pc_libs,sqlite3 raft) $(LIBS_COMMON)
$(BUILD)/bin/tessera-chunkd: $(call objs,$(CHUNK_SRC)) $(LIBDEPS)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS_COMMON)
$(BUILD)/bin/tessera-mount: $(call objs,$(FC_SRC)) $(CLIENT_LIBDEPS)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(call pc_libs,fuse3) $(LIBS_COMMON)
$(BUILD)/bin/tessera-nbd: $(call objs,$(VD_SRC)) $(CLIENT_LIBDEPS)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(call pc_libs,gnutls) $(LIBS_COMMON)
$(BUILD)/bin/tessera: $(call objs,$(ADMIN_SRC)) $(CLIENT_LIBDEPS)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(call pc_libs,nettle) $(LIBS_COMMON)

# ---- Unit tests ------------------------------------------------------------
# One cmocka binary per tests/<folder>; its main() is generated: it runs
# test_<file>() from every tests/<folder>/test_<file>.c.
UNIT_DIRS := $(patsubst tests/%/,%,$(sort $(dir $(wildcard tests/*/test_*.c))))
UNIT_BINS := $(patsubst %,$(BUILD)/tests/test_%,$(UNIT_DIRS))

# Sources under test per folder (mains excluded) and extra libraries.
srcdir_protocol := $(PROTO_SRC)
srcdir_common := $(COMMON_SRC) $(PROTO_SRC)
srcdir_client := $(CLIENT_SRC) $(COMMON_SRC) $(PROTO_SRC)
srcdir_metadata := $(filter-out %_main.c,$(META_SRC)) $(META_GEN) \
	$(COMMON_SRC) $(PROTO_SRC)
srcdir_server := $(filter-out %_main.c,$(CHUNK_SRC)) $(COMMON_SRC) $(PROTO_SRC)
srcdir_client-fuse := $(filter-out %_main.c,$(FC_SRC)) $(CLIENT_SRC) \
	$(COMMON_SRC) $(PROTO_SRC)
srcdir_vmdisk := $(filter-out %_main.c,$(VD_SRC)) $(CLIENT_SRC) $(COMMON_SRC) \
	$(PROTO_SRC)
srcdir_admin := $(filter-out %_main.c,$(ADMIN_SRC)) $(CLIENT_SRC) \
	$(COMMON_SRC) $(PROTO_SRC)
libs_metadata := $(call pc_libs,sqlite3 raft)
libs_client-fuse := $(call pc_libs,fuse3)
libs_admin := $(call pc_libs,nettle)
libs_vmdisk := $(call pc_libs,gnutls)

# Every unit-test binary has its local I/O and allocation calls wrapped by
# tests/common/fault_inject.c, which a test arms to make them fail; the
# daemons are never linked with it.
FAULT_OBJ := $(BUILD)/san/tests/common/fault_inject.o
FAULT_WRAP := $(foreach f,pwritev64v2 fdatasync fsync fallocate64 ftruncate64 \
	malloc calloc open64 openat64 mkdir rename link fcntl64,-Wl,--wrap=$(f))

$(BUILD)/tests/main_%.c: $(wildcard tests/*/test_*.c)
	@mkdir -p $(dir $@)
	@scripts/gen-test-main.sh tests/$* > $@.tmp && mv $@.tmp $@

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/test_%: $$(call sobjs,$$(wildcard tests/%/test_*.c) $$(srcdir_$$*)) \
		$(FAULT_OBJ) $(BUILD)/tests/main_%.c
	$(call say,LD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) -O1 $(SAN) $(CFLAGS) $(call pc_cflags,$(PKGS) cmocka) \
		$(FAULT_WRAP) -o $@ $^ $(libs_$*) $(call pc_libs,cmocka) $(LIBS_COMMON)

test-unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

test-integration: all
	@BUILD=$(abspath $(BUILD)) scripts/run-integration.sh

# `make test` also runs every fuzz target briefly (TEST_FUZZ_SECONDS each).
# The build runs on every core ($(JOBS)); integration tests run
# $(TEST_JOBS) at a time.
TEST_FUZZ_SECONDS ?= 5
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TEST_JOBS ?= 3
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(UNIT_BINS) $(FUZZ_BINS)
	@BUILD=$(abspath $(BUILD)) FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) TEST_JOBS=$(TEST_JOBS) \
		scripts/run-tests.sh $(UNIT_BINS) -- $(FUZZ_BINS)

run: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(abspath $(BUILD)) META=$(META) scripts/tessera-run

# ---- Fuzzing ---------------------------------------------------------------
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 20

# Decoders outside protocol/ that, like it, need only libc and libproto
# (no database, no libuv): every fuzz target is built with them too.
FUZZ_CODEC_SRC := metadata/meta_op.c

$(BUILD)/fuzz/%: tests/fuzz/%.c $(wildcard tests/fuzz/*.h) $(PROTO_SRC) \
		$(FUZZ_CODEC_SRC)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)clang $(BASE_CFLAGS) $(addprefix -I,$(sort $(dir $(FUZZ_CODEC_SRC)))) \
		-O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $(filter %.c,$^)

# The authentication parsers need common/auth*.c and GnuTLS.
$(BUILD)/fuzz/fuzz_auth: tests/fuzz/fuzz_auth.c $(wildcard tests/fuzz/*.h) \
		$(PROTO_SRC) common/auth.c common/auth_caps.c
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)clang $(BASE_CFLAGS) -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ $(filter %.c,$^) \
		$(call pc_libs,gnutls)

# A secure link's TLS session, fed hostile bytes: common/seclink.c, GnuTLS.
$(BUILD)/fuzz/fuzz_seclink: tests/fuzz/fuzz_seclink.c $(wildcard tests/fuzz/*.h) \
		common/seclink.c common/seclink.h common/auth.h
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)clang $(BASE_CFLAGS) $(call pc_cflags,gnutls) -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(filter %.c,$^) $(call pc_libs,gnutls)

# The NBD option phase runs over tessera-nbd's own sources and GnuTLS.
FUZZ_NBD_SRC := vmdisk/vd_handshake.c vmdisk/vd_io.c vmdisk/vd_tls.c \
	vmdisk/vd_mem.c vmdisk/vd_backend.c vmdisk/vd_limits.c common/log.c \
	common/net.c common/conn_limit.c
$(BUILD)/fuzz/fuzz_nbd_opt: tests/fuzz/fuzz_nbd_opt.c $(FUZZ_NBD_SRC) \
		$(wildcard vmdisk/*.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)clang $(BASE_CFLAGS) -Ivmdisk $(call pc_cflags,gnutls) -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(filter %.c,$^) $(call pc_libs,gnutls) -lpthread

fuzz: $(FUZZ_BINS)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# ---- Installing --------------------------------------------------------
# `make install [PREFIX=/usr/local] [DESTDIR=]`: the programs, their man
# pages (made from each program's own --help by help2man, so they cannot
# drift from it; one per verb of the admin CLI, tessera-VERB(1), from
# `tessera VERB --help`), systemd units (tessera-metad, tessera-chunkd@NAME per data
# folder, tessera-nbd), an example config per daemon and bash completion.
VERSION := 0.9.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/tessera
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions

MAN_PAGES := $(patsubst $(BUILD)/bin/%,$(BUILD)/man/%.1,$(BINS))
UNITS := $(patsubst dist/systemd/%.in,%,$(wildcard dist/systemd/*.in))

VERB_MAN := $(BUILD)/man/verbs/stamp

$(BUILD)/man/%.1: $(BUILD)/bin/% dist/man/%.h2m
	@mkdir -p $(dir $@)
	$(call say,MAN,$@)
	$(Q)command -v help2man >/dev/null || \
		{ echo "help2man is missing: make deps" >&2; exit 1; }
	$(Q)help2man -N --version-string=$(VERSION) $(H2M_EXTRA) \
		-i dist/man/$*.h2m -o $@ $<

# The verbs' pages, and the SEE ALSO of tessera(1) that lists them.
$(VERB_MAN): $(BUILD)/bin/tessera scripts/man-verbs.sh dist/man/tessera-verb.h2m \
		dist/bash-completion/tessera
	$(call say,MAN,$(BUILD)/man/verbs/)
	$(Q)scripts/man-verbs.sh $< $(dir $@) $(VERSION) && touch $@
$(BUILD)/man/tessera.1: $(VERB_MAN)
$(BUILD)/man/tessera.1: H2M_EXTRA = -i $(BUILD)/man/verbs/see-also.h2m

man: $(MAN_PAGES) $(VERB_MAN)

install: all man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(SYSCONFDIR)/tessera
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(MAN_PAGES) $(BUILD)/man/verbs/*.1 $(DESTDIR)$(MANDIR)/man1/
	for u in $(UNITS); do \
		sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			dist/systemd/$$u.in >$(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 dist/config/*.cfg $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 dist/bash-completion/tessera $(DESTDIR)$(COMPLETIONDIR)/tessera
	for p in tessera-metad tessera-chunkd tessera-nbd tessera-mount; do \
		ln -sf tessera $(DESTDIR)$(COMPLETIONDIR)/$$p || exit 1; \
	done

# `make deb`: the Debian package, built from a copy of the tree (the
# package build cleans what it builds in) into $(BUILD)/deb/; builds,
# clusters and run folders stay out of the copy.  DEB_BUILD_OPTIONS is
# dpkg-buildpackage's (nocheck, parallel=N, ...).  `make test-deb` builds
# it as tests/integration/test-deb.sh does and checks what it holds.
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	tar --exclude=./.git --exclude=./$(BUILD) --exclude=./build \
		--exclude='./run' --exclude='./run-*' -cf - . | \
		tar -xf - -C $(BUILD)/deb/src
	cd $(BUILD)/deb/src && dpkg-buildpackage -us -uc -b
	@ls $(BUILD)/deb/*.deb

test-deb: all
	@BUILD=$(abspath $(BUILD)) TESTS=tests/integration/test-deb.sh \
		scripts/run-integration.sh

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BINS))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN_PAGES))) \
		$(DESTDIR)$(MANDIR)/man1/tessera-*.1 \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) \
		$(addprefix $(DESTDIR)$(COMPLETIONDIR)/,tessera tessera-metad \
			tessera-chunkd tessera-nbd tessera-mount)
	rm -rf $(DESTDIR)$(DOCDIR)

# The slow end-to-end run: a Debian guest booted from an image on tessera-nbd.
e2e: deps all
	@BUILD=$(abspath $(BUILD)) tests/e2e/run.sh

bench: deps all
	@BUILD=$(abspath $(BUILD)) scripts/bench.sh

format:
	clang-format -i $(wildcard */*.c */*.h tests/*/*.c)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -path '$(BUILD)/e2e-cache' -prune -o -type f -name '*.d' -print 2>/dev/null)

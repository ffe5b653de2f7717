# keyhole: permit-gated secrets for AI agents and the tools they drive.
#
#   make            build libkeyhole, keyhole, keyholed, the backend
#                   modules and pam_keyhole.so
#   make check      run every test (SANITIZE=1 for ASan and UBSan)
#   make demo       run the end-to-end demo in a temporary directory
#   make demo-federation
#                   run the AWS and Vault federation demo against
#                   loopback mocks of those services
#   make install    honours DESTDIR, PREFIX, SYSCONFDIR, LIBDIR
#   make install-dev
#                   install libkeyhole.a and its headers
#   make deb        build the Debian packages into $(BUILD)/deb
#   make rpm        build the RPM packages into $(BUILD)/rpm
#   make install-test
#                   install the packages into a Debian chroot and test them
#   make deps       install missing Debian build and test packages

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
PAMDIR     ?= $(LIBDIR)/security
BACKENDDIR ?= $(LIBDIR)/keyhole/backends
SYSCONFDIR ?= /etc
RUNSTATEDIR ?= /run
LOCALSTATEDIR ?= /var
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd \
                    2>/dev/null || echo /lib/systemd/system)
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
PAMCONFIGDIR ?= $(DATADIR)/pam-configs
MANDIR     ?= $(DATADIR)/man

CC     ?= cc
CFLAGS ?= -O2 -g

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else
BUILD    ?= build
SANFLAGS :=
endif

PKG_LIB    := libsodium jansson libseccomp libcurl libcrypto
PKG_MODULE := libsodium jansson
PKG_DAEMON := fuse3 libsystemd

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-missing-field-initializers
DEFS := -D_GNU_SOURCE -DKH_SYSCONFDIR='"$(SYSCONFDIR)"' \
        -DKH_RUNSTATEDIR='"$(RUNSTATEDIR)"' \
        -DKH_LOCALSTATEDIR='"$(LOCALSTATEDIR)"' \
        -DKH_BACKEND_DIR='"$(BACKENDDIR)"'

KH_CFLAGS = -std=c11 $(WARN) $(DEFS) -fPIC -fstack-protector-strong \
            -Icore/include $(shell pkg-config --cflags $(PKG_LIB)) \
            $(SANFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP
KH_LDFLAGS = $(SANFLAGS) -Wl,-z,relro,-z,now $(LDFLAGS)
LIB_LIBS   = $(shell pkg-config --libs $(PKG_LIB)) -ldl
# pam_keyhole.so and the test helper programs run inside processes that
# have no sanitizer runtime (sshd, pamtester), so they never get SANFLAGS.
NOSAN_CFLAGS = $(filter-out $(SANFLAGS),$(KH_CFLAGS))

LIB_SRC    := $(sort $(wildcard core/lib/*.c))
CLI_SRC    := $(sort $(wildcard core/cli/*.c))
DAEMON_SRC := $(sort $(wildcard fusefs/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_HELPER_SRC := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
MODULE_SRC := $(sort $(wildcard core/backends/*.c))
PAM_SRC    := $(sort $(wildcard pam/*.c))
SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
# Man pages: docs/man/NAME.N.scd becomes $(BUILD)/man/NAME.N.
MAN_SRC    := $(sort $(wildcard docs/man/*.scd))
MAN_PAGES  := $(MAN_SRC:docs/man/%.scd=$(BUILD)/man/%)
SCDOC      ?= scdoc

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
DAEMON_MAIN_OBJ := $(BUILD)/fusefs/keyholed.o
DAEMON_LIB_OBJ := $(filter-out $(DAEMON_MAIN_OBJ),$(DAEMON_OBJ))
UNIT_HELPER_OBJ := $(UNIT_HELPER_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MODULE_OBJ := $(MODULE_SRC:%.c=$(BUILD)/%.o)
MODULES    := $(MODULE_SRC:core/backends/%.c=$(BUILD)/backends/kh_backend_%.so)
PAM_OBJ    := $(PAM_SRC:%.c=$(BUILD)/nosan/%.o)
SUPPORT_BIN := $(SUPPORT_SRC:tests/support/%.c=$(BUILD)/tests/support/%)

LIBKEYHOLE := $(BUILD)/libkeyhole.a
# keyholed's objects other than main(), so unit tests can link them.
LIBKEYHOLED := $(BUILD)/libkeyholed.a
KEYHOLE    := $(BUILD)/keyhole
KEYHOLED   := $(BUILD)/keyholed
PAM_MODULE := $(BUILD)/pam_keyhole.so
ifeq ($(SANITIZE),1)
PAM_LIBKEYHOLE := $(BUILD)/nosan/libkeyhole.a
else
PAM_LIBKEYHOLE := $(LIBKEYHOLE)
endif

.PHONY: all check demo demo-federation install clean deps bench unit
.PHONY: install-dev deb man
# Keep objects that pattern chains build, so a rebuild is incremental.
.SECONDARY:
all: $(KEYHOLE) $(KEYHOLED) $(MODULES) $(if $(PAM_SRC),$(PAM_MODULE)) man

# Objects depend on the compiler and flags in force, so that a change
# of CC, CFLAGS or SYSCONFDIR rebuilds them instead of reusing stale ones.
FLAGS_STAMP := $(BUILD)/.build-flags
FLAGS_NOW := $(subst ',,$(CC) $(KH_CFLAGS) $(KH_LDFLAGS))

$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(FLAGS_NOW)' | cmp -s - $@ || \
	    printf '%s\n' '$(FLAGS_NOW)' > $@

.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KH_CFLAGS) -c $< -o $@

$(BUILD)/fusefs/%.o: fusefs/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KH_CFLAGS) $(shell pkg-config --cflags $(PKG_DAEMON)) -c $< -o $@

$(BUILD)/nosan/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(NOSAN_CFLAGS) -c $< -o $@

$(BUILD)/nosan/libkeyhole.a: $(LIB_SRC:%.c=$(BUILD)/nosan/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

# Modules reach keyhole only through the host table they are handed, so
# they must link without any libkeyhole symbol (--no-undefined).
$(BUILD)/backends/kh_backend_%.so: $(BUILD)/core/backends/%.o
	@mkdir -p $(dir $@)
	$(CC) $(KH_LDFLAGS) -shared -Wl,--no-undefined -o $@ $< \
	    $(shell pkg-config --libs $(PKG_MODULE))

# Only the PAM entry points are exported (pam/pam_keyhole.map).
$(PAM_MODULE): $(PAM_OBJ) $(PAM_LIBKEYHOLE) pam/pam_keyhole.map
	$(CC) $(filter-out $(SANFLAGS),$(KH_LDFLAGS)) -shared \
	    -Wl,--no-undefined -Wl,--version-script=pam/pam_keyhole.map \
	    -o $@ $(PAM_OBJ) $(PAM_LIBKEYHOLE) $(LIB_LIBS) -lpam

$(BUILD)/tests/support/%: tests/support/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(NOSAN_CFLAGS) $(filter-out $(SANFLAGS),$(KH_LDFLAGS)) \
	    -o $@ $< $(shell pkg-config --libs libseccomp)

# The one helper that is a PAM application (tests/integration/pam_module.sh).
$(BUILD)/tests/support/pam_session: tests/support/pam_session.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(NOSAN_CFLAGS) $(filter-out $(SANFLAGS),$(KH_LDFLAGS)) \
	    -o $@ $< -lpam

$(LIBKEYHOLE): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(KEYHOLE): $(CLI_OBJ) $(LIBKEYHOLE)
	$(CC) $(KH_LDFLAGS) -o $@ $(CLI_OBJ) $(LIBKEYHOLE) $(LIB_LIBS)

$(LIBKEYHOLED): $(DAEMON_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

DAEMON_LIBS = $(shell pkg-config --libs $(PKG_DAEMON)) $(LIB_LIBS) -lpthread

$(KEYHOLED): $(DAEMON_MAIN_OBJ) $(LIBKEYHOLED) $(LIBKEYHOLE)
	$(CC) $(KH_LDFLAGS) -o $@ $(DAEMON_MAIN_OBJ) $(LIBKEYHOLED) \
	    $(LIBKEYHOLE) $(DAEMON_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HELPER_OBJ) $(LIBKEYHOLED) $(LIBKEYHOLE)
	@mkdir -p $(dir $@)
	$(CC) $(KH_LDFLAGS) -o $@ $< $(UNIT_HELPER_OBJ) $(LIBKEYHOLED) \
	    $(LIBKEYHOLE) $(DAEMON_LIBS)

# Modules that break the ABI rules on purpose, for the loader's tests.
TEST_MODULE_SRC := $(sort $(wildcard tests/modules/*.c))
TEST_MODULES := $(TEST_MODULE_SRC:tests/modules/%.c=$(BUILD)/tests/modules/kh_backend_%.so)

$(BUILD)/tests/modules/kh_backend_%.so: $(BUILD)/tests/modules/%.o
	@mkdir -p $(dir $@)
	$(CC) $(KH_LDFLAGS) -shared -Wl,--no-undefined -o $@ $< \
	    $(shell pkg-config --libs $(PKG_MODULE))

unit: $(UNIT_BIN) $(SUPPORT_BIN) $(TEST_MODULES)

man: $(MAN_PAGES)

# Written to a temporary file first, so that a failed scdoc run leaves
# no truncated page that a later make would take as up to date.
$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	@command -v $(SCDOC) >/dev/null || { echo "man: $(SCDOC) not" \
	    "found: run make deps or apt-get install scdoc" >&2; exit 1; }
	$(SCDOC) <$< >$@.tmp
	mv $@.tmp $@

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBKEYHOLE)
	@mkdir -p $(dir $@)
	$(CC) $(KH_LDFLAGS) -o $@ $< $(LIBKEYHOLE) $(LIB_LIBS)

deps:
	@sh packaging/deps.sh

check: deps
	@$(MAKE) --no-print-directory all unit
	@KH_BUILD=$(BUILD) SANITIZE=$(SANITIZE) sh tests/run.sh

demo: deps
	@$(MAKE) -s --no-print-directory all
	@KH_BUILD=$(BUILD) sh tests/demo.sh

demo-federation: deps
	@$(MAKE) -s --no-print-directory all
	@KH_BUILD=$(BUILD) sh tests/demo_federation.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@KH_BUILD=$(BUILD) sh bench/run.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 $(KEYHOLE) $(DESTDIR)$(BINDIR)/keyhole
	install -m 0755 $(KEYHOLED) $(DESTDIR)$(SBINDIR)/keyholed
	install -d $(DESTDIR)$(BACKENDDIR) $(DESTDIR)$(PAMDIR)
	$(if $(MODULES),install -m 0644 $(MODULES) $(DESTDIR)$(BACKENDDIR)/)
	$(if $(PAM_SRC),install -m 0644 $(PAM_MODULE) $(DESTDIR)$(PAMDIR)/)
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(PAMCONFIGDIR)
	sed 's|/usr/sbin/keyholed|$(SBINDIR)/keyholed|' \
	    packaging/systemd/keyholed.service >$(BUILD)/keyholed.service
	install -m 0644 $(BUILD)/keyholed.service \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/keyholed.service
	install -m 0644 packaging/systemd/keyhole.tmpfiles \
	    $(DESTDIR)$(TMPFILESDIR)/keyhole.conf
	install -m 0644 packaging/pam-configs/keyhole \
	    $(DESTDIR)$(PAMCONFIGDIR)/keyhole
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(filter %.5,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/keyhole/confine.d
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/keyhole
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/keyhole/credstore
	install -d -m 0755 $(DESTDIR)$(LOCALSTATEDIR)/lib/keyhole
	install -d -m 0755 $(DESTDIR)$(DATADIR)/doc/keyhole/examples
	install -m 0644 packaging/keyhole.json packaging/policy.json \
	    $(DESTDIR)$(DATADIR)/doc/keyhole/examples/
	install -d -m 0755 $(DESTDIR)$(DATADIR)/doc/keyhole/examples/confine.d
	install -m 0644 packaging/confine.d/*.json \
	    $(DESTDIR)$(DATADIR)/doc/keyhole/examples/confine.d/
	install -m 0644 README.md LICENSE docs/*.md $(DESTDIR)$(DATADIR)/doc/keyhole/

# libkeyhole's ABI is not stable, so the headers and the static library
# are installed only on request, for backend modules built out of tree.
install-dev: $(LIBKEYHOLE)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/keyhole
	install -m 0644 $(LIBKEYHOLE) $(DESTDIR)$(LIBDIR)/libkeyhole.a
	install -m 0644 core/include/keyhole/*.h $(DESTDIR)$(INCLUDEDIR)/keyhole/

# The Debian packages, built by dpkg-buildpackage from a copy of the tree
# (the files git tracks or would track) with packaging/debian as debian/.
# The .deb, .buildinfo and .changes files are left in $(BUILD)/deb.
# Make passes its command-line variables (BUILD, SANITIZE, PREFIX) on
# through MAKEFLAGS, which is cleared, and through the environment,
# which debian/rules overrides by setting BUILD, SANITIZE and every path
# on its make command lines. DEB_BUILD_OPTIONS is passed on as it is.
VERSION := $(shell sed -n 's/.*KH_VERSION "\(.*\)".*/\1/p' \
             core/include/keyhole/keyhole.h)
DEB_DIR = $(abspath $(BUILD))/deb
DEB_TREE = $(DEB_DIR)/keyhole-$(VERSION)

deb: deps
	@changelog=$$(dpkg-parsechangelog -l packaging/debian/changelog \
	    -S Version) && [ "$$changelog" = "$(VERSION)" ] || { \
	    echo "deb: packaging/debian/changelog has version $$changelog" \
	         "but KH_VERSION is $(VERSION): add a changelog entry" \
	         "with dch -v $(VERSION)" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_TREE)
	git ls-files -z --cached --others --exclude-standard | \
	    tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(DEB_TREE)
	rm -rf $(DEB_TREE)/debian
	cp -R packaging/debian $(DEB_TREE)/debian
	cd $(DEB_TREE) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    -u MAKEOVERRIDES dpkg-buildpackage -us -uc -b

# Installs the packages from "make deb" into a fresh Debian chroot and
# follows them through first use, remove and purge. The base system is
# cached in $(BUILD)/install-test (tests/install/run.sh).
.PHONY: install-test
install-test: deps
	@DEB_BUILD_OPTIONS="nocheck $(DEB_BUILD_OPTIONS)" \
	    $(MAKE) --no-print-directory deb
	@KI_CACHE=$(abspath $(BUILD))/install-test sh tests/install/run.sh $(DEB_DIR)
	@KI_CACHE=$(abspath $(BUILD))/install-test sh tests/install/boot.sh $(DEB_DIR)

# The RPM packages, built by rpmbuild from packaging/rpm/keyhole.spec and
# left in $(BUILD)/rpm with the source RPM. Source0 is a tarball of the
# work tree (packaging/rpm/source-tarball.sh), so uncommitted changes
# are built. RPMBUILD_FLAGS adds rpmbuild options, such as --nocheck.
#
# Debian's rpm package has no systemd RPM macros, so there
# packaging/rpm/macros.debian-host is loaded. Its rpm database is empty,
# because Debian's packages are in the dpkg database, so rpmbuild runs
# with --nodeps there: the BuildRequires name Fedora packages, and
# packaging/deps.sh installs their Debian equivalents.
#
# Make passes its command-line variables (BUILD, SANITIZE, PREFIX) on
# through MAKEFLAGS, which is cleared, and through the environment, which
# the spec overrides by setting BUILD, SANITIZE and every path on its
# make command lines.
.PHONY: rpm
RPM_DIR = $(abspath $(BUILD))/rpm
RPMBUILD_FLAGS ?=

rpm: deps
	@command -v rpmbuild >/dev/null || { echo "rpm: rpmbuild not" \
	    "found: install the rpm package (make deps)" >&2; exit 1; }
	rm -rf $(RPM_DIR)
	mkdir -p $(RPM_DIR)/SOURCES
	sh packaging/rpm/source-tarball.sh \
	    $(RPM_DIR)/SOURCES/keyhole-$(VERSION).tar.gz $(VERSION)
	load=$$([ -n "$$(rpm --eval '%{?_unitdir}')" ] || \
	    echo --load packaging/rpm/macros.debian-host); \
	nodeps=$$(rpm -q --quiet --whatprovides /bin/sh || echo --nodeps); \
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	    rpmbuild -ba $$load $$nodeps \
	    --define "_topdir $(RPM_DIR)" \
	    --define "_rpmdir $(RPM_DIR)" --define "_srcrpmdir $(RPM_DIR)" \
	    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
	    --define "kh_version $(VERSION)" $(RPMBUILD_FLAGS) \
	    packaging/rpm/keyhole.spec

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(DAEMON_OBJ:.o=.d) \
         $(MODULE_OBJ:.o=.d) $(PAM_OBJ:.o=.d) \
         $(UNIT_BIN:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d) \
         $(UNIT_HELPER_OBJ:.o=.d)

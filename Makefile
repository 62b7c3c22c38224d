# guardd: build, install and package.
#
#   make               build ./bin/guardd (static, no cgo)
#   make install       install into $(DESTDIR)$(PREFIX) (binary, unit, man pages, policy if absent)
#   make packages      dist/guardd_VERSION_ARCH.deb and dist/guardd-VERSION.ARCH.rpm (nfpm)
#   make version       print the version the build would carry
#   make GOOS=freebsd  cross-build bin/guardd for FreeBSD (GOARCH=arm64 likewise)
#
# The version comes from `git describe --tags --always --dirty`, mapped to a
# version dpkg and rpm accept (they need a leading digit and no '-'):
#
#   v1.2.3                      -> 1.2.3
#   v1.2.3-4-gabc1234[-dirty]   -> 1.2.3+git20261204.4.abc1234[.dirty]   (after 1.2.3)
#   abc1234[-dirty] (no tag)    -> 0.0.0~git20261204.abc1234[.dirty]      (before any release)
#   v1.2.3-rc1                  -> 1.2.3~rc1                              (before 1.2.3)
#
# where 20261204 is the commit's date, so that newer commits sort higher.
# Without git (a release tarball) the VERSION file is used, else 0.0.0~dev.

PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
DESTDIR    ?=

SHELL      := /bin/bash
GO         ?= go
# nfpm runs as a pinned Go module: no package of it is needed on the build host.
NFPM       ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

GIT_DESCRIBE := $(shell git describe --tags --always --dirty 2>/dev/null)
GIT_DATE     := $(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null)
COMMIT       ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)

ifneq ($(GIT_DESCRIBE),)
VERSION ?= $(shell echo '$(GIT_DESCRIBE)' | sed -E 's/-dirty$$/.dirty/' | sed -E \
	-e 's/^v?([0-9][0-9A-Za-z.+~-]*)-([0-9]+)-g([0-9a-f]+)/\1+git$(GIT_DATE).\2.\3/' -e t \
	-e 's/^v([0-9])/\1/' -e t \
	-e 's/^([0-9a-f]{4,40})/0.0.0~git$(GIT_DATE).\1/' | sed 's/-/~/g')
else
VERSION ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0~dev)
endif

# Debian and rpm name the architectures differently; nfpm takes Go's names.
GOOS   ?= $(shell $(GO) env GOOS)
GOARCH ?= $(shell $(GO) env GOARCH)
DEBARCH = $(GOARCH)
RPMARCH = $(subst amd64,x86_64,$(subst arm64,aarch64,$(GOARCH)))

# Where the build goes; the package test points these at a temporary directory.
BIN   ?= bin/guardd
BUILD ?= build
DIST  ?= dist

LDFLAGS = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build install packages deb rpm version man-check clean

all: build

build: $(BIN)

# FORCE: go decides what is stale; make cannot see Go's dependencies.
$(BIN): FORCE
	CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $@ ./guardd

version:
	@echo $(VERSION)

# The packaged policy is the embedded default in monitor mode, with a header
# saying how to turn enforcement on. It is generated from the binary's own
# default so the two never drift; the check fails the build if the mode line
# moved or the result does not validate.
$(BUILD)/policy.hcl: $(BIN) packaging/policy-header.hcl
	@mkdir -p $(BUILD)
	{ cat packaging/policy-header.hcl; $(BIN) default-policy | \
	  sed -E '0,/^  mode( +)= "enforce"( +)#.*/s//  mode\1= "monitor"\2# "enforce" acts: see the top of this file/'; } > $@.tmp
	@test "$$(diff <($(BIN) default-policy) $@.tmp | grep -c '^[<>]   mode ')" = 2 || \
	  { echo "packaging: the guardd block's mode line of the default policy was not found"; exit 1; }
	$(BIN) check $@.tmp >/dev/null
	mv $@.tmp $@

# Man pages gzipped for the .deb (Debian policy 12.1; rpm compresses its own
# with brp-compress, nfpm does not, so the rpm gets the same gzipped files).
$(BUILD)/man/guardd.8.gz: man/guardd.8
	@mkdir -p $(BUILD)/man
	gzip -9n < $< > $@
$(BUILD)/man/guardd.hcl.5.gz: man/guardd.hcl.5
	@mkdir -p $(BUILD)/man
	gzip -9n < $< > $@
# The changelog's entry carries this build's version: lintian checks that
# the package's version and its latest changelog entry agree.
$(BUILD)/changelog.gz: packaging/changelog FORCE
	@mkdir -p $(BUILD)
	{ echo 'guardd ($(VERSION)) unstable; urgency=medium'; cat $<; } | gzip -9n > $@

PKG_INPUTS = $(BIN) $(BUILD)/policy.hcl $(BUILD)/man/guardd.8.gz $(BUILD)/man/guardd.hcl.5.gz \
	$(BUILD)/changelog.gz $(BUILD)/nfpm.yaml
NFPM_ENV = VERSION='$(VERSION)' GOARCH='$(GOARCH)'

# nfpm does not expand variables in file sources: the paths are filled in here.
$(BUILD)/nfpm.yaml: packaging/nfpm.yaml FORCE
	@mkdir -p $(BUILD)
	sed -e 's|$${BIN}|$(BIN)|g' -e 's|$${BUILD}|$(BUILD)|g' $< > $@

packages: deb rpm

deb: $(PKG_INPUTS)
	@mkdir -p $(DIST)
	$(NFPM_ENV) $(NFPM) package --config $(BUILD)/nfpm.yaml \
	  --packager deb --target $(DIST)/guardd_$(VERSION)_$(DEBARCH).deb

rpm: $(PKG_INPUTS)
	@mkdir -p $(DIST)
	$(NFPM_ENV) $(NFPM) package --config $(BUILD)/nfpm.yaml \
	  --packager rpm --target $(DIST)/guardd-$(VERSION).$(RPMARCH).rpm

# install: the binary, the unit, the man pages, and the packaged policy and
# logrotate file only where none exists yet (an admin's are never replaced).
install: $(BIN) $(BUILD)/policy.hcl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/guardd
	install -m 0644 systemd/guardd.service $(DESTDIR)$(UNITDIR)/guardd.service
	install -m 0644 man/guardd.8 $(DESTDIR)$(MANDIR)/man8/guardd.8
	install -m 0644 man/guardd.hcl.5 $(DESTDIR)$(MANDIR)/man5/guardd.hcl.5
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/guardd $(DESTDIR)/var/lib/guardd $(DESTDIR)/var/log/guardd
	test -e $(DESTDIR)$(SYSCONFDIR)/guardd/policy.hcl || \
	  install -m 0640 $(BUILD)/policy.hcl $(DESTDIR)$(SYSCONFDIR)/guardd/policy.hcl
	install -d $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	test -e $(DESTDIR)$(SYSCONFDIR)/logrotate.d/guardd || \
	  install -m 0644 packaging/logrotate/guardd $(DESTDIR)$(SYSCONFDIR)/logrotate.d/guardd

# The man pages render without a warning (groff -ww), as the test checks.
man-check:
	for p in man/guardd.8 man/guardd.hcl.5; do \
	  out=$$(LC_ALL=C.UTF-8 groff -man -ww -z -t $$p 2>&1); \
	  if [ -n "$$out" ]; then echo "$$p:"; echo "$$out"; exit 1; fi; \
	done

clean:
	rm -rf bin build dist $(BIN) $(BUILD) $(DIST)

FORCE:

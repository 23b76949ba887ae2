# Developer entry points. Both quick-start commands install what they need first (as root, idempotent).
CARGO ?= cargo

.PHONY: deps demo test test-fast lint bench build generated install uninstall deb

# Installation layout: `make install PREFIX=/usr DESTDIR="$PWD/stage"` stages a system tree.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASH_COMPLETION_DIR ?= $(DATADIR)/bash-completion/completions
# Debian's zsh reads packages' completions from vendor-completions, local ones from site-functions.
ZSH_COMPLETION_DIR ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR)/zsh/vendor-completions,$(DATADIR)/zsh/site-functions)
FISH_COMPLETION_DIR ?= $(DATADIR)/fish/vendor_completions.d
DOCDIR ?= $(DATADIR)/doc/imagebuilder

TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
GEN_DIR := $(TARGET_DIR)/generated
DEB_STAGE := $(TARGET_DIR)/debian/stage

# The binary installed. Given on the command line (`make deb IMAGEBUILDER_BIN=...`), it is used as
# it is; otherwise `cargo build --release` makes it first.
ifeq ($(origin IMAGEBUILDER_BIN),undefined)
IMAGEBUILDER_BIN := $(TARGET_DIR)/release/imagebuilder
BUILD_BIN := build
endif

deps:
	bash scripts/install-deps.sh

# The main job on the built-in default.
demo: deps
	$(CARGO) run --release -p imagebuilder -- demo

# The whole test suite, slow tier included (unit, conformance against pykickstart, CLI end-to-end,
# image builds and boots); needs root, QEMU and the demo tree. A missing oracle fails it.
test: deps
	IMAGEBUILDER_REQUIRE_ORACLES=1 $(CARGO) test --workspace --release -- --include-ignored

# The fast tier: no root, QEMU, network, demo tree or loop device; tests needing the pykickstart
# oracle are skipped (one line each) when .venv/ is missing.
test-fast:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: deps
	$(CARGO) bench --workspace

build:
	$(CARGO) build --release --locked -p imagebuilder

# Man pages (one per subcommand) and completions, generated from the binary's own clap definitions.
generated: $(BUILD_BIN)
	rm -rf $(GEN_DIR)
	$(IMAGEBUILDER_BIN) generate manpages $(GEN_DIR)/man >/dev/null
	for sh in bash zsh fish; do \
	  $(IMAGEBUILDER_BIN) generate completions $$sh $(GEN_DIR)/completions >/dev/null || exit 1; \
	done

install: generated
	install -D -m 0755 $(IMAGEBUILDER_BIN) $(DESTDIR)$(BINDIR)/imagebuilder
	install -d $(DESTDIR)$(MANDIR)/man1
	for f in $(GEN_DIR)/man/*.1; do \
	  gzip -9 -n -c $$f > $(DESTDIR)$(MANDIR)/man1/$$(basename $$f).gz || exit 1; \
	done
	install -D -m 0644 $(GEN_DIR)/completions/imagebuilder.bash $(DESTDIR)$(BASH_COMPLETION_DIR)/imagebuilder
	install -D -m 0644 $(GEN_DIR)/completions/_imagebuilder $(DESTDIR)$(ZSH_COMPLETION_DIR)/_imagebuilder
	install -D -m 0644 $(GEN_DIR)/completions/imagebuilder.fish $(DESTDIR)$(FISH_COMPLETION_DIR)/imagebuilder.fish
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/imagebuilder $(DESTDIR)$(MANDIR)/man1/imagebuilder.1.gz \
	  $(DESTDIR)$(MANDIR)/man1/imagebuilder-*.1.gz $(DESTDIR)$(BASH_COMPLETION_DIR)/imagebuilder \
	  $(DESTDIR)$(ZSH_COMPLETION_DIR)/_imagebuilder $(DESTDIR)$(FISH_COMPLETION_DIR)/imagebuilder.fish \
	  $(DESTDIR)$(DOCDIR)/README.md
	-rmdir $(DESTDIR)$(DOCDIR)

# The .deb: `make install` into a staged /usr tree, then dpkg-deb (scripts/build-deb.sh).
deb:
	rm -rf $(DEB_STAGE)
	$(MAKE) install DESTDIR=$(abspath $(DEB_STAGE)) PREFIX=/usr
	bash scripts/build-deb.sh $(IMAGEBUILDER_BIN) $(DEB_STAGE) $(TARGET_DIR)/debian

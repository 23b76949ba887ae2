# Developer entry points. Both quick-start commands install what they need first (as root, idempotent).
CARGO ?= cargo

.PHONY: deps demo test test-fast lint bench

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

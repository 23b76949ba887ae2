# Developer entry points. Both quick-start commands install what they need first (as root, idempotent).
CARGO ?= cargo

.PHONY: deps demo test lint bench

deps:
	bash scripts/install-deps.sh

# The main job on the built-in default.
demo: deps
	$(CARGO) run --release -p imagebuilder -- demo

# The whole test suite (unit, conformance against pykickstart, CLI end-to-end, image builds and boots).
test: deps
	$(CARGO) test --workspace --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench: deps
	$(CARGO) bench --workspace

# The two commands of the README, and the steps they share. Each installs what it needs the first time.
#   make demo   compile every paper spec in specs/ and print its graph, parameters and training plan
#   make test   the whole test suite (what .ci/run runs)
# PRNN_TORCH=cuda selects the full CUDA libtorch instead of the CPU-only one (docs/install.md).

CARGO ?= cargo
PRNN  := target/release/prnn

.PHONY: demo test setup build doctor

setup:
	@bash scripts/install-libtorch.sh >/dev/null

build: setup
	$(CARGO) build --release --locked

test: setup
	$(CARGO) test --locked

demo: build
	$(PRNN) check specs/*.prnn
	@for spec in specs/*.prnn; do echo; echo "=== $$spec"; $(PRNN) compile $$spec || exit $$?; done

doctor: build
	$(PRNN) doctor

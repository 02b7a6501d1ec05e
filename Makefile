# The two commands of the README, and the steps they share. Each installs what it needs the first time.
#   make demo   prepare the shipped datasets (before/after table, features, cache), compile every paper spec
#               in specs/ and print its graph, parameters and training plan, check GRU4Rec row 1 against the
#               official code's figure, then train three of the paper's models and two modern recipes
#               (specs/modern) on data/yoochoose-cat and print their table against item-kNN, session-kNN and
#               popularity (examples/demo.toml)
#   make test   the gates (rustfmt, clippy with warnings denied), then the whole test suite (what .ci/run runs)
#   make bench  the speed and memory table of docs/performance.md (minutes; run on an idle machine)
# PRNN_TORCH=cuda selects the full CUDA libtorch instead of the CPU-only one (docs/install.md).

CARGO ?= cargo
PRNN  := target/release/prnn

.PHONY: demo test bench setup build doctor

setup:
	@bash scripts/install-libtorch.sh >/dev/null

build: setup
	$(CARGO) build --release --locked

test: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) test --locked

bench: setup
	$(CARGO) bench --locked --bench performance

demo: build
	@for config in examples/*.toml; do echo; echo "=== prnn data prepare $$config"; $(PRNN) data prepare $$config || exit $$?; done
	@echo; $(PRNN) check specs/*.prnn
	@for spec in specs/*.prnn; do echo; echo "=== $$spec"; $(PRNN) compile $$spec || exit $$?; done
	@echo; echo "=== specs/parallel_res.prnn on examples/yoochoose-categories.toml"
	@$(PRNN) compile specs/parallel_res.prnn --config examples/yoochoose-categories.toml
	@echo; echo "=== specs/parallel_id_image_text.prnn on examples/amazon-id-image-text.toml"
	@$(PRNN) compile specs/parallel_id_image_text.prnn --config examples/amazon-id-image-text.toml
	@echo; echo "=== GRU4Rec row 1 (specs/gru4rec_xe.prnn) on data/yoochoose-cat: train one epoch, evaluate"
	@PRNN=$(PRNN) scripts/gru4rec-row1.sh
	@echo; echo "=== prnn run --config examples/demo.toml: paper and modern models against the baselines on data/yoochoose-cat"
	@$(PRNN) run --config examples/demo.toml

doctor: build
	$(PRNN) doctor

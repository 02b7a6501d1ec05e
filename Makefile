# The two commands of the README, and the steps they share. Each installs what it needs the first time.
#   make demo   prepare the shipped datasets (before/after table, features, cache), compile every paper spec
#               in specs/ and print its graph, parameters and training plan, check GRU4Rec row 1 against the
#               official code's figure, then train three of the paper's models and two modern recipes
#               (specs/modern) on data/yoochoose-cat and print their table against item-kNN, session-kNN and
#               popularity (examples/demo.toml)
#   make test   the gates (rustfmt, clippy with warnings denied), then the whole test suite (what .ci/run runs),
#               with a Redis server of its own for `prnn serve`'s tests (scripts/with-redis.sh installs
#               redis-server from the OS packages if missing, starts it on a loopback port, stops it after)
#   make bench  the speed and memory table of docs/performance.md (minutes; run on an idle machine)
#   make fuzz   every fuzz target (fuzz/: cargo-fuzz on nightly, libFuzzer) for FUZZ_SECONDS each (default 60),
#               one after another; one hour in all: make fuzz FUZZ_SECONDS=600. A crash, a broken invariant or
#               an input slower than 10 s stops it, with the input in fuzz/artifacts/TARGET (docs/reliability.md)
# PRNN_TORCH=cuda selects the full CUDA libtorch instead of the CPU-only one (docs/install.md).

CARGO ?= cargo
PRNN  := target/release/prnn

.PHONY: demo test bench setup build doctor fuzz

setup:
	@bash scripts/install-libtorch.sh >/dev/null

build: setup
	$(CARGO) build --release --locked

test: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	bash scripts/with-redis.sh $(CARGO) test --locked

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

# Fuzzing: each target starts from its committed seeds (fuzz/seeds/TARGET) and keeps what it finds in
# fuzz/corpus/TARGET (not committed), with a dictionary of the format's words and a size cap that fits it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := spec config sessions item_table npy checkpoint
FUZZ_MAX_LEN_spec := 16384
FUZZ_MAX_LEN_config := 8192
FUZZ_MAX_LEN_sessions := 8192
FUZZ_MAX_LEN_item_table := 8192
FUZZ_MAX_LEN_npy := 16384
FUZZ_MAX_LEN_checkpoint := 65536
FUZZ_DICT_spec := spec.dict
FUZZ_DICT_config := config.dict
FUZZ_DICT_sessions := data.dict
FUZZ_DICT_item_table := data.dict
FUZZ_DICT_npy := npy.dict
FUZZ_DICT_checkpoint := checkpoint.dict

fuzz: $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-%:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@mkdir -p fuzz/corpus/$*
	cd fuzz && $(CARGO) +nightly fuzz run $* corpus/$* seeds/$* -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-rss_limit_mb=2048 -max_len=$(FUZZ_MAX_LEN_$*) -dict=dict/$(FUZZ_DICT_$*) -print_final_stats=1

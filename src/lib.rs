//! prnn: a compiler and trainer for parallel-RNN session-based recommenders.
//!
//! The pipeline, one folder per stage, data flowing one way (docs/architecture.md; `tests/architecture.rs`
//! keeps every module to its own and earlier stages):
//!
//! ```text
//! .prnn text --syntax--> syntax tree --check--> Model --ir--> Compiled (graph, parameter table, plan)
//!                                                 ^                 | bound to the data's sizes
//!                         run.toml --config-------+                 v
//!                              +--data--> Dataset ------------> Bound --lower--> Network + Executor --train--> eval
//! ```
//!
//! - [`rng`], [`runtime`], [`diagnostic`], [`checkpoint_file`]: random numbers, libtorch loading and its threads,
//!   diagnostics, the checksummed checkpoint format.
//! - [`syntax`]: the pest grammar and a spanned syntax tree; every broken line is reported at once.
//! - [`check`]: names resolved, defaults filled in, the paper's constraints enforced, all errors collected.
//! - [`ir`]: a petgraph dataflow graph with its parameter table and symbolic shapes, and the training
//!   schedule lowered into an explicit plan; bound to data, the only description of the model later stages
//!   read. Rendered as text (the snapshot format), DOT or JSON.
//! - [`config`]: the TOML run config that binds a spec to data, and `key=value` overrides.
//! - [`data`]: session files and item features read, cleaned, split and cached; session-parallel batches.
//! - [`lower`]: the bound IR as tensors, and the executor seam with its two implementations (libtorch
//!   autograd on any device, the fused CPU step).
//! - [`train`]: the plan executed over session-parallel mini-batches; checkpoints.
//! - [`eval`]: next-event prediction, Recall@K and MRR@K, the paired bootstrap, recommendations.
//! - [`baseline`]: popularity, item-kNN and session-kNN under the same protocol.
//! - [`run`]: run folders, the files `prnn train`, `eval` and `baseline` leave, and how they are read back.
//! - [`report`]: the experiment's table and plot, from its cells' run folders.
//! - [`experiment`]: an experiment's cells, its tuning choice, and what its folder already holds.
//! - [`serve`]: live recommendations over HTTP, session states in process or in Redis, micro-batched inference.
//!
//! Nothing in `syntax`, `check` or `ir` touches files or libtorch; `lower`, `train` and `eval` need the
//! `torch` feature. The CLI (src/main.rs, src/cli) wires the stages together.

#[cfg(feature = "torch")]
pub mod baseline;
#[cfg(feature = "torch")]
pub mod eval;
#[cfg(feature = "torch")]
pub mod experiment;
#[cfg(feature = "torch")]
pub mod lower;
#[cfg(feature = "torch")]
pub mod report;
#[cfg(feature = "torch")]
pub mod runtime;
#[cfg(feature = "torch")]
pub mod serve;
#[cfg(feature = "torch")]
pub mod train;

include!("compiler_half.rs");

//! patron: train, evaluate and score customer-data models from a TOML config.
//!
//! The library does the work; the `patron` binary (src/main.rs, src/cli.rs) only parses
//! arguments, picks the backend and prints. Modules, one per concern:
//! - [`config`]: the TOML config, `--set` overrides, defaults, validation
//! - [`data`]: reading CSV / Parquet with polars, whole or in chunks
//! - [`preprocess`]: column typing and the fitted preprocessing; [`text`]: text
//!   normalization and the two tokenizers (hashed n-grams, subwords)
//! - [`split`]: train / validation / test splits
//! - [`model`]: the networks; [`dropout`]: their dropout masks; [`sparse`]: `text_bag`'s
//!   hashed table and its sparse Adam updates
//! - [`train`]: the training loop, checkpoints and export; [`tune`]: searches over config
//!   values, one training run per trial
//! - [`calibration`], [`metrics`], [`report`], [`html_report`], [`charts`]: scores, numbers
//!   and reports; [`run_report`]: a run's reports, built and rebuilt
//! - [`inference`]: batch scoring, `predict` and `evaluate`; [`predictions`]: the file
//!   `predict` writes; [`host_mlp`]: the fused CPU forward of the MLP heads that scoring
//!   on flex uses
//! - [`importance`]: permutation feature importance; [`reasons`]: the columns behind each
//!   row's prediction; [`explain`]: what a text model reads
//! - [`drift`]: how far new data has moved from the training data (PSI)
//! - [`checkpoint`]: the run directory
//! - [`compare`]: runs side by side
//! - [`export`]: weights for other stacks (safetensors)
//! - [`backend`]: choosing the device
//! - [`progress`]: progress bars and lines
//! - [`error`]: the library's typed errors, turned into messages by the CLI

#![warn(missing_docs)]

pub mod backend;
pub mod calibration;
pub mod charts;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod drift;
pub mod dropout;
pub mod error;
pub mod explain;
pub mod export;
pub mod host_mlp;
pub mod html_report;
pub mod importance;
pub mod inference;
pub mod metrics;
pub mod model;
pub mod predictions;
pub mod preprocess;
pub mod progress;
pub mod reasons;
pub mod report;
pub mod run_report;
pub mod sparse;
pub mod split;
pub mod text;
pub mod train;
pub mod tune;

pub use error::{PatronError, Result};

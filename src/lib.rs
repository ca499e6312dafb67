//! patron: train, evaluate and score customer-data models from a TOML config.
//!
//! The library does the work; the `patron` binary (src/main.rs, src/cli.rs) only parses
//! arguments, picks the backend and prints. The modules are layers, and a module only
//! uses the ones below it (ARCHITECTURE.md; `tests/layers.rs` keeps it so):
//! - foundation, used by every layer: [`error`] (typed errors), [`config`] (the TOML
//!   config, overrides, defaults, checks), [`backend`] (the device), [`progress`]
//! - [`data`]: reading CSV / Parquet, column typing and the fitted preprocessing, text
//!   tokenizers, splits
//! - [`model`]: the networks, their dropout, `text_bag`'s sparse table, the fused CPU
//!   forward
//! - [`task`]: metrics and calibration of what is predicted
//! - [`run`]: the run directory, its manifest and checksums, export
//! - [`score`]: scoring a loaded run: predict, drift, reasons, importance, explanations
//! - [`report`]: report.json/md/html, charts, compare
//! - [`train`]: the training loop, epoch checkpoints, `patron tune`
//! - [`serve`]: `patron serve`, runs scored over HTTP

#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod model;
pub mod progress;
pub mod report;
pub mod run;
pub mod score;
pub mod serve;
pub mod task;
pub mod train;

pub use error::{PatronError, Result};

//! What is predicted and how it is judged: metrics and probability calibration.

pub mod calibration;
pub mod metrics;

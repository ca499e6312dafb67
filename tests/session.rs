//! The scoring session a long-lived process holds: opened from a run directory, it scores
//! a table to what `patron predict` writes for the same rows, and keeps doing so.

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::{assert_ok, predict_on, scores, train_on};
use patron::data::read_table;
use patron::score::session::Session;

#[test]
fn a_session_scores_a_table_as_predict_does() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/telco_churn.toml",
        &tmp.path().join("run"),
        &["train.epochs=3"],
    );
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/telco_customer_churn_ibm_7043.csv");
    let out = tmp.path().join("scores.csv");
    assert_ok(&predict_on(&run, &data, &out, "flex", &[]));
    let expected = scores(&out);

    let session = Session::open(&run, &Device::flex()).unwrap();
    let read = session.run().preprocess.read_options();
    let table = read_table(&data, &read).unwrap();
    let scored = session.score(&table, 0, &data).unwrap();
    assert_eq!(scored.probs.len(), expected.len());
    assert_eq!(scored.predicted.len(), expected.len());
    // predict writes six decimals.
    let worst = scored
        .probs
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 5e-7, "largest difference {worst}");
    assert!(scored.probs.iter().any(|&p| p > 0.5) && scored.probs.iter().any(|&p| p < 0.5));

    // The same session scores again to the same values (a server's second request).
    let again = session.score(&table, 0, &data).unwrap();
    assert_eq!(again, scored);
}

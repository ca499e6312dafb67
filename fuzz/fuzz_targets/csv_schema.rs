//! CSV reading, schema inference and preprocessing: any bytes give a table and encoded
//! rows, or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patron::config::Config;
use patron::data::{ReadOptions, read_table};
use patron::data::preprocess::Preprocessor;
use patron::task::labels::fit_labels;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, data).unwrap();
    let config = Config::from_toml_str(
        "[data]\npath = \"f.csv\"\ntarget = \"y\"\nmissing_values = [\"NA\"]\n",
        "fuzz.toml",
        &[],
    )
    .unwrap();
    let options = ReadOptions::new(b',', &["NA".to_string()]);
    let Ok(table) = read_table(&path, &options) else {
        return;
    };
    for name in table.column_names() {
        assert_eq!(table.cells(&name).map(|c| c.len()), Some(table.height()));
    }
    let Ok(labels) = fit_labels(&table, &config, &path) else {
        return;
    };
    let rows: Vec<usize> = (0..table.height()).collect();
    if let Ok((pre, _)) = Preprocessor::fit(&table, &rows, labels, &config, &path) {
        let encoded = pre.transform(&table, 0, &path).unwrap();
        assert_eq!(encoded.rows, table.height());
        assert!(encoded.numeric.iter().all(|x| x.is_finite()));
    }
});

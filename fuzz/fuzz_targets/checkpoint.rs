//! Checkpoint loading: any manifest.json bytes give a loaded run or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patron::run::load_run;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.json"), data).unwrap();
    let _ = load_run(dir.path(), &burn::tensor::Device::flex());
});

//! Every shipped config passes `patron validate`: its keys, data file, target and split.

mod common;

use common::{assert_ok, patron, stdout};

#[test]
fn every_shipped_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut configs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 6, "{configs:?}");
    let minilm = dir.join("../models/all-MiniLM-L6-v2/model.safetensors");
    for config in configs {
        let text = std::fs::read_to_string(&config).unwrap();
        if text.contains("models/all-MiniLM-L6-v2") && !minilm.is_file() {
            println!(
                "skipped {}: the pretrained model is absent (scripts/fetch_minilm.sh fetches it)",
                config.display()
            );
            continue;
        }
        let o = patron(&["validate", "--config", config.to_str().unwrap()]);
        assert_ok(&o);
        assert!(stdout(&o).contains("split: train"), "{}", stdout(&o));
    }
}

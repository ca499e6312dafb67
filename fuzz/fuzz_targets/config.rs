//! The config parser: any text (and any `--set` line) gives a Config or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patron::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The last line doubles as a `--set` override.
    let overrides: Vec<String> = text.lines().last().map(String::from).into_iter().collect();
    if let Ok(config) = Config::from_toml_str(&text, "fuzz.toml", &overrides) {
        // A resolved config always re-reads as itself.
        let again = Config::from_toml_str(&config.to_toml(), "again.toml", &[]).unwrap();
        assert_eq!(again, config);
    }
});

//! Text normalization and both tokenizers on any text: ids stay in range, lengths bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patron::data::text::{BagFeatures, SubwordVocab, normalize, special};

fuzz_target!(|data: &[u8]| {
    let text = normalize(&String::from_utf8_lossy(data));
    let bag = BagFeatures {
        buckets: 1021,
        word_ngrams: 3,
        char_ngram_min: 2,
        char_ngram_max: 6,
        max_length: 64,
    };
    let ids = bag.ids(&text);
    assert!(ids.iter().all(|&i| i < 1021));
    let vocab = SubwordVocab::fit([text.as_str(), "a b c"].into_iter(), 64, 16);
    let encoded = vocab.encode(&text);
    assert_eq!(encoded[0], special::CLS);
    assert!(encoded.len() <= 16);
    assert!(encoded.iter().all(|&i| (i as usize) < vocab.size()));
});

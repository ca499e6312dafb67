//! The tokenizer of a pretrained Hugging Face encoder: its `tokenizer.json`, or a BERT
//! `vocab.txt` with the lower-casing and accent settings of `tokenizer_config.json`, run by
//! the `tokenizers` crate (pure Rust) and truncated to `model.max_length` tokens, the
//! special tokens included. The run keeps the tokenizer's JSON, so scoring needs nothing
//! from the model directory.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{PatronError, Result};

/// A loaded tokenizer with its truncation.
#[derive(Clone)]
pub struct PretrainedTokenizer {
    inner: Tokenizer,
    /// The tokenizer as `tokenizer.json` text, stored in the run.
    json: String,
    max_length: usize,
    pad_id: u32,
}

impl PartialEq for PretrainedTokenizer {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.max_length == other.max_length
    }
}

/// How the run's preprocess.json holds the tokenizer: its JSON text and the truncation.
#[derive(Serialize, Deserialize)]
struct Stored {
    tokenizer_json: String,
    max_length: usize,
}

impl Serialize for PretrainedTokenizer {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        Stored {
            tokenizer_json: self.json.clone(),
            max_length: self.max_length,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PretrainedTokenizer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let stored = Stored::deserialize(deserializer)?;
        PretrainedTokenizer::from_json(
            Path::new("preprocess.json"),
            stored.tokenizer_json,
            stored.max_length,
        )
        .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Debug for PretrainedTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PretrainedTokenizer")
            .field("pad_id", &self.pad_id)
            .finish_non_exhaustive()
    }
}

impl PretrainedTokenizer {
    /// The tokenizer of the model directory `dir`: `tokenizer.json`, else `vocab.txt` as a
    /// BERT WordPiece tokenizer.
    pub fn from_dir(dir: &Path, max_length: usize) -> Result<Self> {
        let tokenizer_json = dir.join("tokenizer.json");
        if tokenizer_json.is_file() {
            let text = std::fs::read_to_string(&tokenizer_json)
                .map_err(|e| PatronError::io(&tokenizer_json, e))?;
            return Self::from_json(&tokenizer_json, text, max_length);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.is_file() {
            return Err(PatronError::data(
                dir,
                "has neither tokenizer.json nor vocab.txt; a model directory needs one of them",
            ));
        }
        let words = std::fs::read_to_string(&vocab).map_err(|e| PatronError::io(&vocab, e))?;
        let settings = dir.join("tokenizer_config.json");
        let settings: Value = match std::fs::read_to_string(&settings) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| PatronError::data(&settings, format!("is not valid JSON: {e}")))?,
            Err(_) => json!({}),
        };
        let text = bert_tokenizer_json(&vocab, &words, &settings)?;
        Self::from_json(&vocab, text, max_length)
    }

    /// A tokenizer from `tokenizer.json` text (`name` names it in errors).
    pub fn from_json(name: &Path, json: String, max_length: usize) -> Result<Self> {
        let mut inner = Tokenizer::from_str(&json).map_err(|e| {
            PatronError::data(name, format!("is not a tokenizer this version reads: {e}"))
        })?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_length.max(2),
                ..TruncationParams::default()
            }))
            .map_err(|e| PatronError::data(name, format!("cannot truncate: {e}")))?;
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .unwrap_or(0);
        Ok(PretrainedTokenizer {
            inner,
            json,
            max_length,
            pad_id,
        })
    }

    /// The token ids of `text`, with the special tokens ([CLS] ... [SEP]), at most
    /// `max_length` of them.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        // Encoding a str cannot fail for WordPiece (unknown pieces become [UNK]); a model
        // that can fail gives an empty list rather than a panic.
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// At most how many ids a text gets.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id that pads a batch.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// The `tokenizer.json` of a BERT WordPiece tokenizer over `words` (one token a line),
/// lower-casing and stripping accents as `tokenizer_config.json` says (`do_lower_case`,
/// default true; `strip_accents`, default: as lower-casing).
fn bert_tokenizer_json(path: &Path, words: &str, settings: &Value) -> Result<String> {
    let mut vocab = serde_json::Map::new();
    for (i, word) in words.lines().enumerate() {
        vocab.entry(word.to_string()).or_insert(json!(i));
    }
    let id = |token: &str| {
        vocab.get(token).cloned().ok_or_else(|| {
            PatronError::data(
                path,
                format!("has no {token} token; a BERT vocabulary needs it"),
            )
        })
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    id("[UNK]")?;
    let lowercase = settings["do_lower_case"].as_bool().unwrap_or(true);
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": true,
            "handle_chinese_chars": settings["tokenize_chinese_chars"].as_bool().unwrap_or(true),
            "strip_accents": settings["strip_accents"].as_bool(),
            "lowercase": lowercase,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", sep], "cls": ["[CLS]", cls]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        },
    });
    Ok(tokenizer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_bert")
    }

    /// Token ids of 52 texts (English, accents, Chinese, emoji, URLs, long ones past the
    /// truncation) equal to Python `tokenizers`' (scripts/make_bert_fixture.py).
    #[test]
    fn token_ids_match_python_tokenizers() {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture().join("expected.json")).unwrap(),
        )
        .unwrap();
        let max_length = expected["max_length"].as_u64().unwrap() as usize;
        let tokenizer = PretrainedTokenizer::from_dir(&fixture(), max_length).unwrap();
        let texts = expected["texts"].as_array().unwrap();
        assert!(texts.len() >= 50);
        for (text, ids) in texts.iter().zip(expected["ids"].as_array().unwrap()) {
            let want: Vec<u32> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tokenizer.encode(text.as_str().unwrap()), want, "{text}");
        }
        assert_eq!(tokenizer.pad_id(), 0);
    }

    /// A vocab.txt with tokenizer_config.json tokenizes as the tokenizer.json it came from.
    #[test]
    fn a_vocab_txt_tokenizes_as_its_tokenizer_json() {
        let dir = tempfile::tempdir().unwrap();
        let full = PretrainedTokenizer::from_dir(&fixture(), 24).unwrap();
        let json: Value = serde_json::from_str(full.json()).unwrap();
        let vocab = json["model"]["vocab"].as_object().unwrap();
        let mut words = vec![""; vocab.len()];
        for (word, id) in vocab {
            words[id.as_u64().unwrap() as usize] = word;
        }
        std::fs::write(dir.path().join("vocab.txt"), words.join("\n")).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"do_lower_case": true}"#,
        )
        .unwrap();
        let from_vocab = PretrainedTokenizer::from_dir(dir.path(), 24).unwrap();
        for text in [
            "The Service Was GREAT!",
            "服务很好",
            "café crème",
            "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2",
        ] {
            assert_eq!(from_vocab.encode(text), full.encode(text), "{text}");
        }
        std::fs::remove_file(dir.path().join("vocab.txt")).unwrap();
        let e = PretrainedTokenizer::from_dir(dir.path(), 24).unwrap_err();
        assert!(e.to_string().contains("vocab.txt"), "{e}");
    }
}

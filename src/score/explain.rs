//! Explanations of a text model for its report: the words and phrases that push the
//! prediction most toward each class, and the most confident mistakes.
//!
//! Each frequent word (or CJK character) and word pair of the evaluated texts is scored as
//! a text on its own, through the same tokenizer and network as any input, and compared
//! with the empty text. This probe needs no access to the network's insides, so it
//! explains `text_bag` and `text_transformer` alike.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::preprocess::{Encoded, TextPreprocess};
use crate::data::text::{normalize, units};
use crate::error::Result;
use crate::score::Scorer;
use crate::task::calibration::Calibration;
use crate::task::{Decision, Task};

/// Phrases listed per class.
pub const TOP_PHRASES: usize = 15;
/// Mistakes listed.
pub const TOP_MISTAKES: usize = 10;
/// A phrase must occur this often in the evaluated texts to be probed.
const MIN_COUNT: usize = 3;
/// Most phrases probed (the most frequent).
const MAX_CANDIDATES: usize = 3000;
/// Characters of a text shown in the mistakes table.
const SHOWN_CHARS: usize = 240;

/// A phrase and how far it moves the prediction toward a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phrase {
    /// The word, character or word pair (normalized).
    pub phrase: String,
    /// Change of the class's log-odds (against all other classes) when the phrase alone is
    /// scored instead of the empty text.
    pub push: f64,
    /// Occurrences in the evaluated texts.
    pub count: usize,
}

/// A wrong prediction made with high confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mistake {
    /// The text (cut to a few hundred characters).
    pub text: String,
    /// The true class.
    pub actual: String,
    /// The predicted class.
    pub predicted: String,
    /// The calibrated probability of the predicted class.
    pub probability: f64,
}

/// `explanations.json` of a text run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextExplanations {
    /// For each class, the phrases that push most toward it, strongest first.
    pub top_phrases: Vec<(String, Vec<Phrase>)>,
    /// The most confident wrong predictions, most confident first.
    pub mistakes: Vec<Mistake>,
}

/// What the explanation needs about the scored rows.
pub struct ScoredTexts<'a> {
    /// Raw texts of the evaluated rows.
    pub texts: &'a [String],
    /// Their class indices.
    pub labels: &'a [f32],
    /// Calibrated probabilities (`[rows]` for two classes, else `[rows * k]`).
    pub probs: &'a [f64],
    /// Class labels.
    pub classes: &'a [String],
    /// The run's task.
    pub task: &'a dyn Task,
    /// Its decision rule.
    pub decision: &'a Decision,
}

/// Probe the frequent phrases of `scored.texts` and pick the confident mistakes.
pub fn explain(
    scorer: &Scorer,
    text: &TextPreprocess,
    outputs: usize,
    scored: &ScoredTexts,
) -> Result<TextExplanations> {
    let candidates = frequent_phrases(scored.texts);
    Ok(TextExplanations {
        top_phrases: top_phrases(scorer, text, outputs, scored.classes, &candidates)?,
        mistakes: confident_mistakes(scored),
    })
}

/// The words and word pairs (CJK characters and their pairs) of at least `MIN_COUNT`
/// texts, most frequent first, at most `MAX_CANDIDATES`.
fn frequent_phrases(texts: &[String]) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in texts {
        let normalized = normalize(t);
        let u = units(&normalized);
        for w in &u {
            if w.chars().any(char::is_alphanumeric) {
                *counts.entry(w.to_string()).or_default() += 1;
            }
        }
        for pair in u.windows(2) {
            if pair.iter().all(|w| w.chars().any(char::is_alphanumeric)) {
                let sep = if pair
                    .iter()
                    .all(|w| w.chars().all(crate::data::text::is_cjk))
                {
                    ""
                } else {
                    " "
                };
                *counts
                    .entry(format!("{}{sep}{}", pair[0], pair[1]))
                    .or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|&(_, c)| c >= MIN_COUNT)
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    candidates.truncate(MAX_CANDIDATES);
    candidates
}

/// For each class, the candidate phrases that push a text toward it most when scored
/// alone against the empty text (change in log-odds), at most `TOP_PHRASES`.
fn top_phrases(
    scorer: &Scorer,
    text: &TextPreprocess,
    outputs: usize,
    classes: &[String],
    candidates: &[(String, usize)],
) -> Result<Vec<(String, Vec<Phrase>)>> {
    // Row 0 is the empty text, the baseline.
    let mut tokens = vec![text.tokenizer.ids("")];
    tokens.extend(candidates.iter().map(|(p, _)| text.tokenizer.ids(p)));
    let encoded = Encoded {
        rows: tokens.len(),
        tokens,
        ..Encoded::default()
    };
    let z = scorer.logits(&encoded)?;
    // Uncalibrated log-odds: what the network itself reads into the phrase.
    let log_odds = |row: usize, class: usize| {
        Calibration::identity().log_odds(&z[row * outputs..(row + 1) * outputs], class)
    };
    let push_of = |row: usize, class: usize| log_odds(row, class) - log_odds(0, class);
    let mut top_phrases = Vec::with_capacity(classes.len());
    for (c, class) in classes.iter().enumerate() {
        let mut phrases: Vec<Phrase> = candidates
            .iter()
            .enumerate()
            .map(|(i, (phrase, count))| Phrase {
                phrase: phrase.clone(),
                push: push_of(i + 1, c),
                count: *count,
            })
            .filter(|p| p.push > 0.0)
            .collect();
        phrases.sort_by(|a, b| b.push.total_cmp(&a.push).then(a.phrase.cmp(&b.phrase)));
        phrases.truncate(TOP_PHRASES);
        top_phrases.push((class.clone(), phrases));
    }
    Ok(top_phrases)
}

/// The misclassified rows the model was most sure of, at most `TOP_MISTAKES`.
fn confident_mistakes(scored: &ScoredTexts) -> Vec<Mistake> {
    let predicted = scored.task.decide(scored.probs, scored.decision);
    let confidence = |r: usize| scored.task.probability_of(scored.probs, r, predicted[r]);
    let mut wrong: Vec<usize> = (0..scored.labels.len())
        .filter(|&r| predicted[r] != scored.labels[r] as usize)
        .collect();
    wrong.sort_by(|&a, &b| confidence(b).total_cmp(&confidence(a)).then(a.cmp(&b)));
    wrong
        .into_iter()
        .take(TOP_MISTAKES)
        .map(|r| {
            let t = &scored.texts[r];
            let shown: String = t.chars().take(SHOWN_CHARS).collect();
            Mistake {
                text: if shown.len() < t.len() {
                    format!("{shown}...")
                } else {
                    shown
                },
                actual: scored.classes[scored.labels[r] as usize].clone(),
                predicted: scored.classes[predicted[r]].clone(),
                probability: confidence(r),
            }
        })
        .collect()
}

//! Text normalization and tokenization for English, Chinese and mixed text, and the two
//! featurizations the text models use: hashed word / character n-grams (`text_bag`) and a
//! subword vocabulary learned from the training split (`text_transformer`).
//!
//! Everything a run needs to tokenize again is saved in `preprocess.json`; nothing is
//! fetched at run time.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Unicode NFKC (full-width letters and digits become ASCII, ligatures split), lower case,
/// runs of whitespace collapsed to one space, trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = Collapsed {
        text: String::with_capacity(text.len()),
        space: false,
    };
    // ASCII is already in NFKC form and lowercases byte by byte; Han, kana and Hangul have
    // no case. Both skip the general case tables (8 % of the profile of scoring Chinese
    // texts; English 200k texts: 1.95-2.15 s -> 1.56-1.86 s).
    if text.is_ascii() {
        text.chars().for_each(|c| out.push(c.to_ascii_lowercase()));
    } else {
        for c in text.nfkc() {
            if c.is_ascii() || is_cjk(c) {
                out.push(c.to_ascii_lowercase());
            } else {
                c.to_lowercase().for_each(|l| out.push(l));
            }
        }
    }
    out.text
}

/// Text built character by character with runs of whitespace collapsed to one space and
/// none at the start (nor at the end: a pending space is only written before a character).
struct Collapsed {
    text: String,
    space: bool,
}

impl Collapsed {
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.space = !self.text.is_empty();
        } else {
            if self.space {
                self.text.push(' ');
                self.space = false;
            }
            self.text.push(c);
        }
    }
}

/// Whether a character belongs to a script written without spaces between words
/// (Han ideographs, kana), or to Hangul syllables, which are tokenized the same way.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x20000..=0x2FA1F) // extensions B-F, compatibility supplement
}

/// One unit of normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A word of letters and digits (apostrophes inside it kept: `don't`).
    Word(&'a str),
    /// A run of CJK characters; the models split it into characters and bigrams.
    Cjk(&'a str),
    /// Any other visible character: punctuation, emoji, symbols (`!`, `:`, `😀`).
    Symbol(&'a str),
}

/// Split normalized text into words, CJK runs and symbols.
pub fn tokenize<'a>(text: &'a str) -> Vec<Token<'a>> {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Word,
        Cjk,
    }
    let mut out = Vec::new();
    let mut run: Option<(Kind, usize)> = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let close = |run: &mut Option<(Kind, usize)>, end: usize, out: &mut Vec<Token<'a>>| {
        if let Some((kind, start)) = run.take() {
            let s = &text[start..end];
            out.push(match kind {
                Kind::Word => Token::Word(s),
                Kind::Cjk => Token::Cjk(s),
            });
        }
    };
    for (i, &(at, c)) in chars.iter().enumerate() {
        let kind = if is_cjk(c) {
            Some(Kind::Cjk)
        } else if c.is_alphanumeric()
            // An apostrophe inside a word: "don't".
            || (matches!(c, '\'' | '\u{2019}')
                && run.is_some_and(|(k, _)| k == Kind::Word)
                && chars
                    .get(i + 1)
                    .is_some_and(|&(_, n)| n.is_alphanumeric() && !is_cjk(n)))
        {
            Some(Kind::Word)
        } else {
            None
        };
        match kind {
            Some(k) if run.is_some_and(|(r, _)| r == k) => {}
            Some(k) => {
                close(&mut run, at, &mut out);
                run = Some((k, at));
            }
            None => {
                close(&mut run, at, &mut out);
                if !c.is_whitespace() {
                    out.push(Token::Symbol(&text[at..at + c.len_utf8()]));
                }
            }
        }
    }
    close(&mut run, text.len(), &mut out);
    out
}

/// The base units of a text after tokenization: words, single CJK characters and symbols,
/// in order (what word n-grams and the subword vocabulary are built over).
pub fn units(text: &str) -> Vec<&str> {
    unit_spans(text).into_iter().map(|r| &text[r]).collect()
}

/// Where each of [`units`] lies in `text` (byte ranges, in order).
pub fn unit_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    // Tokens are slices of `text`: their offsets are their distance from its start.
    let start_of = |s: &str| s.as_ptr() as usize - text.as_ptr() as usize;
    let mut out = Vec::new();
    for token in tokenize(text) {
        match token {
            Token::Word(w) | Token::Symbol(w) => out.push(start_of(w)..start_of(w) + w.len()),
            Token::Cjk(run) => {
                let base = start_of(run);
                out.extend(
                    run.char_indices()
                        .map(|(i, c)| base + i..base + i + c.len_utf8()),
                );
            }
        }
    }
    out
}

/// FNV-1a over a feature kind tag and the feature's bytes: stable across platforms and
/// versions, unlike `std`'s hasher.
fn fnv1a(tag: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(tag);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            eat(0x1f);
        }
        p.bytes().for_each(&mut eat);
    }
    h
}

/// Hashed n-gram features of `text_bag` (fastText-style), saved in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BagFeatures {
    /// Rows of the hashed embedding table.
    pub buckets: usize,
    /// Longest word n-gram (1: words only, 2: adds word pairs such as "not good").
    pub word_ngrams: usize,
    /// Shortest character n-gram of a word (0: none).
    pub char_ngram_min: usize,
    /// Longest character n-gram of a word.
    pub char_ngram_max: usize,
    /// Base units kept per text; longer texts are truncated.
    pub max_length: usize,
    /// Each character n-gram counted once per text (`model.char_ngram_once`; words and
    /// word n-grams keep their repeats): a long review's many words share prefixes and
    /// suffixes, whose rows otherwise outweigh the words that carry its sentiment. Absent
    /// (false) in runs of format 4 and older.
    #[serde(default)]
    pub once: bool,
    /// Weight of the character n-gram block (`model.char_ngram_weight`): see
    /// [`BagWeights`]. Absent (`None`) in runs of format 5 and older, whose ids all share
    /// one length normalization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_weight: Option<f32>,
}

/// Marks the id of a character n-gram when a bag weighs its blocks apart
/// ([`BagWeights`]); the table row is the id without it ([`bag_row`]). Free, since a table
/// has at most 2^24 rows.
pub const CHAR_TAG: u32 = 1 << 31;

/// The embedding-table row of a bag id.
pub fn bag_row(id: u32) -> usize {
    (id & !CHAR_TAG) as usize
}

/// 1 / sqrt(n): the length normalization TF-IDF's L2 norm gives `n` equal weights. Against
/// a plain mean it keeps the many n-grams of a long text from washing each other out;
/// measured on the shipped feedback configs it lowered test log loss (Chinese 0.39 ->
/// 0.35, VADER 0.74 -> 0.73) and lifted VADER macro-F1 by about 0.01 (README).
fn length_weight(n: usize) -> f32 {
    1.0 / (n.max(1) as f32).sqrt()
}

/// How the ids of one text share its bag (`text_bag` sums their rows times these shares).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BagWeights {
    /// `None`: every id `1 / sqrt(n)` of the text's `n` ids. `Some(w)`: the words with
    /// their n-grams `1 / sqrt(words)` each, and each character n-gram (tagged with
    /// [`CHAR_TAG`]) `w / sqrt(chars)`, never more than a word. Normalized together, a long
    /// review's hundreds of character n-grams (shared prefixes and suffixes of different
    /// words) outweigh the words that carry its opinion; the cap keeps the few character
    /// n-grams of an English word in a Chinese text from outweighing its characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_weight: Option<f32>,
}

impl BagWeights {
    /// The share of each word id and of each character n-gram id of `ids` (one text).
    pub fn shares(self, ids: &[u32]) -> (f32, f32) {
        match self.char_weight {
            None => {
                let w = length_weight(ids.len());
                (w, w)
            }
            Some(weight) => {
                let chars = ids.iter().filter(|&&id| id & CHAR_TAG != 0).count();
                let words = ids.len() - chars;
                let word = length_weight(words);
                let char = weight * length_weight(chars);
                (word, if words > 0 { char.min(word) } else { char })
            }
        }
    }

    /// The share of `id` given [`BagWeights::shares`] of its text.
    pub fn share_of(id: u32, (word, char): (f32, f32)) -> f32 {
        if id & CHAR_TAG != 0 { char } else { word }
    }
}

impl BagFeatures {
    /// How this text's ids share a bag.
    pub fn weights(&self) -> BagWeights {
        BagWeights {
            char_weight: self.char_weight,
        }
    }

    /// Ids of a normalized text (table rows, [`bag_row`]): its units, word n-grams, CJK
    /// bigrams and the character n-grams of each word (with `<` `>` marking the word's
    /// edges, so prefixes and suffixes are told apart). Unseen or misspelled words still
    /// share most of their character n-grams with known ones.
    pub fn ids(&self, text: &str) -> Vec<u32> {
        let mut units = units(text);
        units.truncate(self.max_length);
        let buckets = self.buckets.max(1) as u64;
        let mut out = Vec::with_capacity(units.len() * 6);
        let row = |h: u64| (h % buckets) as u32;
        for u in &units {
            out.push(row(fnv1a(b'u', &[u])));
        }
        for n in 2..=self.word_ngrams {
            for w in units.windows(n) {
                out.push(row(fnv1a(b'0' + n as u8, w)));
            }
        }
        let words = out.len();
        if self.char_ngram_min > 0 {
            let mut padded = String::new();
            for u in &units {
                let chars = u.chars().count();
                // Single CJK characters and symbols are units already.
                if chars < 2 {
                    continue;
                }
                padded.clear();
                padded.push('<');
                padded.push_str(u);
                padded.push('>');
                let bounds: Vec<usize> = padded
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([padded.len()])
                    .collect();
                let len = bounds.len() - 1;
                for n in self.char_ngram_min..=self.char_ngram_max.min(len) {
                    for start in 0..=len - n {
                        let gram = &padded[bounds[start]..bounds[start + n]];
                        if gram.len() < padded.len() {
                            out.push(row(fnv1a(b'c', &[gram])));
                        }
                    }
                }
            }
        }
        // The capacity guessed above is often several times the ids (CJK text has no
        // character n-grams): a chunk of 65,536 reviews held ~100 MB of it.
        if self.once {
            // First occurrences, in text order: a text without repeats keeps its ids as
            // they were.
            let mut seen = HashSet::with_capacity(out.len() - words);
            let mut kept = words;
            for i in words..out.len() {
                if seen.insert(out[i]) {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
        if self.char_weight.is_some() {
            out[words..].iter_mut().for_each(|id| *id |= CHAR_TAG);
        }
        out.shrink_to_fit();
        out
    }
}

/// Reserved ids of the subword vocabulary.
pub mod special {
    /// Padding (masked out).
    pub const PAD: u32 = 0;
    /// A unit none of whose pieces are known.
    pub const UNK: u32 = 1;
    /// The first position, pooled by `pooling = "cls"`.
    pub const CLS: u32 = 2;
    /// Number of reserved ids.
    pub const COUNT: u32 = 3;
}

/// A subword vocabulary learned from the training split (WordPiece-style: whole frequent
/// units, and frequent word-initial and continuation pieces for the rest), saved in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "VocabFile")]
pub struct SubwordVocab {
    /// Pieces in id order (ids start after the reserved ones); continuation pieces start
    /// with `##`.
    pub pieces: Vec<String>,
    /// Tokens per text including the leading CLS; longer texts are truncated.
    pub max_length: usize,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// The saved fields of a vocabulary; the lookup index is rebuilt on load.
#[derive(Deserialize)]
struct VocabFile {
    pieces: Vec<String>,
    max_length: usize,
}

impl From<VocabFile> for SubwordVocab {
    fn from(f: VocabFile) -> Self {
        SubwordVocab::new(f.pieces, f.max_length)
    }
}

/// Longest piece considered when learning the vocabulary, in characters.
const MAX_PIECE_CHARS: usize = 6;

impl SubwordVocab {
    /// Learn up to `size` ids (reserved ones included) from normalized training texts: the
    /// characters seen (most frequent first, so almost nothing becomes UNK), then the most
    /// frequent whole units and pieces seen at least twice.
    pub fn fit<'a>(texts: impl Iterator<Item = &'a str>, size: usize, max_length: usize) -> Self {
        let mut units: HashMap<&str, usize> = HashMap::new();
        for t in texts {
            for u in self::units(t) {
                *units.entry(u).or_default() += 1;
            }
        }
        let mut chars: HashMap<String, usize> = HashMap::new();
        let mut pieces: HashMap<String, usize> = HashMap::new();
        for (&u, &count) in &units {
            let bounds: Vec<usize> = u.char_indices().map(|(i, _)| i).chain([u.len()]).collect();
            let len = bounds.len() - 1;
            for i in 0..len {
                let c = &u[bounds[i]..bounds[i + 1]];
                let key = if i == 0 {
                    c.to_string()
                } else {
                    format!("##{c}")
                };
                *chars.entry(key).or_default() += count;
            }
            if len > 1 {
                // Whole units count double: a whole word is worth more than a fragment.
                *pieces.entry(u.to_string()).or_default() += 2 * count;
                for start in 0..len {
                    for n in 2..=MAX_PIECE_CHARS.min(len - start) {
                        if start == 0 && n == len {
                            continue;
                        }
                        let s = &u[bounds[start]..bounds[start + n]];
                        let key = if start == 0 {
                            s.to_string()
                        } else {
                            format!("##{s}")
                        };
                        *pieces.entry(key).or_default() += count;
                    }
                }
            }
        }
        let budget = size.saturating_sub(special::COUNT as usize);
        let mut ranked_chars: Vec<(String, usize)> = chars.into_iter().collect();
        ranked_chars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked_chars.truncate(budget);
        let mut ranked: Vec<(String, usize)> =
            pieces.into_iter().filter(|&(_, c)| c >= 2).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut all: Vec<String> = ranked_chars.into_iter().map(|(p, _)| p).collect();
        let room = budget.saturating_sub(all.len());
        all.extend(ranked.into_iter().take(room).map(|(p, _)| p));
        SubwordVocab::new(all, max_length)
    }

    /// A vocabulary from its pieces (as loaded from a run).
    pub fn new(pieces: Vec<String>, max_length: usize) -> Self {
        let index = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32 + special::COUNT))
            .collect();
        SubwordVocab {
            pieces,
            max_length,
            index,
        }
    }

    /// Ids in the model's input, reserved ones included.
    pub fn size(&self) -> usize {
        self.pieces.len() + special::COUNT as usize
    }

    /// Ids of a normalized text: CLS, then each unit split greedily into the longest known
    /// pieces; at most `max_length` ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = vec![special::CLS];
        let limit = self.max_length.max(1);
        let mut key = String::new();
        'units: for u in units(text) {
            let bounds: Vec<usize> = u.char_indices().map(|(i, _)| i).chain([u.len()]).collect();
            let len = bounds.len() - 1;
            let mut start = 0;
            let first = out.len();
            while start < len {
                let mut found = None;
                for end in (start + 1..=len.min(start + MAX_PIECE_CHARS.max(len))).rev() {
                    key.clear();
                    if start > 0 {
                        key.push_str("##");
                    }
                    key.push_str(&u[bounds[start]..bounds[end]]);
                    if let Some(&id) = self.index.get(key.as_str()) {
                        found = Some((id, end));
                        break;
                    }
                }
                if out.len() >= limit {
                    break 'units;
                }
                match found {
                    Some((id, end)) => {
                        out.push(id);
                        start = end;
                    }
                    None => {
                        // An unknown character: the whole unit becomes one UNK.
                        out.truncate(first);
                        out.push(special::UNK);
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `normalize` by its definition, without the fast paths.
    fn normalize_by_definition(text: &str) -> String {
        let lower: String = text.nfkc().flat_map(char::to_lowercase).collect();
        lower.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn fast_paths_match_the_definition() {
        let samples = [
            "  Plain ASCII,\tWith TABS\nand  NEWLINES  ",
            "ÉCOLE Straße İstanbul ΣΟΦΊΑ",
            "ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ　１２３",
            "这家店的服务很好ＯＫ，但是 Delivery 太慢了",
            "カタカナ ひらがな 한국어 TEXT",
            "ﬁne ligatures ① ㍻ and emoji 😀 ",
            "\u{2003}em\u{00A0}spaces\u{3000}",
            "",
        ];
        for text in samples {
            assert_eq!(normalize(text), normalize_by_definition(text), "{text:?}");
        }
        // Random strings over ranges with case, width forms, CJK and spaces.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let ranges = [
            (0x20u32, 0x7F),
            (0xC0, 0x250),
            (0x370, 0x400),
            (0x400, 0x530),
            (0x1E00, 0x1F00),
            (0x2000, 0x2070),
            (0x3000, 0x3100),
            (0x4E00, 0x4F00),
            (0xAC00, 0xAD00),
            (0xFF00, 0xFFF0),
        ];
        for _ in 0..2_000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let (lo, hi) = ranges[(state >> 33) as usize % ranges.len()];
                let code = lo + ((state >> 7) as u32) % (hi - lo);
                text.extend(char::from_u32(code));
            }
            assert_eq!(normalize(&text), normalize_by_definition(&text), "{text:?}");
        }
    }

    #[test]
    fn normalizes_width_case_and_space() {
        assert_eq!(normalize("  ＧＲＥＡＴ\t\tPhone\n"), "great phone");
        assert_eq!(normalize("ﬁne ①"), "fine 1");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize(" \n\t "), "");
    }

    #[test]
    fn tokenizes_english() {
        let t = normalize("Don't buy it!! Battery died :(");
        assert_eq!(
            tokenize(&t),
            vec![
                Token::Word("don't"),
                Token::Word("buy"),
                Token::Word("it"),
                Token::Symbol("!"),
                Token::Symbol("!"),
                Token::Word("battery"),
                Token::Word("died"),
                Token::Symbol(":"),
                Token::Symbol("("),
            ]
        );
    }

    #[test]
    fn tokenizes_chinese_and_mixed() {
        let t = normalize("这本书很好，iPhone也不错");
        assert_eq!(
            tokenize(&t),
            vec![
                Token::Cjk("这本书很好"),
                Token::Symbol(","),
                Token::Word("iphone"),
                Token::Cjk("也不错"),
            ]
        );
        assert_eq!(
            units(&t),
            vec![
                "这", "本", "书", "很", "好", ",", "iphone", "也", "不", "错"
            ]
        );
    }

    #[test]
    fn keeps_emoji_and_handles_empty() {
        let t = normalize("love it 😀👍");
        assert_eq!(units(&t), vec!["love", "it", "😀", "👍"]);
        assert!(tokenize("").is_empty());
        assert!(units(&normalize("   ")).is_empty());
    }

    fn bag() -> BagFeatures {
        BagFeatures {
            buckets: 1 << 20,
            word_ngrams: 2,
            char_ngram_min: 3,
            char_ngram_max: 5,
            max_length: 100,
            once: false,
            char_weight: None,
        }
    }

    #[test]
    fn bag_features_count_and_share_subwords() {
        let b = bag();
        // "good": 1 unit, no pairs; "<good>" has 6 chars: 4 trigrams, 3 4-grams, 2 5-grams
        // (the whole padded word is the unit itself, so it is not repeated).
        assert_eq!(b.ids("good").len(), 1 + 4 + 3 + 2);
        // Two words: 2 units + 1 pair + n-grams of each.
        assert_eq!(b.ids("not good").len(), 2 + 1 + (3 + 2) + 9);
        // A misspelling shares character n-grams with the word.
        let a: std::collections::HashSet<u32> = b.ids("excellent").into_iter().collect();
        let m: std::collections::HashSet<u32> = b.ids("excelent").into_iter().collect();
        assert!(a.intersection(&m).count() >= 8);
        // CJK: each character, each adjacent pair, plus n-grams of the non-CJK word only.
        assert_eq!(b.ids("很好").len(), 2 + 1);
        assert!(b.ids("").is_empty());
        assert!(b.ids("good").iter().all(|&i| (i as usize) < b.buckets));
        // Stable hashing: the same text always gives the same rows.
        assert_eq!(b.ids("很好 good"), b.ids("很好 good"));
    }

    #[test]
    fn truncates_long_text() {
        let b = BagFeatures {
            max_length: 3,
            char_ngram_min: 0,
            ..bag()
        };
        assert_eq!(b.ids("a b c d e f").len(), 3 + 2);
    }

    #[test]
    fn once_counts_each_character_ngram_once() {
        let b = bag();
        let once = BagFeatures {
            once: true,
            ..bag()
        };
        // "good good": 2 units, 1 pair and twice the 9 character n-grams of "good"; with
        // `once` the words keep their repeats and the character n-grams count once.
        assert_eq!(b.ids("good good").len(), 2 + 1 + 2 * 9);
        let ids = once.ids("good good");
        assert_eq!(ids.len(), 2 + 1 + 9);
        assert_eq!(ids[..3], b.ids("good good")[..3]);
        let distinct: std::collections::HashSet<u32> = b.ids("good good").into_iter().collect();
        assert_eq!(
            ids.iter().collect::<std::collections::HashSet<_>>().len(),
            distinct.len()
        );
        // Shared suffixes of different words count once too; a text without repeats keeps
        // its ids in their order.
        assert!(once.ids("running jumping").len() < b.ids("running jumping").len());
        assert_eq!(once.ids("not good"), b.ids("not good"));
    }

    #[test]
    fn blocks_weigh_words_and_character_ngrams_apart() {
        let joint = bag();
        let blocks = BagFeatures {
            char_weight: Some(0.5),
            ..bag()
        };
        // Same rows, the character n-grams tagged: "not good" is 3 word ids and 14
        // character n-gram ids.
        let (a, b) = (joint.ids("not good"), blocks.ids("not good"));
        assert_eq!(
            a.iter().map(|&i| bag_row(i)).collect::<Vec<_>>(),
            b.iter().map(|&i| bag_row(i)).collect::<Vec<_>>()
        );
        assert!(a.iter().all(|&i| i & CHAR_TAG == 0));
        assert_eq!(b.iter().filter(|&&i| i & CHAR_TAG != 0).count(), 14);
        assert!(b[..3].iter().all(|&i| i & CHAR_TAG == 0));
        // Normalized together, every id gets 1/sqrt(17); apart, the words 1/sqrt(3) and
        // the character n-grams 0.5/sqrt(14).
        let close = |x: f32, y: f32| (x - y).abs() < 1e-6;
        let (w, c) = joint.weights().shares(&a);
        assert!(close(w, 1.0 / 17f32.sqrt()) && close(c, w));
        let (w, c) = blocks.weights().shares(&b);
        assert!(
            close(w, 1.0 / 3f32.sqrt()) && close(c, 0.5 / 14f32.sqrt()),
            "{w} {c}"
        );
        assert_eq!(BagWeights::share_of(b[0], (w, c)), w);
        assert_eq!(BagWeights::share_of(b[5], (w, c)), c);
        // A short English word in a Chinese text: 6 units and 5 pairs, and the 2 character
        // n-grams of "<ok>" would get 0.5/sqrt(2) each, more than a character's
        // 1/sqrt(11); the cap holds them to a word's share.
        let mixed = blocks.ids("这本书很好 ok");
        let (w, c) = blocks.weights().shares(&mixed);
        assert_eq!(mixed.iter().filter(|&&i| i & CHAR_TAG != 0).count(), 2);
        assert!(close(w, 1.0 / 11f32.sqrt()) && close(c, w), "{w} {c}");
        // Character n-grams alone (no words: not produced by `ids`, but shares must
        // still be finite).
        let (_, c) =
            blocks
                .weights()
                .shares(&[CHAR_TAG | 1, CHAR_TAG | 2, CHAR_TAG | 3, CHAR_TAG | 4]);
        assert!(close(c, 0.25));
    }

    #[test]
    fn runs_before_format_6_keep_one_normalization() {
        // A format-5 run's features have no `char_weight`: untagged ids, every id the
        // same share, as that run was trained.
        let old: BagFeatures = serde_json::from_str(
            r#"{"buckets": 64, "word_ngrams": 2, "char_ngram_min": 3, "char_ngram_max": 5, "max_length": 10}"#,
        )
        .unwrap();
        assert_eq!(old.char_weight, None);
        let ids = old.ids("not good");
        assert!(ids.iter().all(|&i| i & CHAR_TAG == 0));
        let (w, c) = old.weights().shares(&ids);
        assert_eq!((w, c), (1.0 / 17f32.sqrt(), 1.0 / 17f32.sqrt()));
        let new = BagFeatures {
            char_weight: Some(0.5),
            ..old
        };
        let back: BagFeatures =
            serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn subword_vocab_splits_unseen_words() {
        let texts = ["playing games", "played games", "player plays", "play"];
        let v = SubwordVocab::fit(texts.iter().copied(), 200, 16);
        let known = v.encode("playing");
        assert_eq!(known[0], special::CLS);
        assert!(!known.contains(&special::UNK));
        // An unseen word made of known pieces still encodes without UNK.
        let unseen = v.encode("playings");
        assert!(!unseen.contains(&special::UNK), "{unseen:?}");
        // A character never seen is UNK; the length limit holds.
        assert_eq!(v.encode("ж"), vec![special::CLS, special::UNK]);
        assert!(v.encode(&"play ".repeat(100)).len() <= 16);
        // A vocabulary read back from JSON encodes the same.
        let back: SubwordVocab = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back.encode("playings"), unseen);
    }

    #[test]
    fn subword_vocab_on_chinese() {
        let texts = ["这本书很好", "这本书不好", "很好很好"];
        let v = SubwordVocab::fit(texts.iter().copied(), 100, 32);
        let ids = v.encode("这本书很好");
        assert!(ids.len() >= 2 && !ids.contains(&special::UNK));
    }
}

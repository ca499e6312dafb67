//! Column typing and the preprocessing fitted on the training split: robust scaling with
//! imputation and missing indicators for numbers, vocabularies with a reserved "unseen"
//! index for categories. Saved in the run as `preprocess.json` so scoring applies the
//! exact same transform.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Binning, Config, DateOrder, DecimalMark, Loss, ModelKind, TargetTransform};
use crate::data::binning::{
    BinTarget, exact_values, point_mass_edges, quantile, quantile_edges, telling_values, tree_edges,
};
use crate::data::crosses::{
    ADDITIVE_BINS, CROSS_BINS, CROSS_T, Classes, Levels, MAX_CROSS_LEVELS, PairGain,
    additive_out_of_fold, bin_of, cut_edges, pair_gain,
};
use crate::data::dates::{DatePart, parse_date_in};
use crate::data::hf_tokenizer::PretrainedTokenizer;
use crate::data::numbers::{parse_comma_number, parse_number, parse_number_in};
use crate::data::text::{BagFeatures, SubwordVocab, normalize};
use crate::data::{ReadOptions, SheetChoice, Table};
use crate::error::{PatronError, Result};

/// Version of the `preprocess.json` layout.
pub const PREPROCESS_VERSION: u32 = 1;

/// Standardized values beyond this magnitude are compressed logarithmically, so outliers
/// keep their order without dominating the network's inputs.
const SOFT_CLIP: f64 = 3.0;
/// Hard bound after soft compression (guards against values like 1e308).
const HARD_CLIP: f64 = 20.0;

/// One input feature and the statistics fitted for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// A number, standardized as (x - median) / scale.
    Numeric {
        /// Column name.
        name: String,
        /// Training median (also the imputed value).
        median: f64,
        /// Robust scale: IQR / 1.349, or the standard deviation when the IQR is zero.
        scale: f64,
        /// Whether an extra 0/1 input marks missing values (the column had some in training).
        missing_indicator: bool,
        /// Bin edges of the piecewise-linear encoding (empty: none), at quantiles or at a
        /// tree's splits on the target (`data.binning`). Each of the `edges.len() - 1`
        /// bins adds an input that rises from 0 to 1 across its bin, which lets the MLP
        /// model non-monotone effects the way tree ensembles do.
        #[serde(default)]
        edges: Vec<f64>,
        /// Training values that each add a 0/1 input, set when the row's value is exactly
        /// that (`data.exact_values`; empty in runs of format 6 and older).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        points: Vec<f64>,
        /// The column holds dates ([`parse_date_in`]): its value is the days since 1970-01-01.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        date: bool,
        /// The order of a date's fields (absent: ISO, as in runs of format 8 and older).
        #[serde(default, skip_serializing_if = "DateOrder::is_iso")]
        date_order: DateOrder,
        /// Parts of a date that each add one 0/1 input per value, after the exact-value
        /// flags (empty in runs of format 8 and older).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        calendar: Vec<DatePart>,
        /// A cell that is not a number reads as missing: in training the column was at
        /// least 90 % numbers with a few words (`-`, `unknown`), as `pd.to_numeric(errors=
        /// "coerce")` reads it. Otherwise such a cell at scoring is an error.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        text_missing: bool,
        /// The column's cells write numbers with a decimal comma ([`parse_comma_number`]),
        /// as they are read at scoring too (false in runs of format 9 and older).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        decimal_comma: bool,
        /// The training minimum and maximum, which a value is clipped to before it is
        /// scaled and binned (`data.clip_numeric`; absent for dates, when that is off and in
        /// runs of format 11 and older, whose values past the range reach the model
        /// log-compressed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        range: Option<[f64; 2]>,
    },
    /// A category, mapped to an embedding row; index 0 means missing or unseen.
    Categorical {
        /// Column name.
        name: String,
        /// Known categories, most frequent first; category i has index i + 1.
        categories: Vec<String>,
    },
    /// Two columns read as one category (`data.crosses`, [`crate::data::crosses`]): a
    /// category paired with another column's category or coarse bin. Both columns are
    /// features of their own as well; this one follows them.
    Cross {
        /// Display name, `"a × b"`.
        name: String,
        /// The two columns.
        columns: [String; 2],
        /// Per column: where a number is cut into bins ([`cut_edges`]); empty for a
        /// category.
        edges: [Vec<f64>; 2],
        /// Known cells ([`cross_cell`]), most frequent first; cell i has index i + 1.
        categories: Vec<String>,
    },
}

impl Feature {
    /// How many dense inputs this feature feeds the model.
    pub fn numeric_inputs(&self) -> usize {
        match self {
            Feature::Numeric {
                missing_indicator,
                edges,
                points,
                calendar,
                ..
            } => {
                1 + usize::from(*missing_indicator)
                    + edges.len().saturating_sub(1)
                    + points.len()
                    + calendar.iter().map(|p| p.values()).sum::<usize>()
            }
            Feature::Categorical { .. } | Feature::Cross { .. } => 0,
        }
    }

    /// A number's dense inputs ([`Feature::numeric_inputs`] of them, into `out`) for its
    /// `value` (a date's: days since 1970-01-01); nothing for a category.
    fn encode_value(&self, value: Option<f64>, out: &mut [f32]) {
        let Feature::Numeric {
            median,
            scale,
            missing_indicator,
            edges,
            points,
            calendar,
            range,
            ..
        } = self
        else {
            return;
        };
        let parts: usize = calendar.iter().map(|p| p.values()).sum();
        let (number, mut rest) = out.split_at_mut(out.len() - parts);
        // A tree scores a value past its training range as the nearest end of it; the MLP's
        // layers would extrapolate instead.
        let clipped = match range {
            Some([lo, hi]) => value.map(|x| x.clamp(*lo, *hi)),
            None => value,
        };
        encode_number(
            clipped,
            *median,
            *scale,
            *missing_indicator,
            edges,
            points,
            number,
        );
        rest.fill(0.0);
        for part in calendar {
            let (flags, after) = rest.split_at_mut(part.values());
            if let Some(days) = value {
                flags[part.of(days)] = 1.0;
            }
            rest = after;
        }
    }

    /// A number's raw value from its scaled input `z` (the inverse of the centring,
    /// scaling and compression), for labels; `None` for a category, or a value clipped at
    /// the compression's limit.
    pub fn unscale(&self, z: f64) -> Option<f64> {
        let Feature::Numeric { median, scale, .. } = self else {
            return None;
        };
        let a = z.abs();
        if a >= HARD_CLIP {
            return None;
        }
        let unsquashed = if a <= SOFT_CLIP {
            a
        } else {
            SOFT_CLIP + (a - SOFT_CLIP).exp_m1()
        };
        Some(median + scale * unsquashed.copysign(z))
    }

    /// The column name.
    pub fn name(&self) -> &str {
        match self {
            Feature::Numeric { name, .. }
            | Feature::Categorical { name, .. }
            | Feature::Cross { name, .. } => name,
        }
    }

    /// The known categories of a category or a cross (empty for a number): each takes an
    /// embedding row after the one for missing or unseen values.
    pub fn categories(&self) -> &[String] {
        match self {
            Feature::Categorical { categories, .. } | Feature::Cross { categories, .. } => {
                categories
            }
            Feature::Numeric { .. } => &[],
        }
    }

    /// Whether the feature is one input column (a cross reads two and is none).
    pub fn is_column(&self) -> bool {
        !matches!(self, Feature::Cross { .. })
    }

    /// Whether the feature takes an embedding row (a category or a cross).
    pub fn is_categorical(&self) -> bool {
        !matches!(self, Feature::Numeric { .. })
    }

    /// Whether the column holds dates (read as days since 1970-01-01).
    pub fn is_date(&self) -> bool {
        matches!(self, Feature::Numeric { date: true, .. })
    }
}

/// What one column set to its typical value does to one cross that reads it
/// ([`Preprocessor::cross_occlusions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CrossOcclusion {
    /// The column's index among the features.
    pub column: usize,
    /// The cross's place among the category inputs.
    pub input: usize,
    /// For each of the cross's embedding rows (from its missing-or-unseen row), the row it
    /// moves to; indices are into the shared embedding table.
    pub to: Vec<i64>,
}

/// A run of a row's numeric inputs with a known pattern ([`Preprocessor::sparse_inputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRun {
    /// A number's bins: leading 1s, at most one fraction, then 0s.
    Bins(Range<usize>),
    /// A number's exact-value flags: one 1 at most.
    Flags(Range<usize>),
}

/// Where one feature's inputs sit in an encoded row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `len` dense inputs from `start` of the row's numeric block.
    Numeric {
        /// First input.
        start: usize,
        /// Inputs of the feature (value, missing indicator, bins).
        len: usize,
    },
    /// The `index`-th category index of the row.
    Categorical {
        /// Position among the categorical inputs.
        index: usize,
    },
}

/// The fitted preprocessing of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// Layout version of this file.
    pub version: u32,
    /// The target column.
    pub target: String,
    /// Class labels: `[negative, positive]` for two classes, otherwise sorted by name; a
    /// row's target is its index here.
    pub labels: Vec<String>,
    /// The id column carried into predictions, if any.
    pub id: Option<String>,
    /// Input features in model order.
    pub features: Vec<Feature>,
    /// CSV separator used to read data.
    pub delimiter: String,
    /// Cell values read as missing.
    pub missing_values: Vec<String>,
    /// The workbook sheet training read by name (`data.sheet`), which scoring reads where
    /// a workbook has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The text columns and tokenizer of a text model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextPreprocess>,
    /// A regression target (then `labels` is empty): how the network's output maps to
    /// the target's units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<NumericTarget>,
}

/// A regression target as the network learns it, fitted on the training rows: the
/// transform, then (identity link) standardization or (log link) division by the mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericTarget {
    /// Applied to the target before everything else, inverted at scoring.
    pub transform: TargetTransform,
    /// The loss trained; Poisson and Tweedie use a log link.
    pub loss: Loss,
    /// Identity link: the network output z stands for `center + scale * z` of the
    /// transformed target; log link: for `scale * exp(z)` (center 0).
    pub center: f64,
    /// See `center`.
    pub scale: f64,
    /// Huber's delta, in units of `scale`.
    pub huber_delta: f64,
    /// Tweedie's variance power.
    pub tweedie_power: f64,
    /// Quantiles predicted beside the value, increasing (each one more output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<f64>,
    /// The target column writes numbers with a decimal comma ([`reads_with_comma`]), as
    /// `evaluate` reads it too (false in runs of format 9 and older).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decimal_comma: bool,
}

/// How a text model reads its text: the columns (joined with a space) and the tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPreprocess {
    /// Text columns.
    pub columns: Vec<String>,
    /// The fitted tokenizer.
    pub tokenizer: Tokenizer,
}

/// A text model's tokenizer, saved in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tokenizer {
    /// Hashed n-grams (`text_bag`).
    HashedNgrams(BagFeatures),
    /// A learned subword vocabulary (`text_transformer`).
    Subwords(SubwordVocab),
    /// A pretrained encoder's own tokenizer (`text_encoder`).
    Pretrained(Box<PretrainedTokenizer>),
}

impl Tokenizer {
    /// At most how many units of a text the model reads (with subwords, each unit is at
    /// least one id).
    pub fn max_units(&self) -> usize {
        match self {
            Tokenizer::HashedNgrams(b) => b.max_length,
            Tokenizer::Subwords(v) => v.max_length,
            Tokenizer::Pretrained(t) => t.max_length(),
        }
    }

    /// Ids of one text, normalized by patron (a pretrained tokenizer normalizes as it
    /// was trained to, so it is given the text as written: see [`Tokenizer::normalizes`]).
    pub fn ids(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::HashedNgrams(b) => b.ids(text),
            Tokenizer::Subwords(v) => v.encode(text),
            Tokenizer::Pretrained(t) => t.encode(text),
        }
    }

    /// Whether the tokenizer brings its own normalization (lower-casing, accents): a
    /// cased pretrained model must see the text as written.
    pub fn normalizes(&self) -> bool {
        matches!(self, Tokenizer::Pretrained(_))
    }
}

/// Rows turned into model inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    /// Number of rows.
    pub rows: usize,
    /// Dense values per row.
    pub numeric_width: usize,
    /// Categorical indices per row.
    pub categorical_count: usize,
    /// Dense inputs, row-major `[rows, numeric_width]`.
    pub numeric: Vec<f32>,
    /// Embedding-table rows, row-major `[rows, categorical_count]` (offsets already applied).
    pub categorical: Vec<i64>,
    /// Token ids of each row (text models only).
    pub tokens: Vec<Vec<u32>>,
}

impl Encoded {
    /// The rows of `parts` one after another (parts of one preprocessing).
    pub fn concat(parts: &[&Encoded]) -> Encoded {
        let first = parts.first();
        Encoded {
            rows: parts.iter().map(|p| p.rows).sum(),
            numeric_width: first.map_or(0, |p| p.numeric_width),
            categorical_count: first.map_or(0, |p| p.categorical_count),
            numeric: parts
                .iter()
                .flat_map(|p| p.numeric.iter().copied())
                .collect(),
            categorical: parts
                .iter()
                .flat_map(|p| p.categorical.iter().copied())
                .collect(),
            tokens: parts
                .iter()
                .flat_map(|p| p.tokens.iter().cloned())
                .collect(),
        }
    }

    /// The given rows, in order.
    pub fn subset(&self, rows: &[usize]) -> Encoded {
        let (w, c) = (self.numeric_width, self.categorical_count);
        Encoded {
            rows: rows.len(),
            numeric_width: w,
            categorical_count: c,
            numeric: rows
                .iter()
                .flat_map(|&r| self.numeric[r * w..(r + 1) * w].iter().copied())
                .collect(),
            categorical: rows
                .iter()
                .flat_map(|&r| self.categorical[r * c..(r + 1) * c].iter().copied())
                .collect(),
            tokens: if self.tokens.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| self.tokens[r].clone()).collect()
            },
        }
    }
}

/// What fitting learned besides the transform: messages worth showing the user.
#[derive(Debug, Default)]
pub struct FitNotes {
    /// Human-readable warnings (capped vocabularies, constant columns, ...).
    pub warnings: Vec<String>,
    /// What fitting chose that the user should hear: the pairs it crossed, and why.
    pub crossed: Vec<String>,
}

/// The closest column name, for "did you mean" hints.
fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&name.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        // A third of the name may differ: "tenure" suggests "Tenure" or "tenur", not
        // "gender" (3 edits away).
        .filter(|(d, _)| *d <= name.len().max(3) / 3)
        .min()
        .map(|(_, c)| c.as_str())
}

/// [`missing_column`] of a column `table` lacks; where `table` is a workbook's first
/// sheet, read because nothing named another, the message names the sheets it did not read.
fn missing_from(table: &Table, path: &Path, what: &str, name: &str) -> PatronError {
    let mut err = missing_column(path, what, name, &table.column_names());
    if let (PatronError::Data { message, .. }, Some((first, others))) =
        (&mut err, table.unread_sheets())
    {
        message.push_str(&format!(
            " (read the workbook's first sheet, {first:?}; it also has {}: `--sheet NAME` reads another, `data.sheet` in training)",
            quoted_list(others)
        ));
    }
    err
}

/// "`what` column NAME not found" in `path`, with the closest of `columns` as a hint (or
/// the first few columns when none is close).
pub fn missing_column(path: &Path, what: &str, name: &str, columns: &[String]) -> PatronError {
    let hint = match closest(name, columns) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => format!("; columns are: {}", preview(columns)),
    };
    PatronError::data(path, format!("{what} column {name:?} not found{hint}"))
}

fn preview(columns: &[String]) -> String {
    let shown: Vec<&str> = columns.iter().take(12).map(|s| s.as_str()).collect();
    let more = columns.len().saturating_sub(12);
    if more > 0 {
        format!("{} (+{more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// A number column's cell that is not a finite number (`row`: 0-based in the input).
fn not_finite(path: &Path, name: &str, row: usize, value: impl std::fmt::Debug) -> PatronError {
    PatronError::data(
        path,
        format!(
            "column {name:?} row {}: {value:?} is not a finite number; the model was trained on numbers here",
            row + 1
        ),
    )
}

/// A date column's cell that is not a date (`row`: 0-based in the input).
fn not_a_date(path: &Path, name: &str, row: usize, value: &str, order: DateOrder) -> PatronError {
    let form = match order {
        DateOrder::Mdy => "MM/DD/YYYY",
        DateOrder::Dmy => "DD/MM/YYYY",
        DateOrder::Auto | DateOrder::Ymd => "YYYY-MM-DD",
    };
    PatronError::data(
        path,
        format!(
            "column {name:?} row {}: {value:?} is not a date ({form}, optionally with a time); the model was trained on dates here",
            row + 1
        ),
    )
}

/// Which inferred type a column gets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnType {
    /// Every present value is a number (`comma`: written with a decimal comma).
    Numeric {
        comma: bool,
    },
    /// At least 90 % of 20 or more present values are numbers (`numbers` cells, with a
    /// decimal comma where `comma`): the others (`words` cells, the most frequent first in
    /// `examples`) read as missing.
    MostlyNumeric {
        comma: bool,
        numbers: usize,
        words: usize,
        examples: Vec<String>,
    },
    /// Every present value is a date in this order ([`parse_date_in`]); `guessed`: both
    /// day-first and month-first read every value.
    Date {
        order: DateOrder,
        guessed: bool,
    },
    Categorical,
}

/// Decide numeric vs categorical from the values, honouring config overrides; `mark` is
/// the decimal mark its numbers may be written with.
fn infer_type(
    path: &Path,
    name: &str,
    cells: &[Option<&str>],
    read: &ReadOptions,
    config: &Config,
    mark: DecimalMark,
) -> Result<ColumnType> {
    if config.data.categorical.iter().any(|c| c == name) {
        return Ok(ColumnType::Categorical);
    }
    let forced_numeric = config.data.numeric.iter().any(|c| c == name);
    let mut present = 0usize;
    // Present values that read as numbers with a decimal point, and with a comma.
    let mut numeric = 0usize;
    let mut comma = 0usize;
    // Present values that read as dates in each order: ISO, month first, day first.
    let mut dates = [0usize; 3];
    let orders = [DateOrder::Ymd, DateOrder::Mdy, DateOrder::Dmy];
    let wanted = config.data.date_order;
    let mut first_text: Option<(usize, &str)> = None;
    // The cells that are not numbers with a point, and with a comma.
    let mut words: HashMap<&str, usize> = HashMap::new();
    let mut comma_words: HashMap<&str, usize> = HashMap::new();
    for (row, cell) in cells.iter().enumerate() {
        let Some(v) = read.clean(*cell) else { continue };
        present += 1;
        let comma_read =
            mark != DecimalMark::Point && parse_comma_number(v).is_some_and(f64::is_finite);
        if comma_read {
            comma += 1;
        } else if mark != DecimalMark::Point {
            *comma_words.entry(v).or_default() += 1;
        }
        let point = if mark == DecimalMark::Comma {
            None
        } else {
            parse_number(v)
        };
        match point {
            Some(x) if x.is_finite() => numeric += 1,
            Some(_) => {
                return Err(PatronError::data(
                    path,
                    format!(
                        "column {name:?} row {}: {v:?} is not a finite number; replace it or mark it missing (data.missing_values)",
                        row + 1
                    ),
                ));
            }
            None => {
                for (count, order) in dates.iter_mut().zip(orders) {
                    let asked = wanted == DateOrder::Auto || wanted == order;
                    *count += usize::from(asked && parse_date_in(order, v).is_some());
                }
                // The first cell no mark reads, for the error below.
                if first_text.is_none() && !comma_read {
                    first_text = Some((row, v));
                }
                *words.entry(v).or_default() += 1;
            }
        }
    }
    if present > 0 && numeric == present {
        return Ok(ColumnType::Numeric { comma: false });
    }
    if present > 0 && comma == present {
        return Ok(ColumnType::Numeric { comma: true });
    }
    if present > 0 {
        let all = |i: usize| dates[i] == present;
        let date = |order, guessed| Ok(ColumnType::Date { order, guessed });
        if all(0) {
            return date(DateOrder::Ymd, false);
        }
        match (all(1), all(2)) {
            // No day above 12 tells the order: spreadsheets write month first with `/`
            // (the US) and day first with `.` (most of Europe).
            (true, true) => {
                let dots = first_text.is_some_and(|(_, v)| v.contains('.'));
                let order = if dots { DateOrder::Dmy } else { DateOrder::Mdy };
                return date(order, wanted == DateOrder::Auto);
            }
            (true, false) => return date(DateOrder::Mdy, false),
            (false, true) => return date(DateOrder::Dmy, false),
            (false, false) => {}
        }
    }
    // A column that is almost all numbers with a few words ("-", "unknown") is a number
    // column with those cells missing, not a category of every number seen.
    let (numeric, comma, words) = if comma > numeric {
        (comma, true, comma_words)
    } else {
        (numeric, false, words)
    };
    if present >= 20 && numeric as f64 >= 0.9 * present as f64 {
        let examples = most_frequent_first(words);
        return Ok(ColumnType::MostlyNumeric {
            comma,
            numbers: numeric,
            words: present - numeric,
            examples: examples
                .iter()
                .take(3)
                .map(|(w, _)| w.to_string())
                .collect(),
        });
    }
    let (row, text) = first_text.unwrap_or((0, ""));
    if forced_numeric {
        return Err(PatronError::data(
            path,
            format!(
                "column {name:?} is listed in data.numeric but row {} holds {text:?}; fix the value or add it to data.missing_values",
                row + 1
            ),
        ));
    }
    Ok(ColumnType::Categorical)
}

/// Whether a column of 20 or more cells holds its row's number (from 0 or from 1) in
/// every row: the index `pandas.DataFrame.to_csv` writes, or a `RowNumber` column, which
/// says only where a row sits in the file (a leak where the file is sorted by the label).
fn row_numbers(cells: &[Option<&str>], read: &ReadOptions) -> bool {
    let value = |r: usize| read.clean(cells[r]).and_then(parse_number);
    let Some(first) = (cells.len() >= 20).then(|| value(0)).flatten() else {
        return false;
    };
    (first == 0.0 || first == 1.0) && (0..cells.len()).all(|r| value(r) == Some(first + r as f64))
}

/// Whether a column's name reads as an identifier's: `id`, `uuid` or `guid` as one of its
/// words, or `number`, `no`, `nr`, `num` or `key` as its last (`CustomerId`, `user_id`,
/// `EmployeeNumber`, `Account No.`; not `paid` or `number_of_orders`). Words are split at
/// anything but letters and digits and where a lower-case letter meets an upper-case one.
fn identifier_name(name: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut last_lower = false;
    for c in name.chars() {
        if (!c.is_alphanumeric() || (last_lower && c.is_uppercase())) && !word.is_empty() {
            words.push(std::mem::take(&mut word).to_lowercase());
        }
        if c.is_alphanumeric() {
            word.push(c);
        }
        last_lower = c.is_lowercase();
    }
    if !word.is_empty() {
        words.push(word.to_lowercase());
    }
    let anywhere = |w: &String| matches!(w.as_str(), "id" | "ids" | "uuid" | "guid");
    words.iter().any(anywhere)
        || words
            .last()
            .is_some_and(|w| matches!(w.as_str(), "number" | "no" | "nr" | "num" | "key"))
}

/// A number column that identifies its rows rather than describing them: an identifier's
/// name ([`identifier_name`]), whole numbers only, and (as a categorical identifier) at
/// least 20 present training values of which 95 % differ. A customer or employee number
/// is assigned, not measured; fitted as a number it lets the network learn the label of
/// id ranges (the order of sign-up at best, noise at worst). Gives (distinct, present).
fn numeric_identifier(
    name: &str,
    cells: &[Option<&str>],
    train_rows: &[usize],
    read: &ReadOptions,
) -> Option<(usize, usize)> {
    if !identifier_name(name) {
        return None;
    }
    let mut values = Vec::with_capacity(train_rows.len());
    for &r in train_rows {
        if let Some(v) = read.clean(cells[r]) {
            let x = parse_number(v)?;
            if x.fract() != 0.0 {
                return None;
            }
            values.push(x as i64);
        }
    }
    let present = values.len();
    values.sort_unstable();
    values.dedup();
    let distinct = values.len();
    identifier_like(distinct, present).then_some((distinct, present))
}

/// The token ids of every row's texts (joined across the text columns).
fn tokenize(text: &TextPreprocess, table: &Table, path: &Path) -> Result<Encoded> {
    for name in &text.columns {
        if !table.has_column(name) {
            return Err(missing_from(table, path, "text", name));
        }
    }
    let rows: Vec<usize> = (0..table.height()).collect();
    // Tokenizing (normalization, n-grams, hashing) is most of a text chunk's preparation
    // and each text is independent: spread over the compute pool.
    let texts = if text.tokenizer.normalizes() {
        raw_texts(table, &text.columns, &rows)
    } else {
        joined_texts(table, &text.columns, &rows)
    };
    let tokens = texts.par_iter().map(|t| text.tokenizer.ids(t)).collect();
    Ok(Encoded {
        rows: table.height(),
        tokens,
        ..Encoded::default()
    })
}

/// The training rows of `cells` whose value (blank or missing counting as one) is not the
/// column's most frequent.
fn varying_rows(cells: &[Option<&str>], train_rows: &[usize], read: &ReadOptions) -> usize {
    let mut counts: HashMap<Option<&str>, usize> = HashMap::new();
    for &r in train_rows {
        *counts.entry(read.clean(cells[r])).or_default() += 1;
    }
    train_rows.len() - counts.values().max().copied().unwrap_or(0)
}

/// The tabular features: each column other than the target, the id, the split column and
/// `data.drop`, typed on the whole table and fitted on the training rows.
fn fit_features(
    table: &Table,
    train_rows: &[usize],
    target: BinTarget,
    config: &Config,
    path: &Path,
    notes: &mut FitNotes,
) -> Result<Vec<Feature>> {
    let read = ReadOptions::of(config);
    let d = &config.data;
    let mut features = Vec::new();
    // Number columns read with a decimal comma because nothing else reads them.
    let mut comma_columns = Vec::new();
    // Columns with no value in any training row (Excel's padding columns, say).
    let mut empty_columns = Vec::new();
    // Columns whose values other than the most frequent one fill too few training rows.
    let mut steady_columns = Vec::new();
    let min_varying = d
        .min_varying_rows_for(target.classes == 0)
        .min(train_rows.len().div_ceil(10));
    for name in &table.column_names() {
        let split = config.split.column.as_ref() == Some(name);
        if *name == d.target || d.id.as_ref() == Some(name) || d.drop.contains(name) || split {
            continue;
        }
        let cells = table.cells(name).unwrap_or_default();
        let forced = d.categorical.contains(name) || d.numeric.contains(name);
        if !forced && train_rows.iter().all(|&r| read.clean(cells[r]).is_none()) {
            empty_columns.push(name.clone());
            continue;
        }
        if !forced && varying_rows(&cells, train_rows, &read) < min_varying {
            steady_columns.push(name.clone());
            continue;
        }
        // Numbers a Parquet file or a workbook typed are numbers whatever data.decimal says.
        let mark = if table.is_typed_number(name) {
            DecimalMark::Point
        } else {
            d.decimal
        };
        let kind = infer_type(path, name, &cells, &read, config, mark)?;
        if matches!(kind, ColumnType::Numeric { .. }) && !d.numeric.contains(name) {
            if row_numbers(&cells, &read) {
                notes.warnings.push(format!(
                    "column {name:?} holds the row numbers (its value is the row's place in the file): it is not a feature (list it in data.numeric to use it)"
                ));
                continue;
            }
            if let Some((distinct, present)) = numeric_identifier(name, &cells, train_rows, &read) {
                notes.warnings.push(format!(
                    "column {name:?} has {distinct} different whole numbers in {present} training rows and its name reads as an identifier: it is not a feature (set data.id to carry it into predictions, or list it in data.numeric to use it)"
                ));
                continue;
            }
        }
        let feature = match kind {
            kind @ (ColumnType::Numeric { .. }
            | ColumnType::MostlyNumeric { .. }
            | ColumnType::Date { .. }) => {
                let order = match kind {
                    ColumnType::Date { order, guessed } => {
                        if guessed {
                            let (read_as, other) = if order == DateOrder::Mdy {
                                ("month/day/year", DateOrder::Dmy)
                            } else {
                                ("day.month.year", DateOrder::Mdy)
                            };
                            notes.warnings.push(format!(
                                "column {name:?} holds dates whose day and month both read every value (no day above 12): read as {read_as}; set data.date_order = \"{}\" if that is wrong",
                                other.as_str(),
                            ));
                        }
                        Some(order)
                    }
                    _ => None,
                };
                let comma = matches!(
                    kind,
                    ColumnType::Numeric { comma: true }
                        | ColumnType::MostlyNumeric { comma: true, .. }
                );
                if comma && d.decimal == DecimalMark::Auto {
                    comma_columns.push(name.clone());
                }
                let parse = |v: &str| match order {
                    Some(order) => parse_date_in(order, v),
                    None => parse_number_in(comma, v),
                };
                let values = train_rows
                    .iter()
                    .map(|&r| (read.clean(cells[r]).and_then(parse), target.values[r]));
                let mut feature = fit_numeric(
                    name,
                    values,
                    d.binning,
                    target.classes,
                    d.numeric_bins,
                    d.exact_values_for(target.classes == 0),
                    // Rows scored later are dated later: a date's trend is meant to carry on
                    // past the training range (Chicago ridership by day).
                    d.clip_numeric && order.is_none(),
                );
                if let Feature::Numeric {
                    date,
                    date_order,
                    calendar,
                    text_missing,
                    decimal_comma,
                    ..
                } = &mut feature
                {
                    *decimal_comma = comma;
                    if let Some(order) = order {
                        *date = true;
                        *date_order = order;
                        *calendar = calendar_parts(train_rows.iter().filter_map(|&r| {
                            read.clean(cells[r]).and_then(|v| parse_date_in(order, v))
                        }));
                    }
                    if let ColumnType::MostlyNumeric {
                        numbers,
                        words,
                        examples,
                        ..
                    } = &kind
                    {
                        *text_missing = true;
                        notes.warnings.push(format!(
                            "column {name:?} holds {words} cells that are not numbers among {numbers} numbers ({}): they read as missing, here and when scoring (list it in data.categorical to keep them as words)",
                            quoted_list(examples)
                        ));
                    }
                }
                feature
            }
            ColumnType::Categorical => {
                let values = train_rows.iter().map(|&r| read.clean(cells[r]));
                let forced = d.categorical.contains(name);
                match fit_categorical(name, values, d.max_categories, forced, notes) {
                    Some(feature) => feature,
                    None => continue,
                }
            }
        };
        features.push(feature);
    }
    // One warning per kind, its words agreeing with the number of columns it names.
    let listed = |columns: &[String], singular: &'static str, plural: &'static str| {
        let one = columns.len() == 1;
        (
            if one { "column" } else { "columns" },
            quoted_list(columns),
            if one { singular } else { plural },
        )
    };
    if !empty_columns.is_empty() {
        let (column, names, have) = listed(&empty_columns, "has", "have");
        let feature = if empty_columns.len() == 1 {
            "a feature"
        } else {
            "features"
        };
        notes.warnings.push(format!(
            "{column} {names} {have} no value in any training row: not {feature}"
        ));
    }
    if !steady_columns.is_empty() {
        let (column, names, have) = listed(&steady_columns, "has", "have");
        let (feature, one) = if steady_columns.len() == 1 {
            ("a feature", "it")
        } else {
            ("features", "a column")
        };
        notes.warnings.push(format!(
            "{column} {names} {have} a value other than the most frequent in fewer than {min_varying} training rows: not {feature} (data.min_varying_rows; list {one} in data.numeric or data.categorical to use it)"
        ));
    }
    if !comma_columns.is_empty() {
        let (column, names, hold) = listed(&comma_columns, "holds", "hold");
        notes.warnings.push(format!(
            "{column} {names} {hold} numbers written with a decimal comma (\"1,5\" is 1.5, \"1.234,5\" is 1234.5): read so; set data.decimal = \".\" if that is wrong"
        ));
    }
    if features.is_empty() {
        return Err(PatronError::config(
            "data",
            "no feature columns are left after removing the target, id, data.drop, empty, nearly constant (data.min_varying_rows), identifier-like and row-number columns; list a column in data.categorical (or a row number in data.numeric) to use it",
        ));
    }
    Ok(features)
}

/// The text preprocessing: the tokenizer of `model.kind`, fitted on the training rows
/// (the columns are checked by the caller).
fn fit_text(table: &Table, train_rows: &[usize], config: &Config) -> Result<TextPreprocess> {
    let d = &config.data;
    let m = &config.model;
    let tokenizer = match m.kind {
        ModelKind::TextEncoder => {
            let dir = m.pretrained.as_deref().ok_or_else(|| {
                PatronError::config("model.pretrained", "is required for text_encoder")
            })?;
            Tokenizer::Pretrained(Box::new(PretrainedTokenizer::from_dir(dir, m.max_length)?))
        }
        ModelKind::TextTransformer => {
            let texts = joined_texts(table, &d.text, train_rows);
            Tokenizer::Subwords(SubwordVocab::fit(
                texts.iter().map(String::as_str),
                m.vocab_size,
                m.max_length,
            ))
        }
        _ => Tokenizer::HashedNgrams(BagFeatures {
            buckets: m.buckets,
            word_ngrams: m.word_ngrams,
            char_ngram_min: m.char_ngram_min,
            char_ngram_max: m.char_ngram_max,
            max_length: m.max_length,
            once: m.char_ngram_once,
            char_weight: Some(m.char_ngram_weight as f32),
        }),
    };
    Ok(TextPreprocess {
        columns: d.text.clone(),
        tokenizer,
    })
}

impl Preprocessor {
    /// Type every column on the whole table, then fit statistics on `train_rows` only.
    /// `labels` come from the task's target encoding (`task::labels::fit_labels`), called
    /// first because the split needs them; `target` holds every row's encoded target, which
    /// `data.binning = "target"` places the numeric bin edges by.
    pub fn fit(
        table: &Table,
        train_rows: &[usize],
        labels: Vec<String>,
        target: BinTarget,
        config: &Config,
        path: &Path,
    ) -> Result<(Preprocessor, FitNotes)> {
        let columns = table.column_names();
        let d = &config.data;
        if let Some(id) = &d.id
            && !table.has_column(id)
        {
            return Err(missing_column(path, "data.id", id, &columns));
        }
        for (key, list) in [
            ("data.drop", &d.drop),
            ("data.categorical", &d.categorical),
            ("data.numeric", &d.numeric),
            ("data.text", &d.text),
        ] {
            for name in list {
                if !table.has_column(name) {
                    return Err(missing_column(path, key, name, &columns));
                }
            }
        }
        if let Some(both) = d.categorical.iter().find(|c| d.numeric.contains(c)) {
            return Err(PatronError::config(
                "data",
                format!("column {both:?} is in both data.categorical and data.numeric"),
            ));
        }
        let mut notes = FitNotes::default();
        let (features, text) = if config.model.kind.is_text() {
            (Vec::new(), Some(fit_text(table, train_rows, config)?))
        } else {
            let mut features = fit_features(table, train_rows, target, config, path, &mut notes)?;
            let read = ReadOptions::of(config);
            let crosses = fit_crosses(
                &features,
                table,
                train_rows,
                target,
                &read,
                d.crosses_for(target.classes),
                path,
            )?;
            for (cross, gain) in crosses {
                if let Feature::Cross {
                    columns: [a, b], ..
                } = &cross
                {
                    notes.crossed.push(format!(
                        "crossed {a:?} and {b:?} into one more category input, {:?}: together they say more of the target than each alone ({:.4} nats a row out of fold, {:.1} standard errors; data.crosses = 0 turns this off)",
                        cross.name(),
                        gain.mean,
                        gain.t,
                    ));
                }
                features.push(cross);
            }
            (features, None)
        };
        Ok((
            Preprocessor {
                version: PREPROCESS_VERSION,
                target: d.target.clone(),
                labels,
                id: d.id.clone(),
                features,
                delimiter: d.delimiter.clone(),
                missing_values: d.missing_values.clone(),
                sheet: d.sheet.clone(),
                text,
                regression: None,
            },
            notes,
        ))
    }

    /// How cells are read for this preprocessing.
    pub fn read_options(&self) -> ReadOptions {
        let mut read = ReadOptions::new(
            self.delimiter.as_bytes().first().copied().unwrap_or(b','),
            &self.missing_values,
        );
        if let Some(sheet) = &self.sheet {
            read.sheet = SheetChoice::Prefer(sheet.clone());
        }
        read
    }

    /// Width of the dense input (numeric values, missing indicators, bin encodings).
    pub fn numeric_width(&self) -> usize {
        self.features.iter().map(Feature::numeric_inputs).sum()
    }

    /// Number of categorical inputs.
    pub fn categorical_count(&self) -> usize {
        self.features.iter().filter(|f| f.is_categorical()).count()
    }

    /// Rows of the shared embedding table (each categorical column: categories + 1).
    pub fn embedding_rows(&self) -> usize {
        self.features
            .iter()
            .filter(|f| f.is_categorical())
            .map(|f| f.categories().len() + 1)
            .sum()
    }

    /// Where each feature's inputs sit in an encoded row, in feature order.
    pub fn slots(&self) -> Vec<Slot> {
        let (mut numeric, mut categorical) = (0, 0);
        self.features
            .iter()
            .map(|feature| match feature {
                Feature::Numeric { .. } => {
                    let len = feature.numeric_inputs();
                    numeric += len;
                    Slot::Numeric {
                        start: numeric - len,
                        len,
                    }
                }
                Feature::Categorical { .. } | Feature::Cross { .. } => {
                    categorical += 1;
                    Slot::Categorical {
                        index: categorical - 1,
                    }
                }
            })
            .collect()
    }

    /// The runs of numeric inputs that hold a pattern of 0s and 1s: each number's bins
    /// (a thermometer: 1 up to the value's bin, its fraction there, 0 above) and its
    /// exact-value flags (`data.exact_values`; one set at most), in input order. Scoring
    /// adds their first-layer weights where they are set instead of multiplying zeros.
    pub fn sparse_inputs(&self) -> Vec<InputRun> {
        let mut runs = Vec::new();
        for (feature, slot) in self.features.iter().zip(self.slots()) {
            if let (
                Feature::Numeric {
                    missing_indicator,
                    edges,
                    points,
                    calendar,
                    ..
                },
                Slot::Numeric { start, .. },
            ) = (feature, slot)
            {
                let bins = start + 1 + usize::from(*missing_indicator);
                let flags = bins + edges.len().saturating_sub(1);
                if flags > bins {
                    runs.push(InputRun::Bins(bins..flags));
                }
                if !points.is_empty() {
                    runs.push(InputRun::Flags(flags..flags + points.len()));
                }
                let mut part = flags + points.len();
                for p in calendar {
                    runs.push(InputRun::Flags(part..part + p.values()));
                    part += p.values();
                }
            }
        }
        runs
    }

    /// Where each categorical column's indices start in the shared embedding table (its
    /// index 0, missing or unseen, is there).
    pub fn category_offsets(&self) -> Vec<i64> {
        let mut offset = 0i64;
        self.features
            .iter()
            .filter(|f| f.is_categorical())
            .map(|f| {
                let start = offset;
                offset += f.categories().len() as i64 + 1;
                start
            })
            .collect()
    }

    /// The encoded inputs of a typical row: every number at its training median, every
    /// category at its most frequent training value (missing when the column had none).
    pub fn reference_row(&self) -> (Vec<f32>, Vec<i64>) {
        let mut numeric = vec![0f32; self.numeric_width()];
        let mut categorical = Vec::with_capacity(self.categorical_count());
        let mut offsets = self.category_offsets().into_iter();
        let mut start = 0;
        for feature in &self.features {
            match feature {
                Feature::Numeric { median, .. } => {
                    let len = feature.numeric_inputs();
                    feature.encode_value(Some(*median), &mut numeric[start..start + len]);
                    start += len;
                }
                Feature::Categorical { categories, .. } | Feature::Cross { categories, .. } => {
                    let offset = offsets.next().expect("one offset per category column");
                    categorical.push(offset + i64::from(!categories.is_empty()));
                }
            }
        }
        (numeric, categorical)
    }

    /// What setting one column to the reference row's value ([`Preprocessor::reference_row`])
    /// does to the crosses that read it: for each cross and each of its two columns, the
    /// column's feature index, the cross's place among the category inputs, and the embedding
    /// row each of the cross's rows moves to (the cell with that column's side at the
    /// reference; a missing or unseen cell stays so, its sides unknown).
    pub fn cross_occlusions(&self) -> Vec<CrossOcclusion> {
        let offsets = self.category_offsets();
        let slots = self.slots();
        let mut out = Vec::new();
        for (feature, slot) in self.features.iter().zip(&slots) {
            let (
                Feature::Cross {
                    columns,
                    edges,
                    categories,
                    ..
                },
                Slot::Categorical { index },
            ) = (feature, slot)
            else {
                continue;
            };
            let offset = offsets[*index];
            let known: HashMap<&str, i64> = categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), offset + i as i64 + 1))
                .collect();
            // A cross's first column is a category (`fit_crosses`).
            let first_categories = column_index(&self.features, &columns[0])
                .map_or(&[][..], |i| self.features[i].categories());
            for side in 0..2 {
                let Some(column) = column_index(&self.features, &columns[side]) else {
                    continue;
                };
                let typical = match &self.features[column] {
                    Feature::Numeric { median, .. } => {
                        (bin_of(&edges[side], *median) + 1).to_string()
                    }
                    other => other.categories().first().cloned().unwrap_or_default(),
                };
                let to = std::iter::once(offset)
                    .chain(categories.iter().map(|cell| {
                        let Some((a, b)) = split_cell(cell, &edges[1], first_categories) else {
                            return offset;
                        };
                        let moved = if side == 0 {
                            cross_cell(&typical, b)
                        } else {
                            cross_cell(a, &typical)
                        };
                        known.get(moved.as_str()).copied().unwrap_or(offset)
                    }))
                    .collect();
                out.push(CrossOcclusion {
                    column,
                    input: *index,
                    to,
                });
            }
        }
        out
    }

    /// Turn a table into model inputs. `row_offset` numbers rows in error messages when the
    /// table is one chunk of a larger file.
    pub fn transform(&self, table: &Table, row_offset: usize, path: &Path) -> Result<Encoded> {
        match &self.text {
            Some(text) => tokenize(text, table, path),
            None => self.encode_tabular(table, row_offset, path),
        }
    }

    /// How many present values of each feature in `table` lie outside its training range
    /// (and so are read as its nearest end), in feature order: 0 for a category, a date or
    /// a run without ranges.
    pub fn past_range(&self, table: &Table, row_offset: usize, path: &Path) -> Result<Vec<u64>> {
        let read = self.read_options();
        let mut counts = vec![0; self.features.len()];
        for (feature, count) in self.features.iter().zip(&mut counts) {
            if let Feature::Numeric {
                range: Some([lo, hi]),
                ..
            } = feature
            {
                Self::each_number(feature, &read, table, row_offset, path, |_, value| {
                    *count += u64::from(value.is_some_and(|x| x < *lo || x > *hi));
                })?;
            }
        }
        Ok(counts)
    }

    /// Call `visit` with each row's value of the number `feature` in `table` (`None`:
    /// missing), read as training read it; a cell that is not one is an error naming it.
    fn each_number(
        feature: &Feature,
        read: &ReadOptions,
        table: &Table,
        row_offset: usize,
        path: &Path,
        mut visit: impl FnMut(usize, Option<f64>),
    ) -> Result<()> {
        let Feature::Numeric {
            name,
            date,
            date_order,
            text_missing,
            decimal_comma,
            ..
        } = feature
        else {
            return Ok(());
        };
        // A date column's cells are never numbers a reader typed as such.
        if let Some(values) = table.numbers(name).filter(|_| !date) {
            for (r, value) in values.into_iter().enumerate() {
                if let Some(x) = value.filter(|x| !x.is_finite()) {
                    return Err(not_finite(path, name, row_offset + r, x));
                }
                visit(r, value);
            }
            return Ok(());
        }
        let cells = table
            .cells(name)
            .ok_or_else(|| missing_from(table, path, "input", name))?;
        for (r, cell) in cells.iter().enumerate() {
            let value = match read.clean(*cell) {
                None => None,
                Some(v) if *date => Some(
                    parse_date_in(*date_order, v)
                        .ok_or_else(|| not_a_date(path, name, row_offset + r, v, *date_order))?,
                ),
                Some(v) => match parse_number_in(*decimal_comma, v) {
                    Some(x) if x.is_finite() => Some(x),
                    None if *text_missing => None,
                    _ => return Err(not_finite(path, name, row_offset + r, v)),
                },
            };
            visit(r, value);
        }
        Ok(())
    }

    /// The numeric inputs (scaled values, missing indicators, bin encodings) and the
    /// category indices into the shared embedding table of every row.
    fn encode_tabular(&self, table: &Table, row_offset: usize, path: &Path) -> Result<Encoded> {
        let read = self.read_options();
        let rows = table.height();
        let width = self.numeric_width();
        let n_cat = self.categorical_count();
        let mut numeric = vec![0f32; rows * width];
        let mut categorical = vec![0i64; rows * n_cat];
        let mut num_col = 0;
        let mut cat_col = 0;
        let mut offset = 0i64;
        for feature in &self.features {
            match feature {
                Feature::Numeric { .. } => {
                    let len = feature.numeric_inputs();
                    Self::each_number(feature, &read, table, row_offset, path, |r, value| {
                        let base = r * width + num_col;
                        feature.encode_value(value, &mut numeric[base..base + len]);
                    })?;
                    num_col += len;
                }
                Feature::Categorical { .. } | Feature::Cross { .. } => {
                    let categories = feature.categories();
                    let index: HashMap<&str, i64> = categories
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.as_str(), i as i64 + 1))
                        .collect();
                    let mut put = |r: usize, cell: Option<&str>| {
                        let idx = cell.and_then(|v| index.get(v).copied()).unwrap_or(0);
                        categorical[r * n_cat + cat_col] = offset + idx;
                    };
                    if let Feature::Cross { columns, edges, .. } = feature {
                        let cells = cross_cells(
                            &self.features,
                            columns,
                            edges,
                            table,
                            &read,
                            row_offset,
                            path,
                        )?;
                        for (r, cell) in cells.iter().enumerate() {
                            put(r, Some(cell));
                        }
                    } else {
                        let cells = table
                            .cells(feature.name())
                            .ok_or_else(|| missing_from(table, path, "input", feature.name()))?;
                        for (r, cell) in cells.iter().enumerate() {
                            put(r, read.clean(*cell));
                        }
                    }
                    offset += categories.len() as i64 + 1;
                    cat_col += 1;
                }
            }
        }
        Ok(Encoded {
            rows,
            numeric_width: width,
            categorical_count: n_cat,
            numeric,
            categorical,
            tokens: Vec::new(),
        })
    }

    /// The class index of each row (a regression target: its value), `None` where the
    /// target is blank; unknown labels and non-numbers are errors naming the row
    /// (`row_offset` numbers them when the table is one chunk of a larger file).
    pub fn encode_target(
        &self,
        table: &Table,
        row_offset: usize,
        path: &Path,
    ) -> Result<Vec<Option<f32>>> {
        let read = self.read_options();
        let cells = table
            .cells(&self.target)
            .ok_or_else(|| missing_from(table, path, "target", &self.target))?;
        let classes = ClassIndex::new(&self.labels);
        cells
            .iter()
            .enumerate()
            .map(|(r, cell)| {
                let row = row_offset + r + 1;
                let Some(v) = read.clean(*cell) else {
                    return Ok(None);
                };
                if let Some(fitted) = &self.regression {
                    return target_number(v, &self.target, row, path, fitted.decimal_comma)
                        .map(Some);
                }
                match classes.of(v) {
                    Some(i) => Ok(Some(i as f32)),
                    None => Err(PatronError::data(
                        path,
                        format!(
                            "target column {:?} row {row} holds {v:?}, a label the model never saw (known: {}); drop those rows or retrain with them",
                            self.target,
                            quoted_list(&self.labels)
                        ),
                    )),
                }
            })
            .collect()
    }
}

/// What makes two target cells the same class: a number's value (`1`, `1.0` and `01` are
/// one class), otherwise the text without regard to letter case or repeated spaces
/// (`Yes`, `yes` and `YES` are one class; a hand-typed or merged export writes both).
pub fn label_key(v: &str) -> String {
    match v.parse::<f64>() {
        // -0 is 0; `Display` writes 1.0 as "1".
        Ok(x) if !x.is_nan() => format!("{}", if x == 0.0 { 0.0 } else { x }),
        _ => v
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

/// Which class a target cell names, as training grouped them ([`label_key`]): its class's
/// own spelling first (most cells, and no key to build), then its key. Where two labels
/// share a key (an older run trained with `1` and `1.0` apart) only exact spellings match.
pub struct ClassIndex {
    exact: HashMap<String, usize>,
    keys: Option<HashMap<String, usize>>,
}

impl ClassIndex {
    /// The index of `labels`, in their order.
    pub fn new(labels: &[String]) -> ClassIndex {
        let exact = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let keys: HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (label_key(l), i))
            .collect();
        ClassIndex {
            exact,
            keys: (keys.len() == labels.len()).then_some(keys),
        }
    }

    /// The class of a cleaned cell, or `None` for a label none of them is.
    pub fn of(&self, v: &str) -> Option<usize> {
        self.exact.get(v).copied().or_else(|| {
            self.keys
                .as_ref()
                .and_then(|keys| keys.get(&label_key(v)).copied())
        })
    }
}

/// The values of a numeric target column (written with a decimal comma where
/// `decimal_comma`); a blank or a non-number is an error naming the row (numbered from 1
/// after `row_offset`).
pub fn numeric_target(
    cells: &[Option<&str>],
    read: &ReadOptions,
    target: &str,
    row_offset: usize,
    path: &Path,
    decimal_comma: bool,
) -> Result<Vec<f32>> {
    cells
        .iter()
        .enumerate()
        .map(|(r, cell)| {
            let row = row_offset + r + 1;
            match read.clean(*cell) {
                None => Err(PatronError::data(
                    path,
                    format!(
                        "target column {target:?} is missing at row {row}; fill or drop rows without a value"
                    ),
                )),
                Some(v) => target_number(v, target, row, path, decimal_comma),
            }
        })
        .collect()
}

/// A numeric target's present cell `v` at `row` as a number.
fn target_number(
    v: &str,
    target: &str,
    row: usize,
    path: &Path,
    decimal_comma: bool,
) -> Result<f32> {
    match parse_number_in(decimal_comma, v) {
        Some(x) if x.is_finite() && x.abs() < f64::from(f32::MAX) => Ok(x as f32),
        _ => Err(PatronError::data(
            path,
            format!(
                "target column {target:?} holds {v:?} at row {row}, not a number; a regression target must be numeric (set data.task = \"binary\" or \"multiclass\" for labels)"
            ),
        )),
    }
}

/// The normalized texts of `rows` (see [`raw_texts`]).
fn joined_texts(table: &Table, columns: &[String], rows: &[usize]) -> Vec<String> {
    raw_texts(table, columns, rows)
        .iter()
        .map(|t| normalize(t))
        .collect()
}

/// The texts of `rows` as written: the text columns joined with a space (missing cells are
/// empty text).
pub fn raw_texts(table: &Table, columns: &[String], rows: &[usize]) -> Vec<String> {
    let cells: Vec<Vec<Option<&str>>> = columns
        .iter()
        .map(|c| table.cells(c).unwrap_or_default())
        .collect();
    rows.iter()
        .map(|&r| {
            let mut joined = String::new();
            for column in &cells {
                if let Some(Some(v)) = column.get(r) {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(v);
                }
            }
            joined
        })
        .collect()
}

fn quoted_list(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(8).map(|s| format!("{s:?}")).collect();
    if items.len() > 8 {
        shown.push(format!("+{} more", items.len() - 8));
    }
    shown.join(", ")
}

/// Standardized value with logarithmic compression past `SOFT_CLIP`.
/// A number's dense inputs ([`Feature::numeric_inputs`] of them): the scaled value, the
/// missing indicator when the column has one, and the bin encoding; a missing value is
/// the median (scaled 0) with every bin at 0.
fn encode_number(
    value: Option<f64>,
    median: f64,
    scale: f64,
    missing_indicator: bool,
    edges: &[f64],
    points: &[f64],
    out: &mut [f32],
) {
    out[0] = value.map_or(0.0, |x| squash((x - median) / scale) as f32);
    if missing_indicator {
        out[1] = if value.is_none() { 1.0 } else { 0.0 };
    }
    let bins = &mut out[1 + usize::from(missing_indicator)..];
    let (bins, flags) = bins.split_at_mut(edges.len().saturating_sub(1));
    for (bin, pair) in bins.iter_mut().zip(edges.windows(2)) {
        *bin = value.map_or(0.0, |x| {
            ((x - pair[0]) / (pair[1] - pair[0])).clamp(0.0, 1.0) as f32
        });
    }
    // Points are sorted and the value finite: one search instead of a compare per flag
    // (`partial_cmp`, so -0 finds 0 as `==` does).
    flags.fill(0.0);
    let search = |x: f64| points.binary_search_by(|p| p.partial_cmp(&x).unwrap_or(Ordering::Less));
    if let Some(i) = value.and_then(|x| search(x).ok()) {
        flags[i] = 1.0;
    }
}

fn squash(z: f64) -> f64 {
    let a = z.abs();
    let s = if a <= SOFT_CLIP {
        a
    } else {
        SOFT_CLIP + (a - SOFT_CLIP).ln_1p()
    };
    (s.min(HARD_CLIP)).copysign(z)
}

/// A numeric column's scaling, bin edges, exact-value flags (at most `exact`) and, with
/// `clip`, its range, from its training rows' values paired with their targets (`None`:
/// missing).
fn fit_numeric(
    name: &str,
    values: impl Iterator<Item = (Option<f64>, f32)>,
    binning: Binning,
    classes: usize,
    bins: usize,
    exact: usize,
    clip: bool,
) -> Feature {
    let mut pairs = Vec::new();
    let mut missing = false;
    for (x, y) in values {
        match x {
            Some(x) => pairs.push((x, y)),
            None => missing = true,
        }
    }
    // Sorted once: the quantiles and a target tree both read the values in order.
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let median = quantile(&xs, 0.5);
    let iqr = quantile(&xs, 0.75) - quantile(&xs, 0.25);
    let mut scale = iqr / 1.349;
    if scale.is_nan() || scale <= 1e-12 {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        scale = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    }
    if !(scale.is_finite() && scale > 1e-12) {
        scale = 1.0;
    }
    // The flags are chosen by the quantiles, before a point mass moves the edges.
    let (edges, points) = match binning {
        Binning::Quantile => {
            let quantile = quantile_edges(&xs, bins);
            let mut points = exact_values(&xs, &quantile, bins, exact);
            // A column neither shape flags may still name the class by its exact values.
            if points.is_empty() {
                points = telling_values(&pairs, &quantile, classes, exact);
            }
            (point_mass_edges(&xs, quantile, bins), points)
        }
        Binning::Target => (tree_edges(&pairs, classes, bins), Vec::new()),
    };
    Feature::Numeric {
        name: name.to_string(),
        median: if median.is_finite() { median } else { 0.0 },
        scale,
        missing_indicator: missing,
        edges,
        points,
        date: false,
        date_order: DateOrder::Auto,
        calendar: Vec::new(),
        text_missing: false,
        decimal_comma: false,
        range: match (xs.first(), xs.last()) {
            (Some(&lo), Some(&hi)) if clip => Some([lo, hi]),
            _ => None,
        },
    }
}

/// Values with their counts, the most frequent first (ties in name order).
fn most_frequent_first(counts: HashMap<&str, usize>) -> Vec<(&str, usize)> {
    let mut sorted: Vec<(&str, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    sorted
}

/// The index among `features` of input column `name` (a cross is no column).
fn column_index(features: &[Feature], name: &str) -> Option<usize> {
    features
        .iter()
        .position(|f| f.is_column() && f.name() == name)
}

/// A row's cell of a cross: its two columns' values (a category as written, a number as
/// its bin from 1), joined by `|`; blank where a value is missing.
fn cross_cell(a: &str, b: &str) -> String {
    format!("{a}|{b}")
}

/// The two sides of a cross's `cell` ([`cross_cell`]). The first column is a category;
/// where the second is a number (`edges` non-empty), its side is digits or blank and the
/// cell splits at its last `|`; two categories split after the longest of the first
/// column's `categories` (or blank) the cell starts with. `None` where no split fits.
fn split_cell<'a>(
    cell: &'a str,
    edges: &[f64],
    categories: &[String],
) -> Option<(&'a str, &'a str)> {
    if !edges.is_empty() {
        return cell.rsplit_once('|');
    }
    let at = std::iter::once("")
        .chain(categories.iter().map(String::as_str))
        .filter(|c| cell.len() > c.len() && cell.starts_with(c) && cell[c.len()..].starts_with('|'))
        .map(str::len)
        .max()?;
    Some((&cell[..at], &cell[at + 1..]))
}

/// Each row's value of column `name` as a cross reads it (see [`cross_cell`]); `edges`
/// cut a number into bins. The column must be one of `features`.
fn cross_side(
    features: &[Feature],
    name: &str,
    edges: &[f64],
    table: &Table,
    read: &ReadOptions,
    row_offset: usize,
    path: &Path,
) -> Result<Vec<String>> {
    let column = column_index(features, name)
        .map(|i| &features[i])
        .ok_or_else(|| missing_from(table, path, "crossed", name))?;
    if let Feature::Categorical { .. } = column {
        let cells = table
            .cells(name)
            .ok_or_else(|| missing_from(table, path, "input", name))?;
        return Ok(cells
            .iter()
            .map(|c| read.clean(*c).unwrap_or("").to_string())
            .collect());
    }
    let mut side = vec![String::new(); table.height()];
    Preprocessor::each_number(column, read, table, row_offset, path, |r, value| {
        if let Some(x) = value {
            side[r] = (bin_of(edges, x) + 1).to_string();
        }
    })?;
    Ok(side)
}

/// Each row's cell of the cross of `columns` ([`cross_cell`]).
fn cross_cells(
    features: &[Feature],
    columns: &[String; 2],
    edges: &[Vec<f64>; 2],
    table: &Table,
    read: &ReadOptions,
    row_offset: usize,
    path: &Path,
) -> Result<Vec<String>> {
    let a = cross_side(
        features,
        &columns[0],
        &edges[0],
        table,
        read,
        row_offset,
        path,
    )?;
    let b = cross_side(
        features,
        &columns[1],
        &edges[1],
        table,
        read,
        row_offset,
        path,
    )?;
    Ok(a.iter().zip(&b).map(|(a, b)| cross_cell(a, b)).collect())
}

/// The crosses of `features` worth an input on a target of classes (none for a number), the
/// best first, at most `most`, each with its gain ([`crate::data::crosses`]): pairs of a
/// category of at most [`MAX_CROSS_LEVELS`] values and another column (a category, or a
/// number that is not a date in [`CROSS_BINS`] bins) whose cells save log loss over an
/// additive model of every column by at least [`CROSS_T`] standard errors.
fn fit_crosses(
    features: &[Feature],
    table: &Table,
    train_rows: &[usize],
    target: BinTarget,
    read: &ReadOptions,
    most: usize,
    path: &Path,
) -> Result<Vec<(Feature, PairGain)>> {
    if most == 0 || target.classes < 2 || !features.iter().any(Feature::is_categorical) {
        return Ok(Vec::new());
    }
    let classes = Classes {
        of_row: train_rows
            .iter()
            .map(|&r| target.values[r] as usize)
            .collect(),
        count: target.classes,
    };
    // Per feature: its levels in the additive model, and (where it may be crossed) its
    // coarse levels and the edges that cut them.
    let mut additive = Vec::new();
    let mut coarse: Vec<Option<(Levels, Vec<f64>)>> = Vec::new();
    for feature in features {
        match feature {
            Feature::Numeric { date, .. } => {
                let mut all = vec![None; table.height()];
                Preprocessor::each_number(feature, read, table, 0, path, |r, v| all[r] = v)?;
                let values: Vec<Option<f64>> = train_rows.iter().map(|&r| all[r]).collect();
                let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let levels = |edges: &[f64]| {
                    let keys: Vec<Option<u32>> =
                        values.iter().map(|v| v.map(|x| bin_of(edges, x))).collect();
                    Levels::of_keys(&keys)
                };
                additive.push(levels(&cut_edges(&sorted, ADDITIVE_BINS)));
                let edges = cut_edges(&sorted, CROSS_BINS);
                coarse.push((!date && !edges.is_empty()).then(|| (levels(&edges), edges)));
            }
            Feature::Categorical { name, categories } => {
                let index: HashMap<&str, u32> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), i as u32))
                    .collect();
                let cells = table
                    .cells(name)
                    .ok_or_else(|| missing_from(table, path, "input", name))?;
                let keys: Vec<Option<u32>> = train_rows
                    .iter()
                    .map(|&r| read.clean(cells[r]).and_then(|v| index.get(v).copied()))
                    .collect();
                let levels = Levels::of_keys(&keys);
                additive.push(levels.clone());
                let crossable = (2..=MAX_CROSS_LEVELS).contains(&categories.len());
                coarse.push(crossable.then(|| (levels, Vec::new())));
            }
            Feature::Cross { .. } => {
                additive.push(Levels::of_keys(&vec![None; train_rows.len()]));
                coarse.push(None);
            }
        }
    }
    let z = additive_out_of_fold(&additive, &classes);
    let mut found = Vec::new();
    for (i, a) in features.iter().enumerate() {
        let (Feature::Categorical { .. }, Some((levels_a, _))) = (a, &coarse[i]) else {
            continue;
        };
        for (j, b) in features.iter().enumerate() {
            // Two categories are one pair, taken once.
            if j == i || (b.is_categorical() && j < i) {
                continue;
            }
            if let Some((levels_b, _)) = &coarse[j] {
                let gain = pair_gain(levels_a, levels_b, &z, &classes);
                if gain.t >= CROSS_T {
                    found.push((gain, i, j));
                }
            }
        }
    }
    found.sort_by(|x, y| y.0.mean.total_cmp(&x.0.mean));
    found.truncate(most);
    let mut crosses = Vec::new();
    for (gain, i, j) in found {
        let columns = [
            features[i].name().to_string(),
            features[j].name().to_string(),
        ];
        let edges = [
            Vec::new(),
            coarse[j].as_ref().map(|c| c.1.clone()).unwrap_or_default(),
        ];
        let cells = cross_cells(features, &columns, &edges, table, read, 0, path)?;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for &r in train_rows {
            *counts.entry(cells[r].as_str()).or_default() += 1;
        }
        let categories = most_frequent_first(counts);
        let cross = Feature::Cross {
            name: format!("{} × {}", columns[0], columns[1]),
            columns,
            edges,
            categories: categories.into_iter().map(|(c, _)| c.to_string()).collect(),
        };
        crosses.push((cross, gain));
    }
    Ok(crosses)
}

/// The parts of a date column's training `days` that take at least two values: dates of
/// one month have no month to learn, dates without times no hour.
fn calendar_parts(days: impl Iterator<Item = f64>) -> Vec<DatePart> {
    let parts = [DatePart::Weekday, DatePart::Month, DatePart::Hour];
    let mut seen = [0u32; 3];
    for day in days {
        for (mask, part) in seen.iter_mut().zip(parts) {
            *mask |= 1 << part.of(day);
        }
    }
    parts
        .into_iter()
        .zip(seen)
        .filter(|(_, mask)| mask.count_ones() >= 2)
        .map(|(part, _)| part)
        .collect()
}

/// Present training values from which a column of (almost) all different values is read as
/// an identifier: a small table's few distinct names are still categories.
const IDENTIFIER_MIN_ROWS: usize = 20;

/// Share of distinct values among a column's present training values from which it is an
/// identifier (a customer id, an e-mail, free text): at test time nearly every value is
/// unseen, and in training each embedding row is fitted to one row's label.
const IDENTIFIER_DISTINCT_SHARE: f64 = 0.95;

/// Whether `distinct` values among `present` training values make a column an identifier
/// (a category or a number column alike).
fn identifier_like(distinct: usize, present: usize) -> bool {
    present >= IDENTIFIER_MIN_ROWS && distinct as f64 >= IDENTIFIER_DISTINCT_SHARE * present as f64
}

/// The categories of a column on its training `values`, or `None` (with a warning) for a
/// column that looks like an identifier, unless `forced` (listed in `data.categorical`).
fn fit_categorical<'a>(
    name: &str,
    values: impl Iterator<Item = Option<&'a str>>,
    max_categories: usize,
    forced: bool,
    notes: &mut FitNotes,
) -> Option<Feature> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in values.flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let present: usize = counts.values().sum();
    if !forced && identifier_like(counts.len(), present) {
        notes.warnings.push(format!(
            "column {name:?} has {} distinct values in {present} training rows, like an identifier or free text: it is not a feature (set data.id to carry it into predictions, data.text for a text model, or list it in data.categorical to use it)",
            counts.len()
        ));
        return None;
    }
    let mut categories = most_frequent_first(counts);
    if categories.len() > max_categories {
        notes.warnings.push(format!(
            "column {name:?} has {} distinct values; keeping the {max_categories} most frequent (data.max_categories), the rest share the unseen index",
            categories.len()
        ));
        categories.truncate(max_categories);
    }
    Some(Feature::Categorical {
        name: name.to_string(),
        categories: categories.into_iter().map(|(c, _)| c.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_table as table;
    use crate::task::labels::{fit_labels, target_values};

    #[test]
    fn a_column_with_no_value_in_the_training_rows_is_no_feature() {
        let (_d, p, t) = table("x,e,f,y\n1,,NA,no\n2,,,yes\n3,, ,no\n4,,,yes\n");
        let rows: Vec<usize> = (0..4).collect();
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        let names: Vec<&str> = pre.features.iter().map(Feature::name).collect();
        assert_eq!(names, ["x"]);
        assert!(
            notes.warnings.iter().any(
                |w| w == "columns \"e\", \"f\" have no value in any training row: not features"
            ),
            "{:?}",
            notes.warnings
        );
    }

    #[test]
    fn excel_and_pandas_missing_markers_are_missing_by_default() {
        let (_d, p, t) = table("x,y\n1,no\n#N/A,yes\n3,no\n<NA>,yes\n5,no\n");
        let rows: Vec<usize> = (0..5).collect();
        let (pre, _) = fit(&t, &rows, &config(""), &p).unwrap();
        assert!(
            matches!(
                pre.features[0],
                Feature::Numeric {
                    missing_indicator: true,
                    median: 3.0,
                    ..
                }
            ),
            "{:?}",
            pre.features[0]
        );
    }

    #[test]
    fn columns_with_a_decimal_comma_read_as_numbers_and_say_so() {
        // `a`: decimal commas with thousands points; `b`: "2,500" reads with a point as
        // thousands, so it stays that; `c`: decimal commas with a word in 2 of 40 rows.
        let mut text = String::from("a,b,c,y\n");
        for i in 0..40 {
            let c = if i % 20 == 3 {
                "-".to_string()
            } else {
                format!("\"{i},{}\"", i % 10)
            };
            text += &format!(
                "\"{}.{:03},{}\",\"{},500\",{c},{}\n",
                i % 3 + 1,
                i * 7,
                i % 10,
                i + 1,
                i % 2
            );
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..40).collect();
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        let comma = |f: &Feature| match f {
            Feature::Numeric {
                decimal_comma,
                text_missing,
                ..
            } => (*decimal_comma, *text_missing),
            other => panic!("{other:?}"),
        };
        let got: Vec<_> = pre.features.iter().map(comma).collect();
        assert_eq!(got, [(true, false), (false, false), (true, true)]);
        assert!(
            notes
                .warnings
                .iter()
                .any(|w| w
                    .starts_with("columns \"a\", \"c\" hold numbers written with a decimal comma")),
            "{:?}",
            notes.warnings
        );
        // Row 2 as the model gets it (bins are off in these tests: one value each, then
        // `c`'s missing indicator).
        let e = pre.transform(&t, 0, &p).unwrap();
        let w = pre.numeric_width();
        let value = |f: usize, input: usize| {
            pre.features[f]
                .unscale(f64::from(e.numeric[w + input]))
                .unwrap()
        };
        assert!((value(0, 0) - 2007.1).abs() < 1e-3, "{}", value(0, 0));
        assert!((value(1, 1) - 2500.0).abs() < 1e-3, "{}", value(1, 1));
        assert!((value(2, 2) - 1.1).abs() < 1e-6, "{}", value(2, 2));
        // Told the mark, the comma columns are no numbers with a point (all different:
        // identifiers), and with a comma "2,500" is 2.5.
        let (pre, _) = fit(&t, &rows, &config("decimal = \".\""), &p).unwrap();
        let names: Vec<&str> = pre.features.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["b"]);
        let (pre, notes) = fit(&t, &rows, &config("decimal = \",\""), &p).unwrap();
        assert!(notes.warnings.iter().all(|w| !w.contains("decimal comma")));
        let e = pre.transform(&t, 0, &p).unwrap();
        let b = pre.features[1]
            .unscale(f64::from(e.numeric[w + 1]))
            .unwrap();
        assert!((b - 2.5).abs() < 1e-6, "{b}");
        // A number column with a word names the word, not a number no point reads.
        let (_d, p, t) = table("a,y\n\"1,5\",0\n2,1\noops,0\n");
        let err = fit(&t, &[0, 1, 2], &config("numeric = [\"a\"]"), &p).unwrap_err();
        assert!(err.to_string().contains("row 3 holds \"oops\""), "{err}");
    }

    /// Fit on `rows` with the config's labels and every row's target.
    fn fit(t: &Table, rows: &[usize], c: &Config, p: &Path) -> Result<(Preprocessor, FitNotes)> {
        let labels = fit_labels(t, c, p)?;
        let values = target_values(t, c, &labels);
        let target = BinTarget {
            values: &values,
            classes: labels.len(),
        };
        Preprocessor::fit(t, rows, labels, target, c, p)
    }

    #[test]
    fn column_hints_suggest_near_names_only() {
        let columns = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let telco = columns(&["gender", "Tenure", "MonthlyCharges"]);
        assert_eq!(closest("tenure", &telco), Some("Tenure"));
        assert_eq!(closest("MonthlyCharge", &telco), Some("MonthlyCharges"));
        // Three edits from "gender": no hint rather than a wrong one.
        assert_eq!(closest("tenure", &columns(&["gender", "Partner"])), None);
    }

    fn config(extra: &str) -> Config {
        Config::from_toml_str(
            &format!("[data]\npath = \"t.csv\"\ntarget = \"y\"\nnumeric_bins = 0\n{extra}"),
            "t",
            &[],
        )
        .unwrap()
    }

    #[test]
    fn fits_on_train_rows_only_and_handles_unseen_and_missing() {
        let (_d, p, t) = table("x,c,y\n1,a,no\n2,b,yes\n3,a,no\n4, ,no\n1000,z,yes\nNA,a,no\n");
        // Row 4 (x=1000, c=z) is not a training row.
        let c = config("");
        let (pre, _) = fit(&t, &[0, 1, 2, 3, 5], &c, &p).unwrap();
        assert_eq!(pre.labels, vec!["no", "yes"]);
        match &pre.features[0] {
            Feature::Numeric {
                median,
                scale,
                missing_indicator,
                ..
            } => {
                // Train values 1,2,3,4: median 2.5, IQR 1.5.
                assert!((median - 2.5).abs() < 1e-12);
                assert!((scale - 1.5 / 1.349).abs() < 1e-12);
                assert!(missing_indicator);
            }
            other => panic!("{other:?}"),
        }
        match &pre.features[1] {
            Feature::Categorical { categories, .. } => assert_eq!(categories, &["a", "b"]),
            other => panic!("{other:?}"),
        }
        let e = pre.transform(&t, 0, &p).unwrap();
        assert_eq!(pre.numeric_width(), 2);
        assert_eq!(e.rows, 6);
        // x = 3 -> (3 - 2.5) / (1.5 / 1.349)
        assert!((e.numeric[2 * 2] as f64 - 0.5 * 1.349 / 1.5).abs() < 1e-6);
        // Missing x -> 0 with indicator 1.
        assert_eq!(&e.numeric[5 * 2..5 * 2 + 2], &[0.0, 1.0]);
        // The value past the training range reads as its maximum, 4; with
        // `clip_numeric = false` it is compressed but stays the largest.
        assert!((e.numeric[4 * 2] as f64 - 1.5 * 1.349 / 1.5).abs() < 1e-6);
        let (unclipped, _) =
            fit(&t, &[0, 1, 2, 3, 5], &config("clip_numeric = false\n"), &p).unwrap();
        let far = unclipped.transform(&t, 0, &p).unwrap().numeric[4 * 2];
        assert!(far > 3.0 && far <= HARD_CLIP as f32, "{far}");
        // Categories: a -> 1, b -> 2, blank and unseen "z" -> 0.
        assert_eq!(e.categorical, vec![1, 2, 1, 0, 0, 1]);
        assert_eq!(
            pre.encode_target(&t, 0, &p).unwrap(),
            [0., 1., 0., 0., 1., 0.].map(Some)
        );
        // A labelled file may write a class another way than training did.
        let (_d2, p2, other) = table("x,c,y\n1,a,YES\n2,b, No\n3,a,maybe\n");
        let first_two = other.take_rows(&p2, &[0, 1]).unwrap();
        let got = pre.encode_target(&first_two, 0, &p2);
        assert_eq!(got.unwrap(), [Some(1.0), Some(0.0)]);
        let e = pre.encode_target(&other, 0, &p2).unwrap_err().to_string();
        assert!(
            e.contains("row 3 holds \"maybe\", a label the model never saw"),
            "{e}"
        );
        // An older run trained with "1" and "1.0" as two classes matches cells exactly.
        let mut old = pre.clone();
        old.labels = vec!["1".into(), "1.0".into()];
        let (_d3, p3, ones) = table("x,c,y\n1,a,1.0\n2,b,1\n");
        let got = old.encode_target(&ones, 0, &p3).unwrap();
        assert_eq!(got, [Some(1.0), Some(0.0)]);
    }

    #[test]
    fn a_column_of_different_words_in_every_row_is_not_a_feature_unless_listed() {
        // 40 rows: `id` is different in 39 of them (97.5 %), `plan` has three values.
        let mut text = String::from("id,plan,x,y\n");
        for i in 0..40 {
            let id = if i == 1 { 0 } else { i };
            text += &format!("c{id},p{},{},{}\n", i % 3, 2 * i, i % 2);
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..40).collect();
        let names = |pre: &Preprocessor| -> Vec<String> {
            pre.features.iter().map(|f| f.name().to_string()).collect()
        };
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["plan", "x"]);
        assert_eq!(notes.warnings.len(), 1, "{:?}", notes.warnings);
        assert!(notes.warnings[0].contains("\"id\" has 39 distinct values in 40 training rows"));
        let listed = config("categorical = [\"id\"]");
        let (pre, notes) = fit(&t, &rows, &listed, &p).unwrap();
        assert_eq!(names(&pre), ["id", "plan", "x"]);
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
        // Below 20 rows distinct names are still categories; with only identifiers left
        // the error says which columns were removed and how to keep one.
        let (pre, _) = fit(&t, &rows[..19], &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["id", "plan", "x"]);
        let only_id = config("drop = [\"plan\", \"x\"]");
        let e = fit(&t, &rows, &only_id, &p).unwrap_err().to_string();
        assert!(
            e.contains(
                "nearly constant (data.min_varying_rows), identifier-like and row-number columns"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_column_of_row_numbers_is_not_a_feature_unless_listed() {
        // "": pandas' index (0..39); `n`: 1..40 but one row skips; `k`: 1..40 as text.
        let mut text = String::from(",n,k,y\n");
        for i in 0..40 {
            let n = if i == 30 { 99 } else { i + 1 };
            text += &format!("{i},{n},{},{}\n", i + 1, i % 2);
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..40).collect();
        let names = |pre: &Preprocessor| -> Vec<String> {
            pre.features.iter().map(|f| f.name().to_string()).collect()
        };
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["n"]);
        assert_eq!(notes.warnings.len(), 2, "{:?}", notes.warnings);
        assert!(notes.warnings[0].starts_with("column \"\" holds the row numbers"));
        assert!(notes.warnings[1].starts_with("column \"k\" holds the row numbers"));
        let (pre, _) = fit(&t, &rows, &config("numeric = [\"k\"]"), &p).unwrap();
        assert_eq!(names(&pre), ["n", "k"]);
        // In a table of under 20 rows nothing is called a row number.
        let short: String = text.lines().take(11).map(|l| format!("{l}\n")).collect();
        let (_d, p, t) = table(&short);
        let (pre, _) = fit(&t, &rows[..10], &config(""), &p).unwrap();
        assert_eq!(names(&pre).len(), 3);
    }

    #[test]
    fn a_column_that_hardly_varies_is_not_a_feature_unless_listed_or_the_table_is_small() {
        // Of 200 training rows, `rare` is 1 in 19, `flag` in 20, `plan` "b" in 19 and
        // `gap` blank in 19: a blank counts as a value of its own.
        let mut text = String::from("rare,flag,plan,gap,x,y\n");
        for i in 0..240 {
            let gap = if i % 10 == 0 && i < 190 { "" } else { "7" };
            let plan = if i % 10 == 1 && i < 190 { "b" } else { "a" };
            let (rare, flag) = (u8::from(i % 10 == 2 && i < 190), u8::from(i % 10 == 3));
            text += &format!("{rare},{flag},{plan},{gap},{},{}\n", i % 7, i % 2);
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..200).collect();
        // No crosses: the flags and the target's alternation would pair.
        let config = |extra: &str| config(&format!("crosses = 0\n{extra}"));
        let names = |pre: &Preprocessor| -> Vec<String> {
            pre.features.iter().map(|f| f.name().to_string()).collect()
        };
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["flag", "x"]);
        assert_eq!(
            notes.warnings,
            [
                "columns \"rare\", \"plan\", \"gap\" have a value other than the most frequent in fewer than 20 training rows: not features (data.min_varying_rows; list a column in data.numeric or data.categorical to use it)"
            ]
        );
        let (pre, _) = fit(&t, &rows, &config("categorical = [\"plan\"]"), &p).unwrap();
        assert_eq!(names(&pre), ["flag", "plan", "x"]);
        let (pre, notes) = fit(&t, &rows, &config("min_varying_rows = 0"), &p).unwrap();
        assert_eq!(names(&pre), ["rare", "flag", "plan", "gap", "x"]);
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
        // A number target keeps them unless set.
        let values: Vec<f32> = (0..240).map(|i| (i % 5) as f32).collect();
        let number = BinTarget {
            values: &values,
            classes: 0,
        };
        let (pre, _) = Preprocessor::fit(&t, &rows, Vec::new(), number, &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["rare", "flag", "plan", "gap", "x"]);
        // 100 training rows ask a tenth of them: 10, which each column passes.
        let (pre, _) = fit(&t, &rows[..100], &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["rare", "flag", "plan", "gap", "x"]);
    }

    #[test]
    fn a_number_column_named_as_an_identifier_is_not_a_feature_unless_listed() {
        for (name, is_id) in [
            ("CustomerId", true),
            ("customerID", true),
            ("user_id", true),
            ("ID", true),
            ("EmployeeNumber", true),
            ("Account No.", true),
            ("SK_ID_CURR", true),
            ("order-uuid", true),
            ("paid", false),
            ("valid", false),
            ("number_of_orders", false),
            ("NumOrders", false),
            ("tenure", false),
            ("identity", false),
        ] {
            assert_eq!(identifier_name(name), is_id, "{name}");
        }
        // `CustomerId`: distinct whole numbers (not in row order); `paid`: distinct amounts
        // with a name that is no identifier's; `OrderNo`: whole numbers that repeat;
        // `user_id`: distinct but with decimals.
        let mut text = String::from("CustomerId,paid,OrderNo,user_id,y\n");
        for i in 0..40 {
            text += &format!(
                "{},{},{},{}.5,{}\n",
                15_634_602 + 7 * i,
                100 + 3 * i,
                i % 10,
                i,
                i % 2
            );
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..32).collect();
        let names = |pre: &Preprocessor| -> Vec<String> {
            pre.features.iter().map(|f| f.name().to_string()).collect()
        };
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        assert_eq!(names(&pre), ["paid", "OrderNo", "user_id"]);
        assert_eq!(
            notes.warnings,
            [
                "column \"CustomerId\" has 32 different whole numbers in 32 training rows and its name reads as an identifier: it is not a feature (set data.id to carry it into predictions, or list it in data.numeric to use it)"
            ]
        );
        let (pre, notes) = fit(&t, &rows, &config("numeric = [\"CustomerId\"]"), &p).unwrap();
        assert_eq!(names(&pre), ["CustomerId", "paid", "OrderNo", "user_id"]);
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
        // Under 20 training rows an identifier's name alone leaves it a feature.
        let (pre, _) = fit(&t, &rows[..19], &config(""), &p).unwrap();
        assert_eq!(names(&pre).len(), 4);
    }

    #[test]
    fn a_column_of_dates_is_a_number_of_days() {
        // `d`: dates (one blank, two with a time); `w`: dates and a word, a category.
        let mut text = String::from("d,w,y\n");
        for i in 0..30 {
            let d = match i {
                3 => String::new(),
                4 => "2024-01-05T12:00:00Z".into(),
                5 => "2024/01/06 06:00".into(),
                _ => format!("2024-01-{:02}", i + 1),
            };
            let w = if i == 7 {
                "soon".into()
            } else {
                format!("2024-02-{:02}", i % 5 + 1)
            };
            text += &format!("{d},{w},{}\n", i % 2);
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..30).collect();
        let (pre, _) = fit(&t, &rows, &config(""), &p).unwrap();
        assert!(pre.features[0].is_date());
        assert!(matches!(pre.features[1], Feature::Categorical { .. }));
        let Feature::Numeric { median, .. } = &pre.features[0] else {
            panic!("{:?}", pre.features[0]);
        };
        // 29 days of January 2024 (the 4th blank; day 19,723 is the 1st): the 15th is the
        // 16th of January.
        assert_eq!(*median, 19_738.0);
        let e = pre.transform(&t, 0, &p).unwrap();
        let w = pre.numeric_width();
        let back = |r: usize| {
            pre.features[0]
                .unscale(f64::from(e.numeric[r * w]))
                .unwrap()
        };
        assert!((back(4) - 19_727.5).abs() < 1e-3, "{}", back(4));
        assert!((back(5) - 19_728.25).abs() < 1e-3, "{}", back(5));
        assert!((back(0) - 19_723.0).abs() < 1e-3, "{}", back(0));
        // A later date is not clipped to the training range: its trend carries on.
        let (_d1, p1, later) = table("d,w,y\n2024-03-01,x,0\n");
        let e = pre.transform(&later, 0, &p1).unwrap();
        let z = pre.features[0].unscale(f64::from(e.numeric[0])).unwrap();
        assert!((z - 19_783.0).abs() < 1e-2, "{z}");
        // At scoring, a cell that is not a date names the column and the row.
        let (_d2, p2, bad) = table("d,w,y\n2024-03-01,x,0\n2024-02-30,x,1\n");
        let err = pre.transform(&bad, 0, &p2).unwrap_err().to_string();
        assert!(
            err.contains("column \"d\" row 2: \"2024-02-30\" is not a date"),
            "{err}"
        );
    }

    #[test]
    fn spreadsheet_dates_are_dates_with_their_weekday_and_month() {
        // `us`: month/day/year, days up to 28 tell the order; `eu`: day.month.year, every
        // day at most 12 (ambiguous, the dots say day first); `t`: US dates with times.
        let mut text = String::from("us,eu,t,y\n");
        for i in 0..40 {
            let (month, day) = (i % 12 + 1, i % 28 + 1);
            let hour = i % 24;
            text += &format!(
                "{month}/{day}/2024,{:02}.{month:02}.2023,{month}/{day}/2024 {hour}:05,{}\n",
                i % 12 + 1,
                i % 2
            );
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..40).collect();
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        let order = |f: &Feature| match f {
            Feature::Numeric {
                date: true,
                date_order,
                calendar,
                ..
            } => (*date_order, calendar.clone()),
            other => panic!("{other:?}"),
        };
        let date_only = vec![DatePart::Weekday, DatePart::Month];
        assert_eq!(order(&pre.features[0]), (DateOrder::Mdy, date_only.clone()));
        assert_eq!(order(&pre.features[1]), (DateOrder::Dmy, date_only.clone()));
        let (t_order, t_parts) = order(&pre.features[2]);
        assert_eq!(t_order, DateOrder::Mdy);
        assert_eq!(t_parts, [date_only, vec![DatePart::Hour]].concat());
        assert_eq!(notes.warnings.len(), 1, "{:?}", notes.warnings);
        assert!(
            notes.warnings[0].contains("column \"eu\" holds dates whose day and month both")
                && notes.warnings[0].contains("data.date_order = \"mdy\""),
            "{:?}",
            notes.warnings
        );
        // Row 1: 2/2/2024 (a Friday, February) at 01:05; its weekday, month and hour flags
        // are the last 43 inputs of `t`, after the value and its bins.
        let e = pre.transform(&t, 0, &p).unwrap();
        let w = pre.numeric_width();
        let slots = pre.slots();
        let Slot::Numeric { start, len } = slots[2] else {
            panic!("{:?}", slots[2]);
        };
        let flags = &e.numeric[w + start + len - 43..w + start + len];
        let set: Vec<usize> = (0..43).filter(|&i| flags[i] == 1.0).collect();
        assert_eq!(set, [4, 7 + 1, 7 + 12 + 1]);
        assert_eq!(flags.iter().sum::<f32>(), 3.0);
        // The parts are sparse runs of their own, last in the column's inputs.
        let runs = pre.sparse_inputs();
        let end = start + len;
        assert!(runs.contains(&InputRun::Flags(end - 24..end)), "{runs:?}");
        assert!(
            runs.contains(&InputRun::Flags(end - 36..end - 24)),
            "{runs:?}"
        );
        // Told the order, the same column reads day first without that warning, and the
        // US columns it cannot read are not dates (here all different: identifiers).
        let (pre, notes) = fit(&t, &rows, &config("date_order = \"dmy\""), &p).unwrap();
        assert!(
            !notes.warnings.iter().any(|w| w.contains("date_order")),
            "{:?}",
            notes.warnings
        );
        let names: Vec<&str> = pre.features.iter().map(Feature::name).collect();
        assert_eq!(names, ["eu"]);
        assert_eq!(order(&pre.features[0]).0, DateOrder::Dmy);
        // At scoring, a cell not in the column's order names the form expected.
        let (pre, _) = fit(&t, &rows, &config(""), &p).unwrap();
        let (_d2, p2, bad) = table("us,eu,t,y\n13/1/2024,01.01.2023,1/1/2024 1:00,0\n");
        let err = pre.transform(&bad, 0, &p2).unwrap_err().to_string();
        assert!(
            err.contains("column \"us\" row 1: \"13/1/2024\" is not a date (MM/DD/YYYY"),
            "{err}"
        );
    }

    #[test]
    fn a_column_of_numbers_with_a_few_words_reads_the_words_as_missing() {
        // `t`: 37 numbers, two "-" and an "unknown" (92.5 % numbers); `u`: 35 numbers and
        // 5 words (87.5 %), a category.
        let mut text = String::from("t,u,y\n");
        for i in 0..40 {
            let t = match i {
                3 | 9 => "-".to_string(),
                12 => "unknown".to_string(),
                _ => i.to_string(),
            };
            let u = if i % 8 == 0 {
                "x".to_string()
            } else {
                i.to_string()
            };
            text += &format!("{t},{u},{}\n", i % 2);
        }
        let (_d, p, t) = table(&text);
        let rows: Vec<usize> = (0..40).collect();
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        let Feature::Numeric {
            text_missing,
            missing_indicator,
            ..
        } = &pre.features[0]
        else {
            panic!("{:?}", pre.features[0]);
        };
        assert!(*text_missing && *missing_indicator);
        assert!(matches!(pre.features[1], Feature::Categorical { .. }));
        assert_eq!(
            notes.warnings,
            [
                "column \"t\" holds 3 cells that are not numbers among 37 numbers (\"-\", \"unknown\"): they read as missing, here and when scoring (list it in data.categorical to keep them as words)"
            ]
        );
        // A word at scoring, seen or not, encodes as a blank cell does.
        let (_d2, p2, new) = table("t,u,y\n-,1,0\nn/a,1,0\n,1,0\n5,1,0\n");
        let e = pre.transform(&new, 0, &p2).unwrap();
        let w = pre.numeric_width();
        let row = |r: usize| e.numeric[r * w..(r + 1) * w].to_vec();
        assert_eq!(row(0), row(2));
        assert_eq!(row(1), row(2));
        assert_ne!(row(3), row(2));
        // Listed in data.categorical, the words stay words.
        let (pre, notes) = fit(&t, &rows, &config("categorical = [\"t\"]"), &p).unwrap();
        assert!(matches!(pre.features[0], Feature::Categorical { .. }));
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
    }

    #[test]
    fn sparse_inputs_are_where_a_numbers_bins_and_exact_values_are_encoded() {
        // g: 0 in 31 rows, then 1..9 (4 bins asked: the quantiles leave 1, the point mass
        // rule 5, the 0 and four over 1..9); h: no repeats, no flags.
        let mut text = String::from("g,h,y\n");
        for i in 0..40 {
            text.push_str(&format!("{},{},{}\n", i.max(30) - 30, 3 * i, i % 2));
        }
        let (_d, p, t) = table(&text);
        let config = |extra: &str| {
            let text =
                format!("[data]\npath = \"t.csv\"\ntarget = \"y\"\nnumeric_bins = 4\n{extra}");
            Config::from_toml_str(&text, "t", &[]).unwrap()
        };
        let (pre, _) = fit(&t, &(0..40).collect::<Vec<_>>(), &config(""), &p).unwrap();
        // g: value, 5 bins, 10 flags (0..9); h: value, 4 bins.
        assert_eq!(pre.numeric_width(), 16 + 5);
        assert_eq!(
            pre.sparse_inputs(),
            [
                InputRun::Bins(1..6),
                InputRun::Flags(6..16),
                InputRun::Bins(17..21)
            ]
        );
        let e = pre.transform(&t, 0, &p).unwrap();
        // Row 35 holds g = 5: the flag of value 5 is input 6 + 5.
        let row = &e.numeric[35 * 21..35 * 21 + 16];
        let set: Vec<usize> = (6..16).filter(|&i| row[i] == 1.0).collect();
        assert_eq!(set, [11]);
        // Bins are a thermometer: 1s, at most one fraction, then 0s.
        for row in e.numeric.chunks_exact(21) {
            for bins in [&row[1..6], &row[17..21]] {
                let ones = bins.iter().take_while(|&&v| v == 1.0).count();
                assert!(bins[ones..].iter().skip(1).all(|&v| v == 0.0), "{bins:?}");
            }
        }
        let c = config("exact_values = 0\n");
        let (pre, _) = fit(&t, &(0..40).collect::<Vec<_>>(), &c, &p).unwrap();
        assert_eq!(
            pre.sparse_inputs(),
            [InputRun::Bins(1..6), InputRun::Bins(7..11)]
        );
    }

    #[test]
    fn slots_and_the_reference_row_follow_the_encoding() {
        // Two categorical columns around a binned numeric one with missing values; c's
        // most frequent value is "b", d has no category (all missing).
        let mut text = String::from("c,x,d,y\n");
        for i in 0..40 {
            let c = if i % 3 == 0 { "a" } else { "b" };
            let x = if i == 7 {
                "NA".to_string()
            } else {
                (i * i).to_string()
            };
            text.push_str(&format!("{c},{x},NA,{}\n", i % 2));
        }
        let (_d, p, t) = table(&text);
        let c = Config::from_toml_str(
            "[data]\npath = \"t.csv\"\ntarget = \"y\"\nnumeric_bins = 4\ncategorical = [\"d\"]\n",
            "t",
            &[],
        )
        .unwrap();
        let rows: Vec<usize> = (0..40).collect();
        let (pre, _) = fit(&t, &rows, &c, &p).unwrap();
        // x: value, missing indicator, 4 bins.
        assert_eq!(
            pre.slots(),
            [
                Slot::Categorical { index: 0 },
                Slot::Numeric { start: 0, len: 6 },
                Slot::Categorical { index: 1 },
            ]
        );
        let Feature::Numeric { median, .. } = &pre.features[1] else {
            panic!("{:?}", pre.features[1]);
        };
        // The reference row is what a row holding those values encodes to.
        let (_d2, p2, typical) = table(&format!("c,x,d,y\nb,{median},NA,0\n"));
        let encoded = pre.transform(&typical, 0, &p2).unwrap();
        let (numeric, categorical) = pre.reference_row();
        assert_eq!(numeric, encoded.numeric);
        assert_eq!(categorical, encoded.categorical);
        // "b" is index 1 of c's table; d's rows start after c's three (missing, b, a).
        assert_eq!(categorical, [1, 3]);
        assert_eq!(numeric[0..2], [0.0, 0.0]);
    }

    #[test]
    fn text_in_a_numeric_column_and_bad_targets_are_errors() {
        // Listed in data.numeric, a column of 27 numbers and 4 words (87 %) is refused.
        let mut text = String::from("x,y\n");
        for i in 0..30 {
            let x = if i % 8 == 3 {
                "oops".to_string()
            } else {
                i.to_string()
            };
            text.push_str(&format!("{x},{}\n", if i % 2 == 0 { "a" } else { "b" }));
        }
        let (_d, p, t) = table(&text);
        let c = config("numeric = [\"x\"]");
        let err = fit(&t, &[0, 1], &c, &p).unwrap_err();
        assert!(err.to_string().contains("row 4"), "{err}");
        assert!(
            err.to_string().contains("\"x\" is listed in data.numeric"),
            "{err}"
        );

        let (_d, p, t) = table("x,y\n1,a\n2,a\n");
        let err = fit_labels(&t, &config(""), &p).unwrap_err();
        assert!(err.to_string().contains("single class"), "{err}");

        let (_d, p, t) = table("x,y\n1,a\n2,\n");
        let err = fit_labels(&t, &config(""), &p).unwrap_err();
        assert!(err.to_string().contains("missing at row 2"), "{err}");

        let (_d, p, t) = table("x,y\n1,a\n2,b\n");
        let c = config("id = \"ident\"");
        let err = fit(&t, &[0, 1], &c, &p).unwrap_err();
        assert!(err.to_string().contains("\"ident\" not found"), "{err}");
    }

    #[test]
    fn piecewise_linear_bins_follow_training_quantiles() {
        let values = (0..=100).map(|i| (Some(f64::from(i)), 0.0));
        let f = fit_numeric("x", values, Binning::Quantile, 2, 4, 0, true);
        let Feature::Numeric { edges, .. } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(edges, &[0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(f.numeric_inputs(), 1 + 4);
        // A constant column gets no bins.
        let c = fit_numeric(
            "c",
            std::iter::repeat_n((Some(7.0), 0.0), 10),
            Binning::Quantile,
            2,
            4,
            8,
            true,
        );
        assert_eq!(c.numeric_inputs(), 1);
        // Target-aware bins put the one edge where the class changes; a missing value
        // still gets its indicator and stays out of the tree.
        let stepped = (0..=100)
            .map(|i| (Some(f64::from(i)), f32::from(u8::from(i > 70))))
            .chain([(None, 1.0)]);
        let t = fit_numeric("t", stepped, Binning::Target, 2, 4, 0, true);
        let Feature::Numeric {
            edges,
            missing_indicator,
            ..
        } = &t
        else {
            panic!("{t:?}")
        };
        assert_eq!(edges, &[0.0, 70.5, 100.0]);
        assert!(missing_indicator);
        let pre = Preprocessor {
            version: PREPROCESS_VERSION,
            target: "y".into(),
            labels: vec!["a".into(), "b".into()],
            id: None,
            features: vec![f],
            delimiter: ",".into(),
            missing_values: vec![],
            sheet: None,
            text: None,
            regression: None,
        };
        let (_d, p, t) = table("x,y\n30,a\n100,b\n-5,a\n");
        let e = pre.transform(&t, 0, &p).unwrap();
        let row = |r: usize| e.numeric[r * 5 + 1..r * 5 + 5].to_vec();
        assert_eq!(row(0), vec![1.0, 0.2, 0.0, 0.0]);
        assert_eq!(row(1), vec![1.0, 1.0, 1.0, 1.0]);
        assert_eq!(row(2), vec![0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn exact_values_of_a_zero_inflated_number_get_flags() {
        // 0 in 90 rows, then 20 distinct amounts: 4 quantile bins merge into one, so the
        // point mass rule bins the amounts apart (0, then quantiles of 100..2000).
        let values = std::iter::repeat_n(0.0, 90)
            .chain((1..=20).map(|i| f64::from(i) * 100.0))
            .map(|x| (Some(x), 0.0))
            .chain([(None, 0.0)]);
        let f = fit_numeric("gain", values, Binning::Quantile, 2, 4, 21, true);
        let Feature::Numeric {
            edges,
            points,
            median,
            scale,
            ..
        } = &f
        else {
            panic!("{f:?}")
        };
        assert_eq!(edges, &[0.0, 100.0, 575.0, 1050.0, 1525.0, 2000.0]);
        assert_eq!(points.len(), 21, "every distinct value: {points:?}");
        // Scaled value, missing indicator, five bins, 21 flags.
        assert_eq!(f.numeric_inputs(), 1 + 1 + 5 + 21);
        let mut out = [9f32; 28];
        encode_number(Some(200.0), *median, *scale, true, edges, points, &mut out);
        assert_eq!(&out[1..3], &[0.0, 1.0]);
        assert!((out[3] - 100.0 / 475.0).abs() < 1e-6);
        assert_eq!(&out[4..10], &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(out.iter().filter(|&&x| x == 1.0).count(), 2);
        encode_number(Some(250.0), *median, *scale, true, edges, points, &mut out);
        assert!(
            out[7..].iter().all(|&x| x == 0.0),
            "a value between flags sets none"
        );
        encode_number(None, *median, *scale, true, edges, points, &mut out);
        assert_eq!(out[1], 1.0);
        assert!(out[2..].iter().all(|&x| x == 0.0));
        // Target-aware edges, or `exact_values = 0`, add none.
        let again = |binning, exact| {
            let values = std::iter::repeat_n(0.0, 90)
                .chain((1..=20).map(f64::from))
                .map(|x| (Some(x), 0.0));
            fit_numeric("gain", values, binning, 2, 4, exact, true).numeric_inputs()
        };
        assert_eq!(again(Binning::Quantile, 64), 1 + 5 + 21);
        assert_eq!(again(Binning::Quantile, 0), 1 + 5);
        assert!(again(Binning::Target, 64) <= 1 + 4);
    }

    #[test]
    fn exact_values_that_name_the_class_get_flags() {
        // 100 amounts on 3 rows each, the class their remainder by 3: each of 16 bins holds
        // about six amounts of all three classes.
        let fit = |classes: usize, exact: usize| {
            let values = (0..100).flat_map(|v| {
                let class = if classes == 0 { 0.5 } else { (v % 3) as f32 };
                [(Some(f64::from(v) * 1.25), class); 3]
            });
            let f = fit_numeric(
                "salary",
                values,
                Binning::Quantile,
                classes,
                16,
                exact,
                true,
            );
            let Feature::Numeric { points, .. } = f else {
                panic!("{f:?}")
            };
            points.len()
        };
        assert_eq!(fit(3, 256), 100);
        assert_eq!(fit(3, 64), 64, "the most frequent, at most `exact_values`");
        assert_eq!(fit(3, 0), 0);
        // A numeric target has no classes to tell apart.
        assert_eq!(fit(0, 256), 0);
    }

    #[test]
    fn a_category_and_a_number_that_decide_the_class_together_are_crossed() {
        // 2,000 customers: the class follows the plan and the amount together (plan a buys
        // above 50, plan b below, plan c at random), which no sum of the two tells; `noise`
        // tells nothing.
        let table_of = |additive: bool| {
            let mut text = String::from("plan,amount,noise,y\n");
            let mut seed = 11u64;
            for i in 0..2000 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let coin = (seed >> 33) % 100;
                let plan = ["a", "b", "c"][i % 3];
                let amount = 1 + (i * 37) % 100;
                let high = amount > 50;
                let likely = if additive {
                    (plan == "a") as u64 * 30 + high as u64 * 30 + 20
                } else {
                    match plan {
                        "a" if high => 85,
                        "b" if !high => 85,
                        "c" => 50,
                        _ => 15,
                    }
                };
                let y = if coin < likely { "yes" } else { "no" };
                text.push_str(&format!("{plan},{amount},{},{y}\n", (i * 7) % 13));
            }
            text
        };
        let rows: Vec<usize> = (0..2000).collect();
        let (_d, p, t) = table(&table_of(false));
        let (pre, notes) = fit(&t, &rows, &config(""), &p).unwrap();
        let crosses: Vec<&Feature> = pre
            .features
            .iter()
            .filter(|f| matches!(f, Feature::Cross { .. }))
            .collect();
        assert_eq!(crosses.len(), 1, "{:?}", pre.features);
        let Feature::Cross {
            name,
            columns,
            edges,
            categories,
        } = crosses[0]
        else {
            unreachable!()
        };
        assert_eq!(name, "plan × amount");
        assert_eq!(columns, &["plan".to_string(), "amount".to_string()]);
        assert!(edges[0].is_empty() && edges[1].len() == 3, "{edges:?}");
        // Three plans by four quarters of the amount.
        assert_eq!(categories.len(), 12, "{categories:?}");
        assert!(notes.crossed[0].starts_with("crossed \"plan\" and \"amount\""));
        assert!(notes.warnings.is_empty(), "{:?}", notes.warnings);
        // The cross is the last category input: row 0 (plan a, amount 1) reads cell "a|1".
        let e = pre.transform(&t, 0, &p).unwrap();
        let offsets = pre.category_offsets();
        let cell = e.categorical[e.categorical_count - 1] - offsets[offsets.len() - 1];
        assert_eq!(categories[cell as usize - 1], "a|1");
        assert_eq!(pre.embedding_rows(), 4 + 13);
        // None where the config turns crosses off, or where the two add up.
        let (off, _) = fit(&t, &rows, &config("crosses = 0\n"), &p).unwrap();
        assert_eq!(off.features.len(), 3);
        let (_d2, p2, t2) = table(&table_of(true));
        let (additive, _) = fit(&t2, &rows, &config(""), &p2).unwrap();
        assert_eq!(additive.features.len(), 3, "{:?}", additive.features);
    }

    #[test]
    fn unscale_inverts_the_encoding_of_a_number() {
        let f = Feature::Numeric {
            name: "x".into(),
            median: 10.0,
            scale: 4.0,
            missing_indicator: false,
            points: Vec::new(),
            edges: Vec::new(),
            date: false,
            date_order: DateOrder::Auto,
            calendar: Vec::new(),
            text_missing: false,
            decimal_comma: false,
            range: None,
        };
        for x in [-1000.0, -3.0, 9.5, 10.0, 22.0, 100.0] {
            let z = squash((x - 10.0) / 4.0);
            let back = f.unscale(z).unwrap();
            assert!(
                (back - x).abs() < 1e-9 * x.abs().max(1.0),
                "{x} -> {z} -> {back}"
            );
        }
        assert_eq!(f.unscale(HARD_CLIP), None);
    }

    #[test]
    fn squash_is_monotonic_and_bounded() {
        let xs = [-1e308, -50.0, -3.0, 0.0, 2.9, 3.1, 100.0, 1e308];
        let ys: Vec<f64> = xs.iter().map(|&x| squash(x)).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
        assert!(ys.iter().all(|y| y.abs() <= HARD_CLIP));
    }
}

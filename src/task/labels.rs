//! Target encoding: which task the target column makes (classes or a number), which
//! values are the classes, in which order (for two, `[negative, positive]`), and each
//! row's class index or value.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::config::{ClassWeight, Config, Loss, StopMetric, TargetTransform, TaskKind};
use crate::data::numbers::{parse_number_in, reads_with_comma};
use crate::data::preprocess::{ClassIndex, label_key, missing_column, numeric_target};
use crate::data::{ReadOptions, Table};
use crate::error::{PatronError, Result};

/// Most classes a target may have.
pub const MAX_CLASSES: usize = 100;

/// Under `data.task = "auto"`, a numeric target with more distinct values than this is a
/// regression target.
pub const AUTO_REGRESSION_ABOVE: usize = 20;

/// Most quantile bins a numeric target is stratified by.
const STRATA_BINS: usize = 10;
/// Fewest rows per bin, so each bin's share of a small validation split rounds to rows.
const ROWS_PER_STRATUM: usize = 50;

/// What the target column makes, as found in the data.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Class labels (see [`fit_labels`]); a row's value is its class index.
    Classes(Vec<String>),
    /// A number; a row's value is the number.
    Numeric,
}

/// The target of the data: the task `data.task` asks for (or, under `auto`, regression
/// for a numeric column with more than [`AUTO_REGRESSION_ABOVE`] distinct values, else
/// classes), each row's value, and a line saying what was chosen and why.
pub fn fit_target(
    table: &Table,
    config: &Config,
    path: &Path,
) -> Result<(Target, Vec<f32>, String)> {
    let read = ReadOptions::of(config);
    let name = &config.data.target;
    let cells = table
        .cells(name)
        .ok_or_else(|| missing_column(path, "data.target", name, &table.column_names()))?;
    let kind = config.data.task;
    let comma = target_decimal_comma(table, config);
    let numeric_distinct = || {
        let mut seen = HashSet::new();
        for cell in &cells {
            match read.clean(*cell).map(|v| (v, parse_number_in(comma, v))) {
                Some((_, Some(x))) => {
                    seen.insert(x.to_bits());
                }
                Some((_, None)) => return None,
                None => {}
            }
        }
        Some(seen.len())
    };
    let regression = match kind {
        TaskKind::Regression => true,
        TaskKind::Auto => numeric_distinct().is_some_and(|n| n > AUTO_REGRESSION_ABOVE),
        TaskKind::Binary | TaskKind::Multiclass => false,
    };
    if regression {
        if let Some(p) = &config.data.positive {
            return Err(PatronError::config(
                "data.positive",
                format!(
                    "is set to {p:?} but target column {name:?} is a regression target; remove data.positive"
                ),
            ));
        }
        let values = numeric_target(&cells, &read, name, 0, path, comma)?;
        if values.is_empty() {
            return Err(PatronError::data(path, "has no data rows (only a header)"));
        }
        if values.iter().all(|&v| v == values[0]) {
            return Err(PatronError::data(
                path,
                format!(
                    "target column {name:?} is constant ({}); there is nothing to predict",
                    values[0]
                ),
            ));
        }
        let why = match kind {
            TaskKind::Auto => format!(
                "task: regression (data.task = \"auto\": target {name:?} is numeric with more than {AUTO_REGRESSION_ABOVE} distinct values)"
            ),
            _ => "task: regression (data.task)".to_string(),
        };
        return Ok((Target::Numeric, values, why));
    }
    let labels = fit_labels(table, config, path)?;
    let found = if labels.len() == 2 {
        TaskKind::Binary
    } else {
        TaskKind::Multiclass
    };
    if kind != TaskKind::Auto && kind != found {
        return Err(PatronError::config(
            "data.task",
            format!(
                "is {:?} but target column {name:?} has {} classes; set data.task = \"{}\" (or \"auto\")",
                kind.as_str(),
                labels.len(),
                found.as_str()
            ),
        ));
    }
    let values = target_values(table, config, &labels);
    let why = format!(
        "task: {} ({} classes{})",
        found.as_str(),
        labels.len(),
        if kind == TaskKind::Auto {
            ", data.task = \"auto\""
        } else {
            ""
        }
    );
    Ok((Target::Classes(labels), values, why))
}

/// Whether the target column writes its numbers with a decimal comma
/// ([`reads_with_comma`]), as training reads them and the run records.
pub fn target_decimal_comma(table: &Table, config: &Config) -> bool {
    let read = ReadOptions::of(config);
    let name = &config.data.target;
    !table.is_typed_number(name)
        && table
            .cells(name)
            .is_some_and(|cells| reads_with_comma(&cells, &read, config.data.decimal))
}

/// The early-stopping metric a run on `target` watches: the config's, except that a text
/// kind's default classification metric becomes `rmse` on a numeric target.
pub fn stop_metric(config: &Config, target: &Target) -> StopMetric {
    let stop = &config.train.early_stopping;
    if *target == Target::Numeric && stop.metric_defaulted && !measures(stop.metric, true) {
        StopMetric::Rmse
    } else {
        stop.metric
    }
}

/// Whether a task (regression or not) measures `metric`.
fn measures(metric: StopMetric, regression: bool) -> bool {
    match metric {
        StopMetric::LogLoss | StopMetric::Loss => true,
        StopMetric::Rmse | StopMetric::Mae => regression,
        StopMetric::AucRoc | StopMetric::AucPr | StopMetric::MacroF1 | StopMetric::Accuracy => {
            !regression
        }
    }
}

/// Keys that do not apply to the target found are warned about; an early-stopping metric
/// the task does not measure is an error naming the key.
pub fn target_keys(config: &Config, target: &Target) -> Result<Vec<String>> {
    let regression = *target == Target::Numeric;
    let metric = stop_metric(config, target);
    if !measures(metric, regression) {
        let (task, instead) = if regression {
            ("regression", "\"loss\", \"rmse\" or \"mae\"")
        } else {
            (
                "classification",
                "\"log_loss\", \"auc_roc\", \"auc_pr\", \"macro_f1\" or \"accuracy\"",
            )
        };
        return Err(PatronError::config(
            "train.early_stopping.metric",
            format!(
                "is {:?}, which a {task} target does not have; use {instead}",
                metric.name()
            ),
        ));
    }
    let mut warnings = Vec::new();
    if regression && config.train.class_weight != ClassWeight::None {
        warnings.push(
            "train.class_weight applies to classes only; a regression target ignores it".into(),
        );
    }
    if !regression && config.train.loss != Loss::Mse {
        warnings.push(format!(
            "train.loss = {:?} applies to regression targets only; a classifier trains on cross-entropy",
            config.train.loss.as_str()
        ));
    }
    if !regression && !config.model.quantiles.is_empty() {
        warnings.push("model.quantiles applies to regression targets only; ignored".into());
    }
    if !regression && config.data.target_transform != TargetTransform::None {
        warnings.push("data.target_transform applies to regression targets only; ignored".into());
    }
    Ok(warnings)
}

/// Rows of each class, in the order of the labels (empty for a numeric target).
pub fn class_rows(target: &Target, values: &[f32]) -> Vec<usize> {
    match target {
        Target::Classes(labels) => {
            let mut rows = vec![0; labels.len()];
            for &y in values {
                rows[y as usize] += 1;
            }
            rows
        }
        Target::Numeric => Vec::new(),
    }
}

/// The stratum of each row for a stratified split: its class, or for a numeric target
/// its decile by rank (ties split by row order, so a zero-heavy target still fills
/// every bin; fewer bins below 500 rows, so that each keeps at least 50).
pub fn strata(target: &Target, values: &[f32]) -> Vec<usize> {
    match target {
        Target::Classes(_) => values.iter().map(|&y| y as usize).collect(),
        Target::Numeric => {
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
            let n = values.len().max(1);
            let count = (n / ROWS_PER_STRATUM).clamp(1, STRATA_BINS);
            let mut bins = vec![0; values.len()];
            for (rank, &row) in order.iter().enumerate() {
                bins[row] = rank * count / n;
            }
            bins
        }
    }
}

/// The two class labels `[negative, positive]` of the target column, checking the target
/// exists, has no missing values and has exactly two classes.
pub fn fit_labels(table: &Table, config: &Config, path: &Path) -> Result<Vec<String>> {
    let read = ReadOptions::of(config);
    let target = &config.data.target;
    let cells = table
        .cells(target)
        .ok_or_else(|| missing_column(path, "data.target", target, &table.column_names()))?;
    let mut spellings: HashMap<&str, usize> = HashMap::new();
    for (r, cell) in cells.iter().enumerate() {
        match read.clean(*cell) {
            Some(v) => *spellings.entry(v).or_default() += 1,
            None => {
                return Err(PatronError::data(
                    path,
                    format!(
                        "target column {target:?} is missing at row {}; fill or drop rows without a label",
                        r + 1
                    ),
                ));
            }
        }
    }
    // The spellings of each class ([`label_key`]); a class is named by its most frequent
    // spelling (ties: the first in sort order).
    let mut classes: HashMap<String, Vec<(&str, usize)>> = HashMap::new();
    for (&v, &n) in &spellings {
        classes.entry(label_key(v)).or_default().push((v, n));
    }
    let counts: HashMap<&str, usize> = classes
        .values()
        .map(|spellings| {
            let (name, _) = spellings
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .expect("a class has a spelling");
            (*name, spellings.iter().map(|(_, n)| n).sum())
        })
        .collect();
    if counts.is_empty() {
        return Err(PatronError::data(path, "has no data rows (only a header)"));
    }
    if counts.len() == 1 {
        let only = counts.keys().next().copied().unwrap_or_default();
        return Err(PatronError::data(
            path,
            format!(
                "target column {target:?} has a single class {only:?}; a classifier needs at least two"
            ),
        ));
    }
    if counts.len() > 2 {
        if counts.len() > MAX_CLASSES {
            return Err(PatronError::data(
                path,
                format!(
                    "target column {target:?} has {} distinct values, more than the {MAX_CLASSES} classes patron supports; is it the right column?",
                    counts.len()
                ),
            ));
        }
        if let Some(p) = &config.data.positive {
            return Err(PatronError::config(
                "data.positive",
                format!(
                    "is set to {p:?} but target column {target:?} has {} classes; data.positive only applies to two classes",
                    counts.len()
                ),
            ));
        }
        let mut names: Vec<String> = counts.keys().map(|s| s.to_string()).collect();
        names.sort();
        return Ok(names);
    }
    let mut classes: Vec<(&str, usize)> = counts.into_iter().collect();
    // Less frequent first; ties broken by name so the choice is stable.
    classes.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
    let positive = match &config.data.positive {
        Some(p) => match classes.iter().find(|(c, _)| label_key(c) == label_key(p)) {
            Some((c, _)) => c.to_string(),
            None => {
                return Err(PatronError::config(
                    "data.positive",
                    format!(
                        "{p:?} is not a value of target column {target:?} (values: {:?}, {:?})",
                        classes[0].0, classes[1].0
                    ),
                ));
            }
        },
        None => classes[0].0.to_string(),
    };
    let negative = classes
        .iter()
        .find(|(c, _)| *c != positive)
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    Ok(vec![negative, positive])
}

/// The class index of every row (0/1 for two classes; `fit_labels` has checked the values).
pub fn target_values(table: &Table, config: &Config, classes: &[String]) -> Vec<f32> {
    let read = ReadOptions::of(config);
    let cells = table.cells(&config.data.target).unwrap_or_default();
    let index = ClassIndex::new(classes);
    cells
        .iter()
        .map(|c| {
            read.clean(*c)
                .and_then(|v| index.of(v))
                .map_or(0.0, |i| i as f32)
        })
        .collect()
}

/// A warning where the target writes a class in more than one way (`Yes`, `yes`; `1`,
/// `1.0`), which [`fit_labels`] reads as one class by its most frequent spelling.
pub fn merged_spellings(table: &Table, config: &Config, classes: &[String]) -> Option<String> {
    let read = ReadOptions::of(config);
    let cells = table.cells(&config.data.target)?;
    let mut others: Vec<Vec<&str>> = vec![Vec::new(); classes.len()];
    let index = ClassIndex::new(classes);
    let spellings: HashSet<&str> = cells.iter().filter_map(|c| read.clean(*c)).collect();
    for v in spellings {
        if let Some(i) = index.of(v)
            && v != classes[i]
        {
            others[i].push(v);
        }
    }
    let merged: Vec<String> = classes
        .iter()
        .zip(&mut others)
        .filter(|(_, o)| !o.is_empty())
        .map(|(c, o)| {
            o.sort_unstable();
            let o: Vec<String> = o.iter().map(|v| format!("{v:?}")).collect();
            format!("{c:?} also as {}", o.join(", "))
        })
        .collect();
    (!merged.is_empty()).then(|| {
        format!(
            "target column {:?} writes a class in more than one way: {}; each is read as one class (labels are compared without regard to letter case or extra spaces, numbers by value: 1.0 is 1)",
            config.data.target,
            merged.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_table as table;

    fn config(extra: &str) -> Config {
        let text = format!("[data]\npath = \"t.csv\"\ntarget = \"y\"\n{extra}");
        Config::from_toml_str(&text, "t", &[]).unwrap()
    }

    #[test]
    fn positive_defaults_to_the_rarer_class_and_can_be_set() {
        let (_d, p, t) = table("x,y\n1,no\n2,no\n3,yes\n");
        assert_eq!(fit_labels(&t, &config(""), &p).unwrap(), vec!["no", "yes"]);
        let labels = fit_labels(&t, &config("positive = \"no\""), &p).unwrap();
        assert_eq!(labels, vec!["yes", "no"]);
    }

    #[test]
    fn auto_makes_a_many_valued_number_a_regression_target() {
        let mut text = String::from("x,y\n");
        for i in 0..30 {
            text.push_str(&format!("{i},{}\n", i as f64 * 1.5));
        }
        let (_d, p, t) = table(&text);
        let (target, values, why) = fit_target(&t, &config(""), &p).unwrap();
        assert_eq!(target, Target::Numeric);
        assert_eq!(values[3], 4.5);
        assert!(why.contains("regression"), "{why}");
        // Asked for classes, 30 values are too many for a binary task.
        let err = fit_target(&t, &config("task = \"binary\""), &p).unwrap_err();
        assert!(err.to_string().contains("data.task"), "{err}");
        // Numbers with few values stay classes under auto, unless asked otherwise.
        let (_d, p, t) = table("x,y\n1,0\n2,1\n3,0\n");
        let (target, _, _) = fit_target(&t, &config(""), &p).unwrap();
        assert_eq!(target, Target::Classes(vec!["0".into(), "1".into()]));
        let (target, values, _) = fit_target(&t, &config("task = \"regression\""), &p).unwrap();
        assert_eq!((target, values), (Target::Numeric, vec![0.0, 1.0, 0.0]));
    }

    #[test]
    fn a_target_written_with_a_decimal_comma_is_a_number() {
        // 30 values like "4,5" and "1.002,5": no decimal point reads them, a comma does.
        let mut text = String::from("x;y\n");
        for i in 0..30 {
            let whole = if i == 29 {
                "1.002".to_string()
            } else {
                i.to_string()
            };
            text.push_str(&format!("{i};{whole},5\n"));
        }
        let (_d, p, t) = table(&text);
        let semicolon = "delimiter = \";\"";
        let c = config(semicolon);
        assert!(target_decimal_comma(&t, &c));
        let (target, values, _) = fit_target(&t, &c, &p).unwrap();
        assert_eq!(target, Target::Numeric);
        assert_eq!((values[3], values[29]), (3.5, 1002.5));
        // Told the mark is a point, they are 30 labels (too many for a binary task).
        let c = config(&format!("{semicolon}\ndecimal = \".\"\ntask = \"binary\""));
        assert!(!target_decimal_comma(&t, &c));
        let err = fit_target(&t, &c, &p).unwrap_err();
        assert!(err.to_string().contains("30 classes"), "{err}");
    }

    #[test]
    fn a_regression_target_must_be_numbers_that_vary() {
        let (_d, p, t) = table("x,y\n1,3.5\n2,lots\n");
        let err = fit_target(&t, &config("task = \"regression\""), &p).unwrap_err();
        assert!(err.to_string().contains("\"lots\" at row 2"), "{err}");
        let (_d, p, t) = table("x,y\n1,2\n2,2\n");
        let err = fit_target(&t, &config("task = \"regression\""), &p).unwrap_err();
        assert!(err.to_string().contains("constant"), "{err}");
    }

    #[test]
    fn numeric_strata_are_rank_deciles() {
        let values: Vec<f32> = (0..1000)
            .map(|i| if i < 700 { 0.0 } else { i as f32 })
            .collect();
        let bins = strata(&Target::Numeric, &values);
        for b in 0..10 {
            assert_eq!(bins.iter().filter(|&&x| x == b).count(), 100);
        }
        assert_eq!(bins[999], 9);
        // 120 rows: two bins of 60.
        let bins = strata(&Target::Numeric, &values[880..]);
        assert_eq!(bins.iter().filter(|&&x| x == 1).count(), 60);
        assert_eq!(strata(&Target::Classes(vec![]), &[1.0, 0.0]), [1, 0]);
    }

    #[test]
    fn a_class_written_several_ways_is_one_class() {
        let (_d, p, t) = table("x,y\n1,Yes\n2,no\n3,yes\n4,No\n5,YES \n6,Yes\n7,no\n");
        let c = config("");
        let labels = fit_labels(&t, &c, &p).unwrap();
        // Four "Yes" against three "no": "no" is the rarer class, the positive.
        assert_eq!(labels, ["Yes", "no"]);
        assert_eq!(
            target_values(&t, &c, &labels),
            [0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
        );
        let note = merged_spellings(&t, &c, &labels).unwrap();
        assert!(
            note.contains("\"Yes\" also as \"YES\", \"yes\"; \"no\" also as \"No\";"),
            "{note}"
        );
        // data.positive names a class in any of its spellings.
        let labels = fit_labels(&t, &config("positive = \"yes\""), &p).unwrap();
        assert_eq!(labels, ["no", "Yes"]);
        // Numbers by value: 1 and 1.0 are one class, and so are 0 and 0.0.
        let (_d, p, t) = table("x,y\n1,1\n2,0.0\n3,1.0\n4,0\n5,0\n");
        let (target, values, why) = fit_target(&t, &c, &p).unwrap();
        assert_eq!(target, Target::Classes(vec!["0".into(), "1".into()]));
        assert_eq!(values, [1.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(why.starts_with("task: binary"), "{why}");
        let (_d, p, t) = table("x,y\n1,a\n2,b\n");
        assert_eq!(
            merged_spellings(&t, &c, &fit_labels(&t, &c, &p).unwrap()),
            None
        );
    }

    #[test]
    fn rows_get_their_class_index() {
        let (_d, p, t) = table("x,y\n1,b\n2,a\n3,c\n4,a\n");
        let c = config("");
        let labels = fit_labels(&t, &c, &p).unwrap();
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(target_values(&t, &c, &labels), [1.0, 0.0, 2.0, 0.0]);
    }
}

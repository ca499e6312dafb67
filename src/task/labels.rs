//! Target encoding: which values of the target column are the classes, in which order
//! (for two, `[negative, positive]`), and each row's class index.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Config;
use crate::data::preprocess::missing_column;
use crate::data::{ReadOptions, Table};
use crate::error::{PatronError, Result};

/// Most classes a target may have.
pub const MAX_CLASSES: usize = 100;

/// The two class labels `[negative, positive]` of the target column, checking the target
/// exists, has no missing values and has exactly two classes.
pub fn fit_labels(table: &Table, config: &Config, path: &Path) -> Result<Vec<String>> {
    let read = ReadOptions::new(config.delimiter_byte(), &config.data.missing_values);
    let target = &config.data.target;
    let cells = table
        .cells(target)
        .ok_or_else(|| missing_column(path, "data.target", target, &table.column_names()))?;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (r, cell) in cells.iter().enumerate() {
        match read.clean(*cell) {
            Some(v) => *counts.entry(v).or_default() += 1,
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
        Some(p) => {
            if !classes.iter().any(|(c, _)| c == p) {
                return Err(PatronError::config(
                    "data.positive",
                    format!(
                        "{p:?} is not a value of target column {target:?} (values: {:?}, {:?})",
                        classes[0].0, classes[1].0
                    ),
                ));
            }
            p.clone()
        }
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
    let read = ReadOptions::new(config.delimiter_byte(), &config.data.missing_values);
    let cells = table.cells(&config.data.target).unwrap_or_default();
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    cells
        .iter()
        .map(|c| {
            read.clean(*c)
                .and_then(|v| index.get(v))
                .map_or(0.0, |&i| i as f32)
        })
        .collect()
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
    fn rows_get_their_class_index() {
        let (_d, p, t) = table("x,y\n1,b\n2,a\n3,c\n4,a\n");
        let c = config("");
        let labels = fit_labels(&t, &c, &p).unwrap();
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(target_values(&t, &c, &labels), [1.0, 0.0, 2.0, 0.0]);
    }
}

//! Reading a sheet of an Excel or OpenDocument workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`,
//! `.ods`; the first, or the one `data.sheet` or `--sheet` names) as a table: the first row
//! (below a title or notes, [`table_start`]) names the columns, a column whose every value is a number is a number column (as in
//! Parquet), a date cell is its ISO 8601 text (which the typing reads as a date), an error
//! cell (`#N/A`, `#DIV/0!`) is missing.

use std::path::Path;

use calamine::{Data, Range, Reader, open_workbook_auto};
use polars::prelude::*;

use crate::data::{PREAMBLE_LOOK_AHEAD, SheetChoice, table_start};
use crate::error::{PatronError, Result};

/// A workbook's sheet as a table, with the sheets' names.
pub struct Sheet {
    /// The sheet's cells.
    pub frame: DataFrame,
    /// Its name.
    pub name: String,
    /// The names of the other sheets, which are not read.
    pub others: Vec<String>,
    /// Whether it was read by name rather than for being first.
    pub named: bool,
    /// Rows above the header skipped as a title or notes.
    pub preamble: usize,
}

impl Sheet {
    /// This sheet's name and the workbook's other sheets, where it was read as the first
    /// because nothing named one (or the name a run recorded is not there) and there are
    /// others: a table a user meant may be on one of them.
    pub fn unread(&self) -> Option<(String, Vec<String>)> {
        (!self.named && !self.others.is_empty()).then(|| (self.name.clone(), self.others.clone()))
    }
}

/// The sheet `choice` picks of the workbook at `path`.
pub fn read_sheet(path: &Path, choice: &SheetChoice) -> Result<Sheet> {
    let failed = |what: String| PatronError::data(path, what);
    let mut book = open_workbook_auto(path)
        .map_err(|e| failed(format!("cannot be read as a workbook ({e})")))?;
    let names = book.sheet_names();
    let Some(first) = names.first() else {
        return Err(failed("has no sheets".into()));
    };
    let (name, named) = match choice {
        SheetChoice::First => (first.clone(), false),
        SheetChoice::Named(wanted) | SheetChoice::Prefer(wanted) => {
            match find_sheet(&names, wanted) {
                Some(found) => (found.clone(), true),
                None if matches!(choice, SheetChoice::Prefer(_)) => (first.clone(), false),
                None => {
                    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
                    return Err(failed(format!(
                        "has no sheet {wanted:?}; its sheets are {}",
                        quoted.join(", ")
                    )));
                }
            }
        }
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| failed(format!("sheet {name:?} cannot be read ({e})")))?;
    let (frame, preamble) =
        frame(&range).map_err(|what| failed(format!("sheet {name:?}: {what}")))?;
    let others = names.iter().filter(|n| **n != name).cloned().collect();
    Ok(Sheet {
        frame,
        name,
        others,
        named,
        preamble,
    })
}

/// The sheet called `wanted`: its exact name, else the one name that matches it ignoring
/// case and surrounding spaces (a config typed `customers` for `Customers `).
fn find_sheet<'a>(names: &'a [String], wanted: &str) -> Option<&'a String> {
    if let Some(exact) = names.iter().find(|n| *n == wanted) {
        return Some(exact);
    }
    let wanted = wanted.trim().to_lowercase();
    let mut loose = names.iter().filter(|n| n.trim().to_lowercase() == wanted);
    match (loose.next(), loose.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// The columns of a sheet's used range, named by its first row below any title or notes,
/// and how many rows those took.
fn frame(range: &Range<Data>) -> std::result::Result<(DataFrame, usize), String> {
    let rows: Vec<&[Data]> = range.rows().collect();
    let widths: Vec<usize> = rows
        .iter()
        .take(PREAMBLE_LOOK_AHEAD + 1)
        .map(|row| row.iter().filter(|c| text(c).is_some()).count())
        .collect();
    let start = table_start(&widths);
    let Some(header) = rows.get(start) else {
        return Err("is empty; the first row must name the columns".into());
    };
    let body = &rows[start + 1..];
    let first_column = range.start().map_or(0, |(_, c)| c as usize);
    let mut columns = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, head) in header.iter().enumerate() {
        let cells = body.iter().map(|row| row.get(i).unwrap_or(&Data::Empty));
        let name = text(head).unwrap_or_default().trim().to_string();
        if name.is_empty() {
            // Formatting alone can stretch the used range past the table.
            if cells.clone().all(|c| text(c).is_none()) {
                continue;
            }
            return Err(format!(
                "column {} has values but no name in the first row; name it",
                letters(first_column + i)
            ));
        }
        if names.contains(&name) {
            return Err(format!(
                "column name {name:?} appears twice in the first row; rename one"
            ));
        }
        let numbers = cells.clone().all(|c| {
            matches!(
                c,
                Data::Int(_) | Data::Float(_) | Data::Empty | Data::Error(_)
            )
        });
        let column = if numbers {
            let values: Vec<Option<f64>> = cells.map(number).collect();
            // Excel keeps every number as a double; whole ones (an id, a count) are
            // integers, so an id is written `10001` in the predictions as from a CSV.
            let whole = |x: &f64| x.fract() == 0.0 && x.abs() < 9.0e15;
            if values.iter().flatten().all(whole) {
                let values: Vec<Option<i64>> = values.iter().map(|v| v.map(|x| x as i64)).collect();
                Column::new(name.as_str().into(), values)
            } else {
                Column::new(name.as_str().into(), values)
            }
        } else {
            let values: Vec<Option<String>> = cells.map(text).collect();
            Column::new(name.as_str().into(), values)
        };
        names.push(name);
        columns.push(column);
    }
    if columns.is_empty() {
        return Err("has no named columns in its first row".into());
    }
    let frame = DataFrame::new(body.len(), columns).map_err(|e| e.to_string())?;
    Ok((frame, start))
}

/// A number cell's value (`None`: empty or an error).
fn number(cell: &Data) -> Option<f64> {
    match cell {
        Data::Int(i) => Some(*i as f64),
        Data::Float(x) => Some(*x),
        _ => None,
    }
}

/// A cell as text: a number as Rust writes it (`3`, `0.25`), a date as ISO 8601 (with
/// the time where it has one), a boolean as Excel shows it; `None` for an empty or
/// error cell.
fn text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty | Data::Error(_) => None,
        Data::String(s) if s.trim().is_empty() => None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(x) => Some(x.to_string()),
        Data::Bool(b) => Some(if *b { "TRUE" } else { "FALSE" }.into()),
        Data::DateTime(d) if d.is_duration() => Some(d.as_f64().to_string()),
        Data::DateTime(d) => {
            let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
            Some(if (h, mi, s, ms) == (0, 0, 0, 0) {
                format!("{y:04}-{mo:02}-{day:02}")
            } else if ms == 0 {
                format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}")
            } else {
                format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}.{ms:03}")
            })
        }
    }
}

/// A 0-based column index as the sheet names it (`A`, `Z`, `AA`).
fn letters(mut column: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    fn sheet(rows: Vec<Vec<Data>>) -> Range<Data> {
        let (h, w) = (rows.len() as u32, rows[0].len() as u32);
        let mut range = Range::new((0, 0), (h - 1, w - 1));
        for (r, row) in rows.into_iter().enumerate() {
            for (c, cell) in row.into_iter().enumerate() {
                range.set_value((r as u32, c as u32), cell);
            }
        }
        range
    }

    fn s(v: &str) -> Data {
        Data::String(v.into())
    }

    #[test]
    fn a_sheet_is_found_by_its_name_then_ignoring_case_and_spaces() {
        let names: Vec<String> = ["About", "Customers ", "customers2", "x", "X"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(find_sheet(&names, "About"), Some(&names[0]));
        assert_eq!(find_sheet(&names, "customers"), Some(&names[1]));
        assert_eq!(find_sheet(&names, "x"), Some(&names[3]));
        // Two names match loosely: neither is guessed.
        assert_eq!(find_sheet(&names, " X "), None);
        assert_eq!(find_sheet(&names, "orders"), None);
    }

    #[test]
    fn a_sheet_reads_as_typed_numbers_iso_dates_and_text() {
        // 45943.5 is 2025-10-13 12:00 in the 1900 system.
        let date = |v| Data::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        let range = sheet(vec![
            vec![
                s("spend"),
                s("plan"),
                s("since"),
                s("vip"),
                Data::Empty,
                s("id"),
            ],
            vec![
                Data::Float(1.5),
                s("gold"),
                date(45943.0),
                Data::Bool(true),
                Data::Empty,
                Data::Float(10001.0),
            ],
            vec![
                Data::Int(3),
                Data::Int(7),
                date(45943.5),
                Data::Empty,
                Data::Empty,
                Data::Int(10002),
            ],
            vec![
                Data::Error(calamine::CellErrorType::NA),
                s(" "),
                Data::Empty,
                Data::Bool(false),
                Data::Empty,
                Data::Empty,
            ],
        ]);
        let (df, _) = frame(&range).unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["spend", "plan", "since", "vip", "id"]);
        let ids: Vec<Option<i64>> = df.column("id").unwrap().i64().unwrap().iter().collect();
        assert_eq!(ids, [Some(10001), Some(10002), None]);
        let spend: Vec<Option<f64>> = df.column("spend").unwrap().f64().unwrap().iter().collect();
        assert_eq!(spend, [Some(1.5), Some(3.0), None]);
        let texts = |name: &str| -> Vec<Option<String>> {
            let c = df.column(name).unwrap().str().unwrap().clone();
            c.iter().map(|v| v.map(str::to_string)).collect()
        };
        assert_eq!(texts("plan"), [Some("gold".into()), Some("7".into()), None]);
        assert_eq!(
            texts("since"),
            [
                Some("2025-10-13".into()),
                Some("2025-10-13T12:00:00".into()),
                None
            ]
        );
        assert_eq!(
            texts("vip"),
            [Some("TRUE".into()), None, Some("FALSE".into())]
        );
    }

    #[test]
    fn a_title_above_the_table_is_skipped() {
        let range = sheet(vec![
            vec![s("Customer export"), Data::Empty, Data::Empty],
            vec![Data::Empty, Data::Empty, Data::Empty],
            vec![s("id"), s("plan"), s("spend")],
            vec![Data::Int(1), s("a"), Data::Float(1.5)],
            vec![Data::Int(2), Data::Empty, Data::Float(2.5)],
        ]);
        let (df, preamble) = frame(&range).unwrap();
        assert_eq!(preamble, 2);
        let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["id", "plan", "spend"]);
        assert_eq!(df.height(), 2);
    }

    #[test]
    fn a_sheet_without_names_says_which_column() {
        let range = sheet(vec![
            vec![s("a"), Data::Empty, s("a")],
            vec![Data::Int(1), Data::Int(2), Data::Int(3)],
        ]);
        assert_eq!(
            frame(&range).unwrap_err(),
            "column B has values but no name in the first row; name it"
        );
        let range = sheet(vec![vec![s("a"), s("a")], vec![Data::Int(1), Data::Int(2)]]);
        assert!(frame(&range).unwrap_err().contains("\"a\" appears twice"));
        assert_eq!(letters(0), "A");
        assert_eq!(letters(25), "Z");
        assert_eq!(letters(26), "AA");
        assert_eq!(letters(27 * 26), "AAA");
    }
}

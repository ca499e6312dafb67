//! Reading tables with polars: whole files for training, bounded chunks for scoring.
//!
//! Every column is read as text and typed by patron itself (see `preprocess`), so that a
//! training file and a scoring file chunk are parsed by exactly the same rules whatever
//! polars would infer from the first rows of each.

pub mod arrow;
pub mod binning;
pub mod crosses;
pub mod dates;
pub mod hf_tokenizer;
pub mod numbers;
pub mod preprocess;
pub mod split;
pub mod spreadsheet;
pub mod text;

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::OnceLock;

use polars::prelude::*;

use crate::error::{PatronError, Result};

/// File formats patron reads and writes, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma (or `data.delimiter`) separated text with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Apache Arrow IPC: a stream (`.arrows`, standard input and output) or a file
    /// (`.arrow`, `.feather`).
    Arrow,
    /// A sheet of an Excel or OpenDocument workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`,
    /// `.ods`; the first unless [`ReadOptions::sheet`] says which): read, never written.
    Spreadsheet,
}

impl Format {
    /// The format of a file to read, by its extension: as [`Format::of`], and a gzipped
    /// CSV (`.csv.gz`, `.tsv.gz`, `.txt.gz`: what Spark and many exports write) is CSV.
    pub fn of_input(path: &Path) -> Result<Format> {
        if !gzipped(path) {
            return Format::of(path);
        }
        match Format::of(Path::new(path.file_stem().unwrap_or_default())) {
            Ok(Format::Csv) => Ok(Format::Csv),
            _ => Err(PatronError::data(
                path,
                "unsupported file type: a gzipped file must be a .csv.gz, .tsv.gz or .txt.gz",
            )),
        }
    }

    /// The format of a path, by its extension.
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") | Some("txt") | Some("tsv") => Ok(Format::Csv),
            Some("parquet") | Some("pq") => Ok(Format::Parquet),
            Some("arrow") | Some("arrows") | Some("feather") | Some("ipc") => Ok(Format::Arrow),
            Some("xlsx" | "xlsm" | "xlsb" | "xls" | "ods") => Ok(Format::Spreadsheet),
            _ => Err(PatronError::data(
                path,
                "unsupported file type: use a .csv, .parquet, .arrow or .xlsx file",
            )),
        }
    }
}

/// Whether a path names a gzip file (`.gz`).
pub fn gzipped(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// How text cells are read: the separator, the tokens that mean "missing" and a
/// workbook's sheet.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// CSV field separator.
    pub delimiter: u8,
    /// Lower-cased tokens read as missing (blank cells always are).
    pub missing: Vec<String>,
    /// Which sheet of a workbook is the table.
    pub sheet: SheetChoice,
}

/// Which sheet of a workbook to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SheetChoice {
    /// The first.
    First,
    /// This one; a workbook without it is an error naming the sheets it has.
    Named(String),
    /// This one where the workbook has it, else the first: a run scores a new workbook
    /// from the sheet it was trained on, or from a new export's only sheet.
    Prefer(String),
}

impl ReadOptions {
    /// Options from a delimiter and the configured missing tokens (a workbook's first
    /// sheet).
    pub fn new(delimiter: u8, missing_values: &[String]) -> Self {
        ReadOptions {
            delimiter,
            missing: missing_values
                .iter()
                .map(|s| s.trim().to_lowercase())
                .collect(),
            sheet: SheetChoice::First,
        }
    }

    /// The options a config reads its data file with.
    pub fn of(config: &crate::config::Config) -> Self {
        let mut read = ReadOptions::new(config.delimiter_byte(), &config.data.missing_values);
        if let Some(sheet) = &config.data.sheet {
            read.sheet = SheetChoice::Named(sheet.clone());
        }
        read
    }

    /// The cell with surrounding whitespace removed, or `None` when it means missing.
    pub fn clean<'a>(&self, cell: Option<&'a str>) -> Option<&'a str> {
        let v = cell?.trim();
        if v.is_empty() || self.missing.iter().any(|m| m.eq_ignore_ascii_case(v)) {
            None
        } else {
            Some(v)
        }
    }
}

/// A loaded table: every column as nullable text, and as the input typed it where the
/// input has types (Parquet, Arrow).
#[derive(Debug)]
pub struct Table {
    /// The text columns; for typed input, all but its number columns.
    df: DataFrame,
    /// Typed input as it came (Parquet, Arrow).
    typed: Option<DataFrame>,
    /// The text of each typed number column, made when first asked for: a model reads
    /// numbers as numbers ([`Table::numbers`]), so most are never needed as text.
    number_text: Vec<(PlSmallStr, OnceLock<Column>)>,
    /// The separator a CSV was read with where its header showed another than the
    /// configured one ([`sniff_delimiter`]).
    sniffed_delimiter: Option<u8>,
    /// The legacy encoding a CSV that is not UTF-8 was read in ([`CsvText`]).
    recoded: Option<Recoded>,
    /// The sheet a workbook was read from and the sheets after it, where it has more
    /// than one.
    sheets: Option<(String, Vec<String>)>,
    /// Lines (a CSV) or rows (a sheet) above the header that were skipped as a title or
    /// notes ([`table_start`]).
    preamble: usize,
}

/// A CSV read in a legacy encoding rather than UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recoded {
    /// The encoding's WHATWG name (`windows-1252`, `GBK`, `Shift_JIS`).
    pub encoding: &'static str,
    /// Lines that were not UTF-8 (the others read the same in both).
    pub lines: usize,
}

impl Table {
    /// A table of text columns.
    fn text(df: DataFrame) -> Table {
        Table {
            df,
            typed: None,
            number_text: Vec::new(),
            sniffed_delimiter: None,
            recoded: None,
            sheets: None,
            preamble: 0,
        }
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.typed.as_ref().unwrap_or(&self.df).height()
    }

    /// The separator this CSV was read with when its header showed that the configured
    /// one was wrong (a note for the user), else `None`.
    pub fn sniffed_delimiter(&self) -> Option<u8> {
        self.sniffed_delimiter
    }

    /// The legacy encoding this CSV was read in when it was not UTF-8 (a note for the
    /// user), else `None`.
    pub fn recoded(&self) -> Option<Recoded> {
        self.recoded
    }

    /// The sheet this workbook was read from, for being first, and the ones that were
    /// not, where it has more than one (a note for the user), else `None`.
    pub fn unread_sheets(&self) -> Option<&(String, Vec<String>)> {
        self.sheets.as_ref()
    }

    /// The lines (a CSV) or rows (a sheet) above the header that were skipped as a title
    /// or notes (a note for the user).
    pub fn preamble(&self) -> usize {
        self.preamble
    }

    /// The rows (0-based) where `column` holds a value under `read`, or `None` when the
    /// table has no such column.
    pub fn present_rows(&self, column: &str, read: &ReadOptions) -> Option<Vec<usize>> {
        let cells = self.cells(column)?;
        Some(
            (0..cells.len())
                .filter(|&r| read.clean(cells[r]).is_some())
                .collect(),
        )
    }

    /// The table of only `rows` (0-based, in the order given), typed columns kept typed.
    pub fn take_rows(&self, path: &Path, rows: &[usize]) -> Result<Table> {
        let indices = IdxCa::from_vec("rows".into(), rows.iter().map(|&r| r as IdxSize).collect());
        let take = |df: &DataFrame| {
            df.take(&indices)
                .map_err(|e| PatronError::data(path, polars_message(&e)))
        };
        Ok(Table {
            df: take(&self.df)?,
            typed: self.typed.as_ref().map(take).transpose()?,
            number_text: self
                .number_text
                .iter()
                .map(|(name, _)| (name.clone(), OnceLock::new()))
                .collect(),
            sniffed_delimiter: self.sniffed_delimiter,
            recoded: self.recoded,
            sheets: self.sheets.clone(),
            preamble: self.preamble,
        })
    }

    /// Column names in file order.
    pub fn column_names(&self) -> Vec<String> {
        self.typed
            .as_ref()
            .unwrap_or(&self.df)
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Whether a column exists.
    pub fn has_column(&self, name: &str) -> bool {
        self.typed.as_ref().unwrap_or(&self.df).column(name).is_ok()
    }

    /// A column as the input typed it (`None` for text input, or no such column).
    pub fn typed_column(&self, name: &str) -> Option<&Column> {
        self.typed.as_ref()?.column(name).ok()
    }

    /// Whether the input typed the column as numbers (integers or doubles), which need no
    /// decimal mark to read.
    pub fn is_typed_number(&self, name: &str) -> bool {
        self.typed_column(name)
            .is_some_and(|c| is_number(c.dtype()))
    }

    /// A typed number column's values, where the input typed it as integers or doubles
    /// (the values its text would parse to); `None` for text and other types.
    pub fn numbers(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let column = self.typed_column(name)?;
        if !is_number(column.dtype()) {
            return None;
        }
        let doubles = column.cast(&DataType::Float64).ok()?;
        Some(doubles.f64().ok()?.iter().collect())
    }

    /// The raw cells of a column (`None` for a null cell).
    pub fn cells(&self, name: &str) -> Option<Vec<Option<&str>>> {
        let column = match self.df.column(name) {
            Ok(column) => column,
            Err(_) => {
                let (_, text) = self.number_text.iter().find(|(n, _)| n == name)?;
                text.get_or_init(|| {
                    let typed = self.typed_column(name).expect("a typed number column");
                    typed.cast(&DataType::String).expect("numbers cast to text")
                })
            }
        };
        let strings = column.str().ok()?;
        Some(strings.iter().collect())
    }
}

/// Types read as numbers without a round trip through text: integers and doubles (a
/// float's shortest text parses to a different double than the float widened).
fn is_number(dtype: &DataType) -> bool {
    dtype.is_integer() || *dtype == DataType::Float64
}

/// Read a whole CSV or Parquet file as text columns.
pub fn read_table(path: &Path, options: &ReadOptions) -> Result<Table> {
    check_readable_file(path)?;
    match Format::of_input(path)? {
        // A CSV is read as one chunk of `predict`'s reader, so training, evaluation and
        // scoring skip the same blank lines and name a bad record by the same line.
        Format::Csv => ChunkReader::open(path, options.clone(), usize::MAX)?.whole(),
        Format::Parquet => {
            let df = to_text_columns(path, read_parquet(path, None)?)?;
            Ok(Table::text(df))
        }
        Format::Arrow | Format::Spreadsheet => {
            ChunkReader::open(path, options.clone(), usize::MAX)?.whole()
        }
    }
}

/// A whole CSV held in memory as a table, read exactly as a file would be (`name` names it
/// in errors).
pub fn table_from_csv(name: &Path, bytes: Vec<u8>, options: &ReadOptions) -> Result<Table> {
    let reader = Box::new(std::io::Cursor::new(bytes));
    ChunkReader::from_csv(name, reader, options.clone(), usize::MAX)?.whole()
}

/// A table of text columns given cell by cell (`None`: a missing cell): the table a CSV
/// holding the same cells reads as, without writing and parsing CSV text (the HTTP scorer
/// reads JSON rows this way).
pub fn table_from_cells(name: &Path, columns: Vec<(&str, Vec<Option<&str>>)>) -> Result<Table> {
    let columns = columns
        .into_iter()
        .map(|(column, cells)| Column::new(column.into(), cells))
        .collect();
    let df = DataFrame::new_infer_height(columns)
        .map_err(|e| PatronError::data(name, polars_message(&e)))?;
    Ok(Table::text(df))
}

/// Fail early, with a clear message, for paths that are missing or not regular files.
pub fn check_readable_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(_) => Err(PatronError::data(
            path,
            "file not found (relative paths resolve against the working directory)",
        )),
        Ok(m) if m.is_dir() => Err(PatronError::data(
            path,
            "is a directory; expected a .csv, .parquet, .arrow or .xlsx file",
        )),
        Ok(_) => Ok(()),
    }
}

/// The separator of a CSV whose `header` the configured `delimiter` leaves as one
/// column while another common separator cuts it into several (the most fields wins):
/// a table patron trains on or scores always has more than one column, so such a file
/// can only mean that separator (the UCI bank files use `;`, a `.tsv` tabs). `None`
/// when the configured one is right or nothing else fits.
fn sniff_delimiter(header: &[u8], delimiter: u8) -> Option<u8> {
    if scan_fields(header, delimiter).0 > 1 {
        return None;
    }
    [b',', b';', b'\t', b'|']
        .into_iter()
        .filter(|&c| c != delimiter)
        .map(|c| (scan_fields(header, c).0, c))
        .filter(|&(fields, _)| fields > 1)
        .max_by_key(|&(fields, _)| fields)
        .map(|(_, c)| c)
}

/// How a separator is named in a message.
pub fn describe_delimiter(c: u8) -> &'static str {
    match c {
        b';' => "semicolon",
        b',' => "comma",
        b'\t' => "tab",
        b'|' => "pipe",
        _ => "custom",
    }
}

/// Parse CSV bytes with a header into a frame of text columns (the header and records
/// were checked as they were read, see [`csv_source`] and [`next_records`]).
fn parse_csv_bytes(path: &Path, bytes: Vec<u8>, delimiter: u8) -> Result<DataFrame> {
    let options = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(false)
        .map_parse_options(|p| p.with_separator(delimiter));
    let failed = |e: PolarsError| PatronError::data(path, polars_message(&e));
    // Each record was checked as it was read (`next_records`), so what polars still
    // refuses is said in its words.
    let mut df = options
        .into_reader_with_file_handle(Cursor::new(&bytes[..]))
        .finish()
        .map_err(failed)?;
    // "age, job, y" names "job", as `check_header` found no two names the same that way.
    let names = df.get_column_names_owned();
    if names.iter().any(|n| n.trim() != n.as_str()) {
        let trimmed: Vec<&str> = names.iter().map(|n| n.trim()).collect();
        df.set_column_names(&trimmed).map_err(failed)?;
    }
    Ok(df)
}

/// A record starting on `line` must close its quotes and hold no more fields than the
/// header's `expected` (fewer are read as missing values).
fn check_record(
    path: &Path,
    record: &[u8],
    line: usize,
    delimiter: u8,
    expected: usize,
) -> Result<()> {
    let (fields, unclosed) = scan_fields(record, delimiter);
    // `read_record` only returns a record with a quote open at the end of the input.
    if unclosed {
        return Err(PatronError::data(
            path,
            format!(
                "line {line}: a quoted field is not closed before the end of the file; check the quoting"
            ),
        ));
    }
    if fields > expected {
        return Err(PatronError::data(
            path,
            format!(
                "line {line} has {fields} fields but the header has {expected}; check the quoting or data.delimiter"
            ),
        ));
    }
    Ok(())
}

/// Fields of one CSV record (its delimiters outside quotes, plus one, so separators and
/// newlines inside quoted fields do not count), and whether a quote is left open.
fn scan_fields(record: &[u8], delimiter: u8) -> (usize, bool) {
    let mut in_quotes = false;
    let mut fields = 1;
    for &b in record {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            fields += 1;
        }
    }
    (fields, in_quotes)
}

/// Records (or sheet rows) read ahead of a table for a title or notes above its header.
pub(crate) const PREAMBLE_LOOK_AHEAD: usize = 20;

/// The index of the header among a table's first rows, given each row's count of
/// non-empty cells: 0, unless rows of at most half the widest row's cells (a title,
/// "generated on ..." notes, blank lines) come before the first row as wide as any, and
/// no row after it is that narrow but a blank one (the table's rows). Excel pads a CSV's
/// every line to the widest, so cells are counted, not separators.
pub(crate) fn table_start(widths: &[usize]) -> usize {
    let widest = widths.iter().copied().max().unwrap_or(0);
    let Some(header) = widths.iter().position(|&w| w == widest) else {
        return 0;
    };
    let note = |w: usize| w * 2 <= widest;
    if widest < 2
        || !widths[..header].iter().all(|&w| note(w))
        || !widths[header + 1..].iter().all(|&w| w == 0 || !note(w))
    {
        return 0;
    }
    header
}

/// Whether a record holds nothing but whitespace.
fn is_blank(record: &[u8]) -> bool {
    record.iter().all(u8::is_ascii_whitespace)
}

/// The fields of one CSV record that hold more than whitespace and quotes.
fn filled_fields(record: &[u8], delimiter: u8) -> usize {
    let (mut in_quotes, mut filled, mut count) = (false, false, 0);
    for &b in record {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            count += usize::from(filled);
            filled = false;
        } else if !b.is_ascii_whitespace() {
            filled = true;
        }
    }
    count + usize::from(filled)
}

/// Name the second and later columns a header leaves blank `Unnamed: I` (I from 0, as
/// pandas does), so Excel's padding (`id,plan,,,`) reads; the first keeps the name `""`
/// that runs trained on a single blank column know it by. Their cells decide what they
/// are: padding is empty and so no feature.
fn name_blank_columns(header: &mut Vec<u8>, delimiter: u8) {
    let text = String::from_utf8_lossy(header).into_owned();
    let line = text.trim_end_matches(['\r', '\n']);
    let blank = |f: &str| f.trim().trim_matches('"').trim().is_empty();
    let fields: Vec<&str> = line.split(delimiter as char).collect();
    if fields.iter().filter(|f| blank(f)).count() < 2 {
        return;
    }
    let mut seen = false;
    let named: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| match (blank(f), seen) {
            (true, true) => format!("Unnamed: {i}"),
            (true, false) => {
                seen = true;
                f.to_string()
            }
            _ => f.to_string(),
        })
        .collect();
    let ending = &text[line.len()..];
    *header = format!("{}{ending}", named.join(&(delimiter as char).to_string())).into_bytes();
}

/// Duplicate header names are errors rather than silently renamed columns.
fn check_header(path: &Path, bytes: &[u8], delimiter: u8) -> Result<()> {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let header = String::from_utf8_lossy(&bytes[..end]);
    let names: Vec<String> = header
        .trim_end_matches('\r')
        .split(delimiter as char)
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            return Err(PatronError::data(
                path,
                format!(
                    "header names column {name:?} twice (column {}); give every column a unique name",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

/// Rows of a Parquet file with the file's types.
fn read_parquet(path: &Path, slice: Option<(usize, usize)>) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| PatronError::io(path, e))?;
    ParquetReader::new(file)
        .with_slice(slice)
        .finish()
        .map_err(|e| PatronError::data(path, polars_message(&e)))
}

/// Cast every column to text so Parquet input follows the same typing rules as CSV.
fn to_text_columns(path: &Path, df: DataFrame) -> Result<DataFrame> {
    let columns = df
        .columns()
        .iter()
        .map(|c| c.cast(&DataType::String))
        .collect::<PolarsResult<Vec<_>>>()
        .map_err(|e| PatronError::data(path, polars_message(&e)))?;
    DataFrame::new_infer_height(columns).map_err(|e| PatronError::data(path, polars_message(&e)))
}

/// polars errors can span several lines; keep the first, which says what happened.
fn polars_message(e: &PolarsError) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    format!("could not read the table: {first}")
}

/// Reads a file in chunks of at most `chunk_rows` rows, so memory stays flat.
pub struct ChunkReader {
    path: std::path::PathBuf,
    options: ReadOptions,
    chunk_rows: usize,
    source: ChunkSource,
    /// Rows returned so far (the 0-based index of the next chunk's first row).
    pub rows_read: usize,
    /// The separator found in a CSV header where the configured one was wrong
    /// (`options.delimiter` then holds it).
    sniffed_delimiter: Option<u8>,
}

enum ChunkSource {
    Csv {
        reader: Box<dyn BufRead + Send>,
        header: Vec<u8>,
        done: bool,
        /// Lines read so far and the file's encoding.
        text: CsvText,
    },
    Parquet {
        total: usize,
        schema: Schema,
    },
    /// Arrow record batches (a file, or a stream on standard input).
    Arrow(Box<arrow::ArrowBatches>),
    /// A workbook's first sheet, read whole (its chunks are slices of it).
    Sheet(spreadsheet::Sheet),
    /// One text per line (standard input of a text model).
    Lines {
        reader: Box<dyn BufRead + Send>,
        columns: Vec<String>,
        done: bool,
    },
}

impl ChunkReader {
    /// Open a CSV, Parquet or Arrow file by its extension (or standard input as CSV when
    /// `path` is `-`).
    pub fn open(path: &Path, options: ReadOptions, chunk_rows: usize) -> Result<ChunkReader> {
        Self::open_as(path, None, options, chunk_rows)
    }

    /// Open a file (or standard input, `-`) in `format`, or by its extension (CSV for
    /// standard input) when `None`.
    pub fn open_as(
        path: &Path,
        format: Option<Format>,
        mut options: ReadOptions,
        chunk_rows: usize,
    ) -> Result<ChunkReader> {
        let mut sniffed = None;
        let mut csv = |path: &Path, reader: Box<dyn BufRead + Send>| {
            let (source, found) = csv_source(path, reader, options.delimiter)?;
            sniffed = found;
            Ok::<_, PatronError>(source)
        };
        let source = if path == Path::new("-") {
            match format.unwrap_or(Format::Csv) {
                Format::Csv => csv(path, Box::new(BufReader::new(std::io::stdin())))?,
                Format::Arrow => ChunkSource::Arrow(Box::new(arrow::ArrowBatches::open(path)?)),
                Format::Parquet | Format::Spreadsheet => {
                    return Err(PatronError::Usage(
                        "Parquet and workbooks cannot be read from standard input (they are read from their end); give a file, or send CSV or an Arrow stream".into(),
                    ));
                }
            }
        } else {
            check_readable_file(path)?;
            match format.map_or_else(|| Format::of_input(path), Ok)? {
                Format::Csv => {
                    let file = File::open(path).map_err(|e| PatronError::io(path, e))?;
                    let bytes: Box<dyn Read + Send> = if gzipped(path) {
                        // Multi-member: concatenated gzip files (`cat a.gz b.gz`) are one.
                        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
                    } else {
                        Box::new(file)
                    };
                    csv(path, Box::new(BufReader::with_capacity(1 << 20, bytes)))?
                }
                Format::Parquet => {
                    let file = File::open(path).map_err(|e| PatronError::io(path, e))?;
                    let mut reader = ParquetReader::new(file);
                    let failed = |e: PolarsError| PatronError::data(path, polars_message(&e));
                    let total = reader.num_rows().map_err(failed)?;
                    let schema =
                        Schema::from_arrow_schema(reader.schema().map_err(failed)?.as_ref());
                    ChunkSource::Parquet { total, schema }
                }
                Format::Arrow => ChunkSource::Arrow(Box::new(arrow::ArrowBatches::open(path)?)),
                Format::Spreadsheet => {
                    ChunkSource::Sheet(spreadsheet::read_sheet(path, &options.sheet)?)
                }
            }
        };
        if let Some(found) = sniffed {
            options.delimiter = found;
        }
        Ok(ChunkReader {
            path: path.to_path_buf(),
            options,
            chunk_rows: chunk_rows.max(1),
            source,
            rows_read: 0,
            sniffed_delimiter: sniffed,
        })
    }

    /// Read CSV from `reader` (a request body, say), naming it `name` in errors.
    pub fn from_csv(
        name: &Path,
        reader: Box<dyn BufRead + Send>,
        mut options: ReadOptions,
        chunk_rows: usize,
    ) -> Result<ChunkReader> {
        let (source, sniffed) = csv_source(name, reader, options.delimiter)?;
        options.delimiter = sniffed.unwrap_or(options.delimiter);
        Ok(ChunkReader {
            path: name.to_path_buf(),
            options,
            chunk_rows: chunk_rows.max(1),
            source,
            rows_read: 0,
            sniffed_delimiter: sniffed,
        })
    }

    /// Read standard input as one text per line, into a table whose first column in
    /// `columns` holds the line and the others are missing (an empty line is an empty text).
    pub fn open_lines(columns: &[String], chunk_rows: usize) -> ChunkReader {
        ChunkReader {
            path: "-".into(),
            options: ReadOptions::new(b',', &[]),
            chunk_rows: chunk_rows.max(1),
            source: ChunkSource::Lines {
                reader: Box::new(BufReader::new(std::io::stdin())),
                columns: columns.to_vec(),
                done: false,
            },
            rows_read: 0,
            sniffed_delimiter: None,
        }
    }

    /// The columns and their types where the input has types (Parquet, Arrow).
    pub fn typed_schema(&self) -> Option<Schema> {
        match &self.source {
            ChunkSource::Parquet { schema, .. } => Some(schema.clone()),
            ChunkSource::Arrow(batches) => Some(batches.schema()),
            ChunkSource::Sheet(sheet) => Some(sheet.frame.schema().as_ref().clone()),
            ChunkSource::Csv { .. } | ChunkSource::Lines { .. } => None,
        }
    }

    /// Every remaining row as one table (a header alone gives a table with no rows).
    fn whole(mut self) -> Result<Table> {
        let mut table = match self.next_chunk()? {
            Some(table) => table,
            None => self.header_only()?,
        };
        table.sniffed_delimiter = self.sniffed_delimiter;
        match &self.source {
            ChunkSource::Csv { text, .. } => {
                table.recoded = text.recoded();
                table.preamble = text.preamble;
            }
            ChunkSource::Sheet(sheet) => {
                table.preamble = sheet.preamble;
                table.sheets = sheet.unread();
            }
            _ => {}
        }
        Ok(table)
    }

    /// The table of a CSV with a header and no data rows (empty for other sources).
    fn header_only(&self) -> Result<Table> {
        let df = match &self.source {
            ChunkSource::Csv { header, .. } => {
                parse_csv_bytes(&self.path, header.clone(), self.options.delimiter)?
            }
            ChunkSource::Arrow(batches) => DataFrame::empty_with_schema(&batches.schema()),
            ChunkSource::Sheet(sheet) => sheet.frame.clear(),
            _ => DataFrame::empty(),
        };
        let df = to_text_columns(&self.path, df)?;
        Ok(Table::text(df))
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Table>> {
        let (path, first_row) = (&self.path, self.rows_read);
        let df = match &mut self.source {
            ChunkSource::Lines {
                reader,
                columns,
                done,
            } => {
                let Some(df) =
                    next_lines(reader.as_mut(), columns, done, first_row, self.chunk_rows)?
                else {
                    return Ok(None);
                };
                // Texts are taken as they are: no typing, no missing values.
                self.rows_read += df.height();
                return Ok(Some(Table::text(df)));
            }
            ChunkSource::Parquet { total, .. } => {
                if first_row >= *total {
                    return Ok(None);
                }
                let n = self.chunk_rows.min(*total - first_row);
                let typed = read_parquet(path, Some((first_row, n)))?;
                return self.typed_chunk(typed).map(Some);
            }
            ChunkSource::Arrow(batches) => {
                let Some(typed) = batches.next_frame(self.chunk_rows)? else {
                    return Ok(None);
                };
                return self.typed_chunk(typed).map(Some);
            }
            ChunkSource::Sheet(sheet) => {
                if first_row >= sheet.frame.height() {
                    return Ok(None);
                }
                let typed = sheet.frame.slice(first_row as i64, self.chunk_rows);
                // Each chunk knows its sheet was the first of several, for the hint of a
                // column the scoring does not find (`preprocess::missing_from`).
                let sheets = sheet.unread();
                let mut table = self.typed_chunk(typed)?;
                table.sheets = sheets;
                return Ok(Some(table));
            }
            ChunkSource::Csv {
                reader,
                header,
                done,
                text,
            } => {
                let delimiter = self.options.delimiter;
                let records = next_records(
                    path,
                    reader.as_mut(),
                    header,
                    delimiter,
                    done,
                    text,
                    self.chunk_rows,
                );
                let Some(bytes) = records? else {
                    return Ok(None);
                };
                parse_csv_bytes(path, bytes, self.options.delimiter)?
            }
        };
        self.rows_read += df.height();
        Ok(Some(Table::text(df)))
    }
}

impl ChunkReader {
    /// A chunk of typed input: its columns as text, but for the number columns, which
    /// are made text only if asked for; the typed columns kept.
    fn typed_chunk(&mut self, typed: DataFrame) -> Result<Table> {
        self.rows_read += typed.height();
        let (numbers, others): (Vec<&Column>, Vec<&Column>) =
            typed.columns().iter().partition(|c| is_number(c.dtype()));
        let others = DataFrame::new(typed.height(), others.into_iter().cloned().collect())
            .map_err(|e| PatronError::data(&self.path, polars_message(&e)))?;
        let df = to_text_columns(&self.path, others)?;
        Ok(Table {
            df,
            number_text: numbers
                .iter()
                .map(|c| (c.name().clone(), OnceLock::new()))
                .collect(),
            typed: Some(typed),
            sniffed_delimiter: None,
            recoded: None,
            sheets: None,
            preamble: 0,
        })
    }
}

/// Where a CSV's reading stands: the lines read, for error messages (records can span
/// lines and blank lines are skipped, so rows do not count them), and the file's legacy
/// encoding once a record was not UTF-8.
#[derive(Default)]
struct CsvText {
    /// Lines read so far, the header's included.
    lines: usize,
    /// The encoding of a file that is not UTF-8, found at its first such record.
    legacy: Option<&'static encoding_rs::Encoding>,
    /// Lines that were not UTF-8.
    recoded: usize,
    /// Lines above the header skipped as a title or notes.
    preamble: usize,
}

impl CsvText {
    /// The record that starts `bytes` (from index `from`) as UTF-8: as it is, or decoded
    /// from the file's legacy encoding, which the first record that is not UTF-8 decides
    /// with Mozilla's detector (that record and the reader's buffered bytes after it: a
    /// few lines can leave Windows-1252 and GBK apart only by chance). Text in no
    /// encoding (a binary file, a NUL byte) is an error naming the line.
    fn decode_record(
        &mut self,
        path: &Path,
        bytes: &mut Vec<u8>,
        from: usize,
        reader: &mut dyn BufRead,
    ) -> Result<()> {
        let record = &bytes[from..];
        let Err(e) = std::str::from_utf8(record) else {
            return Ok(());
        };
        let line = self.lines + 1 + newlines(&record[..e.valid_up_to()]);
        if record.contains(&0) {
            return Err(not_utf8(path, line));
        }
        let encoding = *self.legacy.get_or_insert_with(|| {
            let mut detector = chardetng::EncodingDetector::new();
            detector.feed(record, false);
            // Peeking never consumes; a read error shows again at the next record.
            let ahead = reader.fill_buf().unwrap_or(&[]);
            detector.feed(ahead, ahead.is_empty());
            detector.guess(None, false)
        });
        let text = encoding
            .decode_without_bom_handling_and_without_replacement(record)
            .ok_or_else(|| not_utf8(path, line))?
            .into_owned();
        bytes.truncate(from);
        bytes.extend_from_slice(text.as_bytes());
        self.recoded += newlines(text.as_bytes()).max(1);
        Ok(())
    }

    /// What the reading found, for a note to the user.
    fn recoded(&self) -> Option<Recoded> {
        self.legacy.map(|e| Recoded {
            encoding: e.name(),
            lines: self.recoded,
        })
    }
}

/// The CSV `header` followed by up to `rows` non-blank records, or `None` at the end.
/// Each record is checked here, where its line in the file is known (`text` counts the
/// lines read so far): UTF-8 (or the file's legacy encoding, [`CsvText::decode_record`]),
/// closed quotes, and no more fields than the header.
fn next_records(
    path: &Path,
    reader: &mut dyn BufRead,
    header: &[u8],
    delimiter: u8,
    done: &mut bool,
    text: &mut CsvText,
    rows: usize,
) -> Result<Option<Vec<u8>>> {
    if *done {
        return Ok(None);
    }
    let (expected, _) = scan_fields(header, delimiter);
    let mut bytes = header.to_vec();
    let mut read = 0;
    while read < rows {
        let before = bytes.len();
        if !read_record(reader, &mut bytes).map_err(|e| PatronError::io(path, e))? {
            *done = true;
            break;
        }
        text.decode_record(path, &mut bytes, before, reader)?;
        let record = &bytes[before..];
        check_record(path, record, text.lines + 1, delimiter, expected)?;
        text.lines += newlines(record);
        if record.iter().all(|b| b.is_ascii_whitespace()) {
            bytes.truncate(before);
            continue;
        }
        read += 1;
    }
    Ok((read > 0).then_some(bytes))
}

fn not_utf8(path: &Path, line: usize) -> PatronError {
    PatronError::data(
        path,
        format!(
            "line {line} is not text (neither UTF-8 nor the file's legacy encoding); save the file as UTF-8"
        ),
    )
}

fn newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// Up to `rows` lines of text as a table of the text `columns` (the first holds the
/// text, the others are empty), or `None` at the end. `first_row` numbers the lines in
/// errors.
fn next_lines(
    reader: &mut dyn BufRead,
    columns: &[String],
    done: &mut bool,
    first_row: usize,
    rows: usize,
) -> Result<Option<DataFrame>> {
    if *done {
        return Ok(None);
    }
    let mut texts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    while texts.len() < rows {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| PatronError::io("standard input", e))?;
        if n == 0 {
            *done = true;
            break;
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        let number = first_row + texts.len() + 1;
        let text = String::from_utf8(std::mem::take(&mut line)).map_err(|_| {
            PatronError::data(
                "standard input",
                format!("invalid UTF-8 on line {number}; send UTF-8 text, one text per line"),
            )
        })?;
        texts.push(text);
    }
    if texts.is_empty() {
        return Ok(None);
    }
    let height = texts.len();
    let mut cols = Vec::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if i == 0 {
            cols.push(Column::new(
                name.as_str().into(),
                std::mem::take(&mut texts),
            ));
        } else {
            cols.push(Column::new(
                name.as_str().into(),
                vec![None::<&str>; height],
            ));
        }
    }
    DataFrame::new_infer_height(cols)
        .map(Some)
        .map_err(|e| PatronError::Internal(format!("building a table: {e}")))
}

fn csv_source(
    path: &Path,
    mut reader: Box<dyn BufRead + Send>,
    delimiter: u8,
) -> Result<(ChunkSource, Option<u8>)> {
    let mut header = Vec::new();
    read_record(reader.as_mut(), &mut header).map_err(|e| PatronError::io(path, e))?;
    if header.starts_with(b"\xEF\xBB\xBF") {
        header.drain(..3);
    }
    if header.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(PatronError::data(
            path,
            "file is empty; expected a header row and data rows",
        ));
    }
    if header.starts_with(b"\xFF\xFE") || header.starts_with(b"\xFE\xFF") {
        return Err(PatronError::data(
            path,
            "is UTF-16 text (what Excel saves as \"Unicode Text\"); save it as \"CSV UTF-8\"",
        ));
    }
    // A title or notes above the header, as CRM and BI exports write them: the records
    // read ahead go back in front of the reader.
    let mut records = vec![header];
    for _ in 0..PREAMBLE_LOOK_AHEAD {
        let mut record = Vec::new();
        if !read_record(reader.as_mut(), &mut record).map_err(|e| PatronError::io(path, e))? {
            break;
        }
        records.push(record);
    }
    // The header's own separator where it shows one (as below), else the last record's:
    // a title may hold no separator at all.
    let last = records
        .iter()
        .rev()
        .find(|r| !is_blank(r))
        .unwrap_or(&records[0]);
    let guess = sniff_delimiter(&records[0], delimiter)
        .or_else(|| sniff_delimiter(last, delimiter))
        .unwrap_or(delimiter);
    let widths: Vec<usize> = records.iter().map(|r| filled_fields(r, guess)).collect();
    let mut table = records.split_off(table_start(&widths));
    let mut header = table.remove(0);
    let ahead = table.concat();
    let mut reader: Box<dyn BufRead + Send> = if ahead.is_empty() {
        reader
    } else {
        Box::new(Cursor::new(ahead).chain(reader))
    };
    let mut text = CsvText {
        preamble: records.iter().map(|r| newlines(r)).sum(),
        ..CsvText::default()
    };
    text.lines = text.preamble;
    text.decode_record(path, &mut header, 0, reader.as_mut())?;
    let sniffed = sniff_delimiter(&header, delimiter);
    name_blank_columns(&mut header, sniffed.unwrap_or(delimiter));
    check_header(path, &header, sniffed.unwrap_or(delimiter))?;
    if !header.ends_with(b"\n") {
        header.push(b'\n');
    }
    text.lines += newlines(&header);
    let source = ChunkSource::Csv {
        text,
        reader,
        header,
        done: false,
    };
    Ok((source, sniffed))
}

/// Append one CSV record (one line, or several when a quoted field holds newlines) to `out`.
/// Returns false at end of input.
fn read_record(reader: &mut dyn BufRead, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let start = out.len();
    let mut in_quotes = false;
    loop {
        let line_start = out.len();
        let n = reader.read_until(b'\n', out)?;
        if n == 0 {
            if out.len() > start && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            return Ok(out.len() > start);
        }
        for &b in &out[line_start..] {
            if b == b'"' {
                in_quotes = !in_quotes;
            }
        }
        if !in_quotes {
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            return Ok(true);
        }
    }
}

/// The text of each row in the segment columns `names` (`(missing)` for blank cells).
pub fn segment_columns(
    table: &Table,
    names: &[String],
    read: &ReadOptions,
    path: &Path,
    required: bool,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for name in names {
        match table.cells(name) {
            Some(cells) => out.push((
                name.clone(),
                cells
                    .iter()
                    .map(|c| read.clean(*c).unwrap_or("(missing)").to_string())
                    .collect(),
            )),
            None if required => {
                return Err(PatronError::data(
                    path,
                    format!("report.segments column {name:?} not found"),
                ));
            }
            None => {}
        }
    }
    Ok(out)
}

/// A table written to a temporary CSV and read back, for the tests of the layers that
/// read tables.
#[cfg(test)]
pub(crate) fn test_table(text: &str) -> (tempfile::TempDir, std::path::PathBuf, Table) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.csv");
    std::fs::write(&p, text).unwrap();
    let t = read_table(&p, &ReadOptions::new(b',', &["NA".into()])).unwrap();
    (dir, p, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn cells_make_the_table_their_csv_reads_as() {
        let csv = b"\"a\",\"b\"\n\"\",x\n,\"  y \"\n\"say \"\"hi\"\"\",\n".to_vec();
        let options = ReadOptions::new(b',', &[]);
        let read = table_from_csv(Path::new("r"), csv, &options).unwrap();
        let built = table_from_cells(
            Path::new("r"),
            vec![
                ("a", vec![Some(""), None, Some("say \"hi\"")]),
                ("b", vec![Some("x"), Some("  y "), None]),
            ],
        )
        .unwrap();
        assert_eq!(built.column_names(), read.column_names());
        for column in ["a", "b"] {
            assert_eq!(built.cells(column), read.cells(column), "{column}");
        }
        assert_eq!(built.cells("a").unwrap()[2], Some("say \"hi\""));
    }

    #[test]
    fn reads_text_columns_with_bom_crlf_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a.csv",
            b"\xEF\xBB\xBFid,x,note\r\n1, 2.5,\"a, b\"\r\n2,,\"multi\nline\"\r\n",
        );
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.column_names(), vec!["id", "x", "note"]);
        assert_eq!(t.height(), 2);
        let x = t.cells("x").unwrap();
        assert_eq!(x[0], Some(" 2.5"));
        assert_eq!(t.cells("note").unwrap()[1], Some("multi\nline"));
        let p = write(dir.path(), "s.csv", b"id, x ,\" note\"\n1,2,3\n");
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.column_names(), vec!["id", "x", "note"]);
    }

    #[test]
    fn a_table_starts_below_a_title_or_notes() {
        assert_eq!(table_start(&[5, 5, 4, 5]), 0);
        // A title, a "generated on" line and a blank one; the rows below may miss cells.
        assert_eq!(table_start(&[1, 2, 0, 5, 5, 3, 0, 5]), 3);
        // A header with an unnamed column stays the header (its error names the column).
        assert_eq!(table_start(&[4, 5, 5]), 0);
        // Narrow rows below the widest one are no table: nothing is skipped.
        assert_eq!(table_start(&[1, 4, 2, 4]), 0);
        assert_eq!(table_start(&[1, 1, 1]), 0);
        assert_eq!(table_start(&[]), 0);
    }

    #[test]
    fn a_csv_title_and_notes_above_the_header_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        // Excel pads every line to the widest one.
        let p = write(
            dir.path(),
            "export.csv",
            b"Customer export,,,,\r\nGenerated 2026-11-30,by CRM,,,\r\n,,,,\r\nid,plan,spend,age,vip\r\n1,a,\"1,5\",30,no\r\n2,b,,41,\r\n",
        );
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.column_names(), vec!["id", "plan", "spend", "age", "vip"]);
        assert_eq!(t.height(), 2);
        assert_eq!(t.preamble(), 3);
        assert_eq!(t.cells("spend").unwrap(), vec![Some("1,5"), None]);
        // A bad line is named by its line in the file.
        let mut bad = String::from("Title\nid,plan,spend\n");
        bad.push_str(&"1,a,2\n".repeat(25));
        bad.push_str("1,a,2,3\n");
        let p = write(dir.path(), "bad.csv", bad.as_bytes());
        let e = read_table(&p, &ReadOptions::new(b',', &[])).unwrap_err();
        assert!(e.to_string().contains("line 28 has 4 fields"), "{e}");
        // Excel's separator line.
        let p = write(dir.path(), "sep.csv", b"sep=;\nid;plan;spend\n1;a;1,5\n");
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.column_names(), vec!["id", "plan", "spend"]);
        assert_eq!(t.sniffed_delimiter(), Some(b';'));
        // A plain file: nothing skipped.
        let p = write(dir.path(), "plain.csv", b"id,plan\n1,\n2,b\n");
        assert_eq!(
            read_table(&p, &ReadOptions::new(b',', &[]))
                .unwrap()
                .preamble(),
            0
        );
    }

    #[test]
    fn excel_padding_columns_without_names_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "pad.csv",
            b"id,plan,,,\r\n1,a,,,\r\n2,b,,x,\r\n",
        );
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(
            t.column_names(),
            vec!["id", "plan", "", "Unnamed: 3", "Unnamed: 4"]
        );
        assert_eq!(t.cells("Unnamed: 3").unwrap(), vec![None, Some("x")]);
        // A name twice is still an error.
        let p = write(dir.path(), "twice.csv", b"id,id,,\n1,2,,\n");
        assert!(read_table(&p, &ReadOptions::new(b',', &[])).is_err());
    }

    #[test]
    fn a_gzipped_csv_reads_as_its_text() {
        use std::io::Write;
        let gz = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        // Two gzip members, as `cat a.gz b.gz` makes.
        let mut bytes = gz(b"id;x\n1;a\n");
        bytes.extend(gz(b"2;b\n"));
        let p = write(dir.path(), "t.CSV.gz", &bytes);
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.cells("x").unwrap(), [Some("a"), Some("b")]);
        assert_eq!(t.sniffed_delimiter(), Some(b';'));
        let p = write(dir.path(), "t.parquet.gz", &bytes);
        let err = read_table(&p, &ReadOptions::new(b',', &[])).unwrap_err();
        assert!(err.to_string().contains("must be a .csv.gz"), "{err}");
        // Output names keep their plain formats.
        assert!(Format::of(Path::new("out.csv.gz")).is_err());
    }

    #[test]
    fn a_header_the_delimiter_leaves_whole_picks_the_separator() {
        assert_eq!(sniff_delimiter(b"a,b;c\n", b','), None);
        assert_eq!(sniff_delimiter(b"a;b;c\n", b','), Some(b';'));
        assert_eq!(sniff_delimiter(b"a\tb\tc\r\n", b','), Some(b'\t'));
        assert_eq!(sniff_delimiter(b"a,b,c\n", b';'), Some(b','));
        // The most fields wins; a separator inside quotes does not count.
        assert_eq!(sniff_delimiter(b"\"a;b\"|c|d\n", b','), Some(b'|'));
        assert_eq!(sniff_delimiter(b"just one\n", b','), None);

        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s.csv", b"x;note\n1,5;\"a; b\"\n2;\n");
        let t = read_table(&p, &ReadOptions::new(b',', &[])).unwrap();
        assert_eq!(t.sniffed_delimiter(), Some(b';'));
        assert_eq!(t.cells("x").unwrap(), [Some("1,5"), Some("2")]);
        assert_eq!(t.cells("note").unwrap(), [Some("a; b"), None]);
        let t = read_table(&p, &ReadOptions::new(b';', &[])).unwrap();
        assert_eq!(t.sniffed_delimiter(), None);
        assert_eq!(
            t.present_rows("note", &ReadOptions::new(b';', &[])),
            Some(vec![0])
        );
        assert_eq!(t.present_rows("nope", &ReadOptions::new(b';', &[])), None);
        let kept = t.take_rows(&p, &[1]).unwrap();
        assert_eq!(kept.cells("x").unwrap(), [Some("2")]);
    }

    #[test]
    fn a_csv_in_a_legacy_encoding_reads_as_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let options = ReadOptions::new(b',', &[]);
        // Windows-1252, as Excel saves "CSV" in Western Europe: the header and one row
        // have accents; a record spans two lines.
        let p = write(
            dir.path(),
            "w.csv",
            b"ville,note,caf\xe9\n1,\"tr\xe8s bien\nvraiment\",Gen\xe8ve\n2,ok,Z\xfcrich\n3,plain,Bern\n",
        );
        let t = read_table(&p, &options).unwrap();
        assert_eq!(t.column_names(), ["ville", "note", "café"]);
        assert_eq!(
            t.cells("café").unwrap(),
            [Some("Genève"), Some("Zürich"), Some("Bern")]
        );
        assert_eq!(t.cells("note").unwrap()[0], Some("très bien\nvraiment"));
        assert_eq!(
            t.recoded(),
            Some(Recoded {
                encoding: "windows-1252",
                lines: 4
            })
        );
        // GBK, as Excel saves "CSV" in China: 这本书很好 / 不好, found as such.
        let (good, bad) = ("这本书很好", "不好");
        let (gbk_good, _, _) = encoding_rs::GBK.encode(good);
        let (gbk_bad, _, _) = encoding_rs::GBK.encode(bad);
        let mut bytes = b"text,y\n".to_vec();
        for _ in 0..5 {
            for (text, y) in [(&gbk_good, "1"), (&gbk_bad, "0")] {
                bytes.extend_from_slice(text);
                bytes.extend_from_slice(format!(",{y}\n").as_bytes());
            }
        }
        let p = write(dir.path(), "g.csv", &bytes);
        let t = read_table(&p, &options).unwrap();
        assert_eq!(t.cells("text").unwrap()[..2], [Some(good), Some(bad)]);
        assert_eq!(t.recoded().unwrap().encoding, "GBK");
        // UTF-8 reads as before, with nothing to say.
        let p = write(dir.path(), "u.csv", "a,b\né,ü\n".as_bytes());
        assert_eq!(read_table(&p, &options).unwrap().recoded(), None);
        // UTF-16 (Excel's "Unicode Text") is named.
        let p = write(dir.path(), "x.csv", b"\xFF\xFEa\x00,\x00b\x00\n\x00");
        let err = read_table(&p, &options).unwrap_err().to_string();
        assert!(err.contains("is UTF-16 text"), "{err}");
    }

    #[test]
    fn chunk_errors_name_the_line_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // Lines: 1 header, 2-4 rows (3 blank), 5 a quoted field over two lines, 7 bad.
        let p = write(
            dir.path(),
            "c.csv",
            b"id,note\n1,a\n\n2,b\n3,\"x\ny\"\n4,\xFF\x00\n",
        );
        let mut reader = ChunkReader::open(&p, ReadOptions::new(b',', &[]), 2).unwrap();
        let first = reader.next_chunk().unwrap().unwrap();
        assert_eq!(first.cells("id").unwrap(), [Some("1"), Some("2")]);
        let err = reader.next_chunk().unwrap_err().to_string();
        assert!(err.contains("line 7 is not text"), "{err}");
        // So is a record with more fields than the header.
        let p = write(
            dir.path(),
            "r.csv",
            b"id,note\n1,a\n\n2,\"b,\nc\"\n3,d\n4,e,f\n",
        );
        let mut reader = ChunkReader::open(&p, ReadOptions::new(b',', &[]), 2).unwrap();
        assert_eq!(reader.next_chunk().unwrap().unwrap().height(), 2);
        let err = reader.next_chunk().unwrap_err().to_string();
        assert!(
            err.contains("line 7 has 3 fields but the header has 2"),
            "{err}"
        );
        // A bad header is an error too (it used to panic the reading thread).
        let p = write(dir.path(), "h.csv", b"id,no\xFF\x00te\n1,a\n");
        let err = ChunkReader::open(&p, ReadOptions::new(b',', &[]), 2)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 1 is not text"), "{err}");
    }

    #[test]
    fn detects_empty_files_and_repeated_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.csv", b"");
        let err = read_table(&p, &ReadOptions::new(b',', &[])).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let p = write(dir.path(), "d.csv", b"a,a\n1,2\n");
        let err = read_table(&p, &ReadOptions::new(b',', &[])).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn ragged_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "r.csv", b"a,b\n1,\"x,\ny\"\n2,3,4\n");
        let err = read_table(&p, &ReadOptions::new(b',', &[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 4 has 3 fields but the header has 2"),
            "{err}"
        );
    }

    #[test]
    fn missing_tokens_are_trimmed_and_case_insensitive() {
        let o = ReadOptions::new(b',', &["NA".into(), "?".into()]);
        assert_eq!(o.clean(Some("  ")), None);
        assert_eq!(o.clean(Some(" na ")), None);
        assert_eq!(o.clean(Some("?")), None);
        assert_eq!(o.clean(None), None);
        assert_eq!(o.clean(Some(" 3 ")), Some("3"));
    }

    #[test]
    fn chunks_cover_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a,b\n");
        for i in 0..25 {
            text.push_str(&format!("{i},\"x\ny{i}\"\n"));
        }
        let p = write(dir.path(), "c.csv", text.as_bytes());
        let mut r = ChunkReader::open(&p, ReadOptions::new(b',', &[]), 10).unwrap();
        let mut sizes = vec![];
        let mut firsts = vec![];
        while let Some(t) = r.next_chunk().unwrap() {
            sizes.push(t.height());
            firsts.push(t.cells("a").unwrap()[0].unwrap().to_string());
        }
        assert_eq!(sizes, vec![10, 10, 5]);
        assert_eq!(firsts, vec!["0", "10", "20"]);
    }
}

//! `patron serve`: exported runs scored over HTTP ([`http`]). This module is the part
//! that knows nothing of HTTP: which runs are served under which names ([`Registry`]),
//! how a request body becomes a table read exactly as `predict` reads a CSV
//! ([`request_table`]), and how scored rows become the answer's objects, with the columns
//! `predict` writes ([`answer`]).

pub mod http;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::data::preprocess::Encoded;
use crate::data::{Table, table_from_cells, table_from_csv};
use crate::error::{PatronError, Result};
use crate::run::{files, sha256_file};
use crate::score::id_column;
use crate::score::reasons::{Outcome, Reasons};
use crate::score::session::Session;
use crate::task::OutputColumn;

/// What errors name as the source of a request's rows.
pub const REQUEST: &str = "request";

/// Most reasons a request may ask for per row.
pub const MAX_REASONS: usize = 20;

/// One served run.
pub struct Model {
    /// The name it is served under.
    pub name: String,
    /// Its run directory.
    pub dir: PathBuf,
    /// The verified run, ready to score.
    pub session: Arc<Session>,
    /// SHA-256 of its `manifest.json`, which pins every other file's hash.
    pub manifest_sha256: String,
    /// Gathers concurrent requests into one scoring call.
    pub batcher: Batcher,
}

/// How concurrent requests are gathered into one scoring call.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most rows in one call (a larger request is scored alone).
    pub max_rows: usize,
    /// Longest the first request of a call waits for others (zero: it takes only the
    /// requests already waiting).
    pub max_wait: Duration,
}

/// Rows a request's network outputs come back with.
type Outputs = (Encoded, std::result::Result<Vec<f64>, String>);

/// One request's rows waiting to be scored.
struct Job {
    encoded: Encoded,
    reply: tokio::sync::oneshot::Sender<Outputs>,
}

/// A model's scoring thread: it takes the waiting requests, up to `max_rows` rows,
/// scores them in one call on the compute pool and hands each its outputs. It stops
/// when its model is dropped (a reload).
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    fn start(session: Arc<Session>, batching: Batching) -> Batcher {
        let (jobs, waiting) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            while let Ok(first) = waiting.recv() {
                let mut rows = first.encoded.rows;
                let mut batch = vec![first];
                let deadline = Instant::now() + batching.max_wait;
                while rows < batching.max_rows {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let next = if left.is_zero() {
                        waiting.try_recv().ok()
                    } else {
                        waiting.recv_timeout(left).ok()
                    };
                    let Some(job) = next else { break };
                    rows += job.encoded.rows;
                    batch.push(job);
                }
                score_batch(&session, batch);
            }
        });
        Batcher { jobs }
    }

    /// Queue `encoded` for scoring; the receiver gets it back with its outputs.
    pub fn submit(&self, encoded: Encoded) -> tokio::sync::oneshot::Receiver<Outputs> {
        let (reply, outputs) = tokio::sync::oneshot::channel();
        // A closed channel drops the reply, which the receiver sees as an error.
        let _ = self.jobs.send(Job { encoded, reply });
        outputs
    }
}

/// Score the requests of one batch in one call (on the compute pool) and answer each.
fn score_batch(session: &Session, batch: Vec<Job>) {
    let outputs = session.run().manifest.model.outputs;
    let logits = rayon::scope(|_| match batch.as_slice() {
        [one] => session.scorer().logits(&one.encoded),
        many => {
            let parts: Vec<&Encoded> = many.iter().map(|j| &j.encoded).collect();
            session.scorer().logits(&Encoded::concat(&parts))
        }
    })
    .map_err(|e| e.to_string());
    let mut start = 0;
    for job in batch {
        let n = job.encoded.rows * outputs;
        let part = logits.as_ref().map(|z| z[start..start + n].to_vec());
        start += n;
        let _ = job.reply.send((job.encoded, part.map_err(Clone::clone)));
    }
}

/// The runs a server holds, by name.
pub struct Registry {
    /// Served runs by name.
    pub models: BTreeMap<String, Arc<Model>>,
}

/// Parse `--checkpoint [NAME=]DIR`: a bare DIR is named by its folder name.
pub fn parse_checkpoint(spec: &str) -> std::result::Result<(String, PathBuf), String> {
    let (name, dir) = match spec.split_once('=') {
        Some((name, dir)) => (name.to_string(), PathBuf::from(dir)),
        None => {
            let dir = PathBuf::from(spec);
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, dir)
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "{spec:?}: a model name is letters, digits, '-', '_' or '.' (write NAME=DIR)"
        ));
    }
    Ok((name, dir))
}

impl Registry {
    /// Load and verify every run, as `predict` would; any damaged run or repeated name
    /// is an error naming it, and nothing is served.
    pub fn load(
        specs: &[(String, PathBuf)],
        device: &Device,
        batching: Batching,
    ) -> Result<Registry> {
        let mut models = BTreeMap::new();
        for (name, dir) in specs {
            if models.contains_key(name) {
                return Err(PatronError::Usage(format!(
                    "two --checkpoint arguments are named {name:?}; name them NAME=DIR"
                )));
            }
            let session = Arc::new(Session::open(dir, device)?);
            let manifest_sha256 = sha256_file(&dir.join(files::MANIFEST))?;
            let model = Model {
                name: name.clone(),
                dir: dir.clone(),
                batcher: Batcher::start(session.clone(), batching),
                session,
                manifest_sha256,
            };
            models.insert(name.clone(), Arc::new(model));
        }
        Ok(Registry { models })
    }

    /// `GET /v1/models`: each model's name, kind, task, labels, input columns with their
    /// types and manifest SHA-256.
    pub fn describe(&self) -> Value {
        let models: Vec<Value> = self
            .models
            .values()
            .map(|m| {
                let run = m.session.run();
                let manifest = &run.manifest;
                let inputs: Vec<Value> = manifest
                    .features
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name, "type": f.kind}))
                    .collect();
                serde_json::json!({
                    "name": m.name,
                    "kind": manifest.model_kind,
                    "task": run.task.name(),
                    "labels": manifest.labels,
                    "inputs": inputs,
                    "id": run.preprocess.id,
                    "manifest_sha256": m.manifest_sha256,
                })
            })
            .collect();
        serde_json::json!({ "models": models })
    }
}

/// A request's body, by its content type.
pub enum Body<'a> {
    /// `{"rows": [...]}` or, for a text run, `{"texts": [...]}`.
    Json(&'a [u8]),
    /// A CSV with a header, in the run's delimiter.
    Csv(&'a [u8]),
}

/// A request that cannot be scored: the message, and the row (from 0) and column when
/// one is to blame.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    /// What is wrong and what to do, in one line.
    pub error: String,
    /// The row of the request, from 0.
    pub row: Option<usize>,
    /// The column.
    pub column: Option<String>,
}

impl BadRequest {
    /// A bad request with no row or column to blame.
    pub fn new(error: impl Into<String>) -> Self {
        BadRequest {
            error: error.into(),
            row: None,
            column: None,
        }
    }
}

impl From<PatronError> for BadRequest {
    fn from(e: PatronError) -> Self {
        BadRequest::new(e.to_string())
    }
}

/// The rows of a request as the table `predict` would read from the same cells. JSON
/// values become CSV cells (a string as it is, a number as its JSON text, a boolean as
/// `true`/`false`, null as a missing cell), so a number sent for a categorical column is
/// its text; a key missing from a row is a missing cell.
pub fn request_table(model: &Model, body: Body) -> std::result::Result<Table, BadRequest> {
    let pre = &model.session.run().preprocess;
    let read = pre.read_options();
    let table = match body {
        Body::Csv(bytes) => table_from_csv(Path::new(REQUEST), bytes.to_vec(), &read)?,
        Body::Json(bytes) => json_table(bytes, pre.text.as_ref().map(|t| t.columns.as_slice()))?,
    };
    if table.height() == 0 {
        return Err(BadRequest::new("the request holds no rows"));
    }
    // Named here, so the error carries the column as a field too.
    let inputs = pre
        .features
        .iter()
        .filter(|f| f.is_column())
        .map(|f| f.name())
        .chain(pre.id.as_deref());
    for column in inputs {
        if !table.has_column(column) {
            return Err(BadRequest {
                column: Some(column.to_string()),
                ..BadRequest::new(format!(
                    "input column {column:?} is missing from the request; send it in every row (null for a missing value)"
                ))
            });
        }
    }
    Ok(table)
}

/// A cheap upper bound of a request body's rows, taken before it is parsed, for the queue
/// limit: a CSV's lines; a JSON body's objects but the outer one (a row is one object), or
/// for `{"texts": [...]}` its strings but the key. At least 1.
pub fn row_estimate(bytes: &[u8], csv: bool) -> usize {
    let count = |c: u8| bytes.iter().filter(|&&b| b == c).count();
    let rows = if csv {
        count(b'\n')
    } else {
        match count(b'{').saturating_sub(1) {
            0 => (count(b'"') / 2).saturating_sub(1),
            objects => objects,
        }
    };
    rows.max(1)
}

/// A JSON value as a CSV cell: read straight from the body, without building a tree (a
/// 1,000-row request parses several times faster than through `serde_json::Value`).
enum Cell<'a> {
    /// A string, unescaped.
    Text(Cow<'a, str>),
    /// A number or a boolean, as the CSV text of its value.
    Plain(String),
    /// null: a missing cell.
    Missing,
    /// An array or an object: not a cell.
    Nested,
}

impl<'de: 'a, 'a> Deserialize<'de> for Cell<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Cells;
        impl<'de> Visitor<'de> for Cells {
            type Value = Cell<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Text(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Plain(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Plain(v.to_string()))
            }
            // The shortest text that reads back as the same number.
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Plain(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Plain(v.to_string()))
            }
            fn visit_unit<E>(self) -> std::result::Result<Cell<'de>, E> {
                Ok(Cell::Missing)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Cell<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Cell::Nested)
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Cell<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Cell::Nested)
            }
        }
        d.deserialize_any(Cells)
    }
}

/// One JSON object's entries in their order.
struct RawRow<'a>(Vec<(Cow<'a, str>, Cell<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawRow<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawRow<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of column: value")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<RawRow<'de>, M::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'de, str>, Cell<'de>>()? {
                    entries.push(entry);
                }
                Ok(RawRow(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// A request body: rows, or texts for a text run.
#[derive(Deserialize)]
struct RawBody<'a> {
    #[serde(borrow, default)]
    rows: Option<Vec<RawRow<'a>>>,
    #[serde(borrow, default)]
    texts: Option<Vec<Cow<'a, str>>>,
}

/// `{"rows": [{column: value}]}` (or `{"texts": [...]}` for a text run) as the table a
/// CSV of the same cells reads as, built straight from the cells.
fn json_table(
    bytes: &[u8],
    text_columns: Option<&[String]>,
) -> std::result::Result<Table, BadRequest> {
    let body: RawBody = serde_json::from_slice(bytes).map_err(|e| {
        BadRequest::new(format!(
            "the body is not valid JSON of {{\"rows\": [{{column: value}}]}} (or {{\"texts\": [...]}} for a text run): {e}"
        ))
    })?;
    let name = Path::new(REQUEST);
    let rows = match (body.rows, body.texts, text_columns) {
        (Some(rows), None, _) => rows,
        (None, Some(texts), Some(columns)) => {
            if texts.is_empty() {
                return Err(BadRequest::new("the request holds no rows"));
            }
            let cells = texts.iter().map(|t| Some(t.as_ref())).collect();
            return Ok(table_from_cells(name, vec![(&columns[0], cells)])?);
        }
        (None, Some(_), None) => {
            return Err(BadRequest::new(
                "\"texts\" is for a text run; send \"rows\" of column: value",
            ));
        }
        _ => {
            return Err(BadRequest::new(
                "the body must hold one array: \"rows\" (or \"texts\" for a text run)",
            ));
        }
    };
    if rows.is_empty() {
        return Err(BadRequest::new("the request holds no rows"));
    }
    // Columns in the order they first appear; a key missing from a row is a missing cell.
    let mut columns: Vec<(&str, Vec<Option<&str>>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        for (j, (key, value)) in row.0.iter().enumerate() {
            let key = key.as_ref();
            // Rows mostly list their keys in one order: the same position is tried first.
            let c = match columns.get(j) {
                Some((name, _)) if *name == key => j,
                _ => *index.entry(key).or_insert_with(|| {
                    columns.push((key, vec![None; rows.len()]));
                    columns.len() - 1
                }),
            };
            columns[c].1[i] = match value {
                Cell::Missing => None,
                Cell::Text(s) => Some(s.as_ref()),
                Cell::Plain(s) => Some(s.as_str()),
                Cell::Nested => {
                    return Err(BadRequest {
                        row: Some(i),
                        column: Some(key.to_string()),
                        ..BadRequest::new(format!(
                            "rows[{i}].{key} is an array or object; a cell is a string, number, boolean or null"
                        ))
                    });
                }
            };
        }
    }
    Ok(table_from_cells(name, columns)?)
}

/// The model inputs of a request's rows.
pub fn encode(model: &Model, table: &Table) -> Result<Encoded> {
    model.session.encode(table, 0, Path::new(REQUEST))
}

/// The answer's JSON text, `{"predictions": [...]}`: one object per row of `table` (its
/// `encoded` inputs gave `logits`) with the columns `predict` writes, in its order: the id
/// (or `row`, the index in the request), the task's score columns and prediction, and
/// `reasons` reasons (`reason_<i>`, `reason_<i>_effect`).
pub fn answer(
    model: &Model,
    table: &Table,
    encoded: &Encoded,
    logits: Vec<f64>,
    reasons: usize,
) -> Result<Vec<u8>> {
    let session = &model.session;
    let run = session.run();
    let pre = &run.preprocess;
    let scored = session.scored(logits);
    let ids = match &pre.id {
        Some(column) => Some(id_column(table, column, Path::new(REQUEST))?),
        None => None,
    };
    let explained = match reasons {
        0 => Vec::new(),
        k => {
            let reasons = Reasons::new(pre, k);
            let outcome = Outcome {
                logits: &scored.logits,
                outputs: run.manifest.model.outputs,
                predicted: &scored.predicted,
                calibration: &run.calibration,
                task: run.task.as_ref(),
            };
            reasons
                .of(session.scorer(), table, encoded, &outcome)?
                .into_iter()
                .map(|r| r.map(|(name, effect)| (name.into_owned(), effect)))
                .collect()
        }
    };
    let per_row = if reasons == 0 {
        0
    } else {
        explained.len() / encoded.rows.max(1)
    };
    let columns = run.task.output_columns();
    let width = columns
        .iter()
        .filter(|c| matches!(c, OutputColumn::Score(_)))
        .count();
    // Written straight as JSON text: a `serde_json::Value` per row costs a map and a
    // string per cell, and allocation was a fifth of a 1,000-row request's profile.
    let mut out = Vec::with_capacity(64 + encoded.rows * 48 * (columns.len() + 2 * per_row));
    let reason_keys: Vec<(String, String)> = (1..=per_row)
        .map(|i| (format!("reason_{i}"), format!("reason_{i}_effect")))
        .collect();
    out.extend_from_slice(b"{\"predictions\":[");
    for r in 0..encoded.rows {
        out.extend_from_slice(if r == 0 { b"{" } else { b",{" });
        match (&pre.id, &ids) {
            (Some(name), Some(ids)) => field(&mut out, name, ids[r].as_str(), true),
            _ => field(&mut out, "row", r, true),
        }
        let mut j = 0;
        for column in &columns {
            match column {
                OutputColumn::Prediction => {
                    let label = scored
                        .predicted
                        .get(r)
                        .and_then(|&c| pre.labels.get(c))
                        .map_or("", String::as_str);
                    field(&mut out, "prediction", label, false);
                }
                OutputColumn::Score(name) => {
                    field(&mut out, name, scored.probs[r * width + j], false);
                    j += 1;
                }
            }
        }
        for (i, (name_key, effect_key)) in reason_keys.iter().enumerate() {
            let (name, effect) = match &explained[r * per_row + i] {
                Some((name, effect)) => (Some(name.as_str()), Some(*effect)),
                None => (None, None),
            };
            field(&mut out, name_key, name, false);
            field(&mut out, effect_key, effect, false);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Append `"key":value` to a JSON object being written (a comma first unless `first`);
/// a number that is not finite is written as null, as `serde_json` writes it.
fn field(out: &mut Vec<u8>, key: &str, value: impl serde::Serialize, first: bool) {
    if !first {
        out.push(b',');
    }
    // Writing a string or a number into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, &value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_named_by_folder_or_explicitly() {
        assert_eq!(
            parse_checkpoint("checkpoints/bank-1").unwrap(),
            ("bank-1".to_string(), PathBuf::from("checkpoints/bank-1"))
        );
        assert_eq!(
            parse_checkpoint("churn=runs/x").unwrap(),
            ("churn".to_string(), PathBuf::from("runs/x"))
        );
        assert!(parse_checkpoint("a b=runs/x").is_err());
    }

    #[test]
    fn row_estimates_bound_the_rows_of_each_body() {
        let rows = br#"{"rows": [{"a": 1, "b": "x"}, {"a": 2}, {"b": null}]}"#;
        assert_eq!(row_estimate(rows, false), 3);
        assert_eq!(row_estimate(br#"{"texts": ["good", "bad"]}"#, false), 2);
        assert_eq!(row_estimate(b"a,b\n1,2\n3,4\n", true), 3);
        assert_eq!(row_estimate(b"", false), 1);
    }

    #[test]
    fn json_rows_become_the_cells_a_csv_would_hold() {
        let body = br#"{"rows": [{"age": 41, "job": "admin", "vip": true}, {"job": "say \"hi\"", "age": null, "x": 1.5e1}]}"#;
        let table = json_table(body, None).unwrap();
        assert_eq!(table.column_names(), ["age", "job", "vip", "x"]);
        assert_eq!(table.cells("age").unwrap(), [Some("41"), None]);
        assert_eq!(
            table.cells("job").unwrap(),
            [Some("admin"), Some("say \"hi\"")]
        );
        assert_eq!(table.cells("vip").unwrap(), [Some("true"), None]);
        assert_eq!(table.cells("x").unwrap(), [None, Some("15")]);
        let columns = ["review".to_string()];
        let texts = br#"{"texts": ["great, really", ""]}"#;
        let table = json_table(texts, Some(&columns)).unwrap();
        assert_eq!(
            table.cells("review").unwrap(),
            [Some("great, really"), Some("")]
        );
        let err = json_table(br#"{"rows": [{"a": 1}, {"a": [1]}]}"#, None).unwrap_err();
        assert_eq!((err.row, err.column.as_deref()), (Some(1), Some("a")));
        for bad in [
            &br#"[1]"#[..],
            br#"{"rows": []}"#,
            br#"{"texts": ["a"]}"#,
            br#"{"rows": 3}"#,
            br#"{"rows": [1]}"#,
            br#"{"rows": [{"a": 1}"#,
        ] {
            let shown = String::from_utf8_lossy(bad);
            assert!(json_table(bad, None).is_err(), "{shown}");
        }
    }
}

//! Arrow IPC in and out: the stream format (standard input and output, `.arrows` files;
//! what Spark's `mapInArrow` and pyarrow's `ipc.new_stream` speak) and the file format
//! (`.arrow`, `.feather` v2). Tables are read record batch by record batch, so memory stays
//! flat in a stream's length.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::array::{Array, Utf8Array};
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema, ArrowSchemaRef, Field as ArrowField};
use polars_arrow::io::ipc::format::ipc::MessageRef;
use polars_arrow::io::ipc::format::ipc::planus::ReadAsRoot;
use polars_arrow::io::ipc::read::{
    FileReader, StreamReader, StreamState, read_file_metadata, read_stream_metadata,
};
use polars_arrow::io::ipc::write::{FileWriter, StreamWriter, WriteOptions};
use polars_arrow::record_batch::RecordBatchT;

use crate::error::{PatronError, Result};

/// The first bytes of an Arrow IPC file (a stream has none).
const FILE_MAGIC: &[u8; 6] = b"ARROW1";

/// A message longer than this is refused rather than allocated (a damaged length).
const MAX_MESSAGE: usize = 1 << 31;

/// One record batch as it came.
type Batch = RecordBatchT<Box<dyn Array>>;

/// Record batches from an Arrow stream or file, handed out as typed frames of a chosen
/// number of rows.
pub struct ArrowBatches {
    path: PathBuf,
    source: Source,
    schema: ArrowSchemaRef,
    /// Rows of the last batch read that did not fit the previous frame.
    pending: Option<DataFrame>,
}

enum Source {
    Stream(Box<StreamReader<MessageReader<Box<dyn Read + Send>>>>),
    File(Box<FileReader<BufReader<File>>>),
}

impl ArrowBatches {
    /// Open an Arrow file or stream file (`-`: a stream on standard input); the format is
    /// told by the file's first bytes.
    pub fn open(path: &Path) -> Result<ArrowBatches> {
        if path == Path::new("-") {
            return Self::from_stream(path, Box::new(io::stdin()));
        }
        let mut file = File::open(path).map_err(|e| PatronError::io(path, e))?;
        let mut magic = [0u8; 6];
        let is_file = match file.read_exact(&mut magic) {
            Ok(()) => &magic == FILE_MAGIC,
            Err(_) => false,
        };
        file.seek(SeekFrom::Start(0))
            .map_err(|e| PatronError::io(path, e))?;
        if !is_file {
            return Self::from_stream(path, Box::new(file));
        }
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let metadata = read_file_metadata(&mut reader).map_err(|e| unreadable(path, &e))?;
        let schema = metadata.schema.clone();
        Ok(ArrowBatches {
            path: path.to_path_buf(),
            source: Source::File(Box::new(FileReader::new(reader, metadata, None, None))),
            schema,
            pending: None,
        })
    }

    /// Read an Arrow stream from `reader` (a pipe: it is never asked to seek), naming it
    /// `name` in errors.
    pub fn from_stream(name: &Path, reader: Box<dyn Read + Send>) -> Result<ArrowBatches> {
        let mut messages = MessageReader::new(reader);
        let metadata = read_stream_metadata(&mut messages).map_err(|e| {
            if messages.base + messages.message.len() as u64 == 0 {
                PatronError::data(
                    name,
                    "is empty; expected an Arrow stream, which starts with its schema",
                )
            } else {
                unreadable(name, &e)
            }
        })?;
        let schema = Arc::new(metadata.schema.clone());
        Ok(ArrowBatches {
            path: name.to_path_buf(),
            source: Source::Stream(Box::new(StreamReader::new(messages, metadata, None))),
            schema,
            pending: None,
        })
    }

    /// The columns and their types, as polars reads them.
    pub fn schema(&self) -> Schema {
        self.schema
            .iter_values()
            .map(|f| Field::new(f.name.clone(), DataType::from_arrow_field(f)))
            .collect()
    }

    /// The next `rows` rows (fewer at the end) as a typed frame, or `None` at the end.
    pub fn next_frame(&mut self, rows: usize) -> Result<Option<DataFrame>> {
        let mut frame = self.pending.take();
        while frame.as_ref().map_or(0, DataFrame::height) < rows {
            let Some(batch) = self.next_batch()? else {
                break;
            };
            let next = self.to_frame(batch)?;
            match &mut frame {
                Some(frame) => {
                    frame
                        .vstack_mut_owned(next)
                        .map_err(|e| unreadable(&self.path, &e))?;
                }
                None => frame = Some(next),
            }
        }
        let Some(mut frame) = frame.filter(|f| f.height() > 0) else {
            return Ok(None);
        };
        if frame.height() > rows {
            let (head, tail) = frame.split_at(rows as i64);
            self.pending = Some(tail);
            frame = head;
        }
        frame.rechunk_mut();
        Ok(Some(frame))
    }

    fn next_batch(&mut self) -> Result<Option<Batch>> {
        let next = match &mut self.source {
            // A stream that ends without its end marker ends there too.
            Source::Stream(reader) => match reader.next() {
                Some(Ok(StreamState::Some(batch))) => Some(Ok(batch)),
                Some(Ok(StreamState::Waiting)) | None => None,
                Some(Err(e)) => Some(Err(e)),
            },
            Source::File(reader) => reader.next(),
        };
        next.transpose().map_err(|e| unreadable(&self.path, &e))
    }

    fn to_frame(&self, batch: Batch) -> Result<DataFrame> {
        let height = batch.height();
        let columns = batch
            .into_arrays()
            .into_iter()
            .zip(self.schema.iter_values())
            .map(|(array, field)| {
                Series::from_arrow(field.name.clone(), array)
                    .map(Column::from)
                    .map_err(|_| {
                        PatronError::data(
                            &self.path,
                            format!(
                                "column {:?} has Arrow type {:?}, which patron cannot read; cast it to a number or a string first",
                                field.name.as_str(),
                                field.dtype
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        DataFrame::new(height, columns).map_err(|e| unreadable(&self.path, &e))
    }
}

fn unreadable(path: &Path, e: &PolarsError) -> PatronError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    PatronError::data(
        path,
        format!("could not read the Arrow IPC data: {first}; expected an Arrow stream or file"),
    )
}

/// Holds one whole IPC message at a time, so polars-arrow's stream reader, which seeks
/// inside a message's body, can read a pipe: its seeks stay inside the held message.
struct MessageReader<R> {
    inner: R,
    /// The current message: its length prefix, metadata and body.
    message: Vec<u8>,
    /// Read position inside `message`.
    at: usize,
    /// Stream offset of `message`'s first byte.
    base: u64,
}

impl<R: Read> MessageReader<R> {
    fn new(inner: R) -> Self {
        MessageReader {
            inner,
            message: Vec::new(),
            at: 0,
            base: 0,
        }
    }

    /// Replace the held message by the next one (empty at the end of the input). An input
    /// that ends inside a message is an error, never taken for the end of the stream.
    fn load(&mut self) -> io::Result<()> {
        self.load_message().map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the input ends inside a message",
                )
            } else {
                e
            }
        })
    }

    fn load_message(&mut self) -> io::Result<()> {
        self.base += self.message.len() as u64;
        self.message.clear();
        self.at = 0;
        let mut word = [0u8; 4];
        if !read_or_end(&mut self.inner, &mut word)? {
            return Ok(());
        }
        self.message.extend_from_slice(&word);
        // The continuation marker comes before the length since Arrow 0.15.
        if word == [0xff; 4] {
            self.inner.read_exact(&mut word)?;
            self.message.extend_from_slice(&word);
        }
        let Ok(length @ 1..) = usize::try_from(i32::from_le_bytes(word)) else {
            // The end marker (or a damaged length, which the reader reports).
            return Ok(());
        };
        let body = self.append(length)?;
        let body = MessageRef::read_as_root(body)
            .ok()
            .and_then(|m| m.body_length().ok())
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        self.append(body)?;
        Ok(())
    }

    /// Read `n` more bytes of the message, returning them.
    fn append(&mut self, n: usize) -> io::Result<&[u8]> {
        if n > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an Arrow message claims {n} bytes"),
            ));
        }
        // Read rather than allocated up front: garbage (a CSV sent as Arrow) can claim
        // hundreds of megabytes it does not have.
        let start = self.message.len();
        let got = (&mut self.inner)
            .take(n as u64)
            .read_to_end(&mut self.message)?;
        if got < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(&self.message[start..])
    }
}

/// Fill `buf`, or return `false` at a clean end of input before its first byte.
fn read_or_end(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> Read for MessageReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.message.len() {
            self.load()?;
        }
        let n = buf.len().min(self.message.len() - self.at);
        buf[..n].copy_from_slice(&self.message[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl<R: Read> Seek for MessageReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let here = self.base + self.at as u64;
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => here.checked_add_signed(d),
            SeekFrom::End(_) => None,
        };
        let end = self.base + self.message.len() as u64;
        match target {
            Some(t) if (self.base..=end).contains(&t) => {
                self.at = (t - self.base) as usize;
                Ok(t)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "an Arrow stream is read in order; it cannot seek outside one message",
            )),
        }
    }
}

/// Where an Arrow output goes and in which of the two formats.
pub enum ArrowTarget {
    /// The stream format (standard output, `.arrows`).
    Stream(Box<dyn Write>),
    /// The file format (`.arrow`), with its footer of record-batch offsets.
    File(File),
}

/// An Arrow output being written: the schema first, then one record batch per call.
pub struct ArrowWriter {
    schema: ArrowSchemaRef,
    sink: Writer,
}

enum Writer {
    Stream(StreamWriter<BufWriter<Box<dyn Write>>>),
    File(FileWriter<BufWriter<File>>),
}

impl ArrowWriter {
    /// Start an output with these columns (the schema is written at once, so an input
    /// with no rows still gives a readable output).
    pub fn create(target: ArrowTarget, columns: Vec<(String, ArrowDataType)>) -> Result<Self> {
        let schema: ArrowSchema = columns
            .into_iter()
            .map(|(name, dtype)| {
                let name = PlSmallStr::from(name);
                (name.clone(), ArrowField::new(name, dtype, true))
            })
            .collect();
        let schema = Arc::new(schema);
        let options = WriteOptions { compression: None };
        let sink = match target {
            ArrowTarget::Stream(w) => {
                let mut writer = StreamWriter::new(BufWriter::with_capacity(1 << 20, w), options);
                writer.start(&schema, None).map_err(write_error)?;
                Writer::Stream(writer)
            }
            ArrowTarget::File(f) => {
                let writer = BufWriter::with_capacity(1 << 20, f);
                Writer::File(
                    FileWriter::try_new(writer, schema.clone(), None, options)
                        .map_err(write_error)?,
                )
            }
        };
        Ok(ArrowWriter { schema, sink })
    }

    /// The type each column must have, in order.
    pub fn types(&self) -> impl Iterator<Item = &ArrowDataType> {
        self.schema.iter_values().map(|f| &f.dtype)
    }

    /// Append one record batch of these columns, in schema order.
    pub fn write(&mut self, rows: usize, arrays: Vec<Box<dyn Array>>) -> Result<()> {
        let batch =
            RecordBatchT::try_new(rows, self.schema.clone(), arrays).map_err(write_error)?;
        match &mut self.sink {
            Writer::Stream(w) => w.write(&batch, None),
            Writer::File(w) => w.write(&batch, None),
        }
        .map_err(write_error)
    }

    /// End the output (the stream's end marker, or the file's footer) and flush it.
    pub fn finish(self) -> Result<()> {
        match self.sink {
            Writer::Stream(mut w) => {
                w.finish().map_err(write_error)?;
                w.into_inner().flush().map_err(io_write_error)
            }
            Writer::File(mut w) => {
                w.finish().map_err(write_error)?;
                w.into_inner().flush().map_err(io_write_error)
            }
        }
    }
}

/// Write `df` to `target` in record batches of `batch` rows, strings as utf8 (as pyarrow
/// and Spark send them): how the benchmarks and tests make Arrow input.
pub fn write_frame(df: &DataFrame, batch: usize, target: ArrowTarget) -> Result<()> {
    let utf8 = |dtype: &DataType| match dtype {
        DataType::String => ArrowDataType::Utf8,
        other => other.to_arrow(CompatLevel::oldest()),
    };
    let columns = df
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), utf8(c.dtype())))
        .collect();
    let mut writer = ArrowWriter::create(target, columns)?;
    for offset in (0..df.height()).step_by(batch.max(1)) {
        let mut part = df.slice(offset as i64, batch);
        part.rechunk_mut();
        let arrays = part
            .columns()
            .iter()
            .map(|c| {
                let series = c.as_materialized_series();
                match series.str() {
                    Ok(strings) => Utf8Array::<i32>::from_iter(strings.iter()).boxed(),
                    Err(_) => series.to_arrow(0, CompatLevel::oldest()),
                }
            })
            .collect();
        writer.write(part.height(), arrays)?;
    }
    writer.finish()
}

/// Write errors are told as I/O errors; the caller names the output.
fn write_error(e: PolarsError) -> PatronError {
    PatronError::Internal(format!("writing Arrow: {e}"))
}

fn io_write_error(e: io::Error) -> PatronError {
    PatronError::Internal(format!("writing Arrow: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars_arrow::array::PrimitiveArray;

    /// A reader that cannot seek, as a pipe.
    struct Pipe(io::Cursor<Vec<u8>>);
    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Short reads, as a pipe gives.
            let n = buf.len().min(7);
            self.0.read(&mut buf[..n])
        }
    }

    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn stream(batches: &[(Vec<i64>, Vec<Option<&str>>)]) -> Vec<u8> {
        let bytes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let columns = vec![
            ("id".to_string(), ArrowDataType::Int64),
            ("city".to_string(), ArrowDataType::Utf8),
        ];
        let target = ArrowTarget::Stream(Box::new(Shared(bytes.clone())));
        let mut writer = ArrowWriter::create(target, columns).unwrap();
        for (ids, cities) in batches {
            let arrays: Vec<Box<dyn Array>> = vec![
                PrimitiveArray::<i64>::from_vec(ids.clone()).boxed(),
                Utf8Array::<i32>::from(cities.clone()).boxed(),
            ];
            writer.write(ids.len(), arrays).unwrap();
        }
        writer.finish().unwrap();
        Arc::try_unwrap(bytes).unwrap().into_inner().unwrap()
    }

    #[test]
    fn reads_a_stream_from_a_pipe_in_frames_of_the_asked_rows() {
        let bytes = stream(&[
            (vec![1, 2, 3], vec![Some("Lyon"), None, Some("Köln, \"x\"")]),
            (vec![4, 5], vec![Some("a"), Some("b")]),
            (vec![], vec![]),
            (vec![6], vec![Some("c")]),
        ]);
        let pipe = Box::new(Pipe(io::Cursor::new(bytes)));
        let mut batches = ArrowBatches::from_stream(Path::new("-"), pipe).unwrap();
        let schema = batches.schema();
        assert_eq!(schema.get("id"), Some(&DataType::Int64));
        assert_eq!(schema.get("city"), Some(&DataType::String));
        let mut heights = Vec::new();
        let mut ids = Vec::new();
        while let Some(frame) = batches.next_frame(4).unwrap() {
            heights.push(frame.height());
            ids.extend(
                frame
                    .column("id")
                    .unwrap()
                    .i64()
                    .unwrap()
                    .into_no_null_iter(),
            );
            if ids.len() == 4 {
                let city = frame.column("city").unwrap();
                let city: Vec<Option<&str>> = city.str().unwrap().iter().collect();
                assert_eq!(city, [Some("Lyon"), None, Some("Köln, \"x\""), Some("a")]);
            }
        }
        assert_eq!(heights, [4, 2]);
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn an_empty_stream_has_its_schema_and_no_rows() {
        let bytes = stream(&[]);
        let pipe = Box::new(Pipe(io::Cursor::new(bytes)));
        let mut batches = ArrowBatches::from_stream(Path::new("-"), pipe).unwrap();
        assert_eq!(batches.schema().len(), 2);
        assert!(batches.next_frame(10).unwrap().is_none());
    }

    #[test]
    fn damaged_streams_are_errors_naming_the_input() {
        let mut bytes = stream(&[(vec![1, 2, 3], vec![Some("a"), Some("b"), Some("c")])]);
        bytes.truncate(bytes.len() - 30);
        let pipe = Box::new(Pipe(io::Cursor::new(bytes)));
        let mut batches = ArrowBatches::from_stream(Path::new("in.arrows"), pipe).unwrap();
        let e = batches.next_frame(10).unwrap_err().to_string();
        assert!(e.contains("in.arrows") && e.contains("Arrow"), "{e}");
        let pipe = Box::new(Pipe(io::Cursor::new(b"id,city\n1,a\n".to_vec())));
        let e = ArrowBatches::from_stream(Path::new("-"), pipe)
            .err()
            .unwrap();
        assert!(e.to_string().contains("Arrow"), "{e}");
    }
}

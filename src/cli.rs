//! The command line: argument definitions and thin handlers over the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

use patron::backend::{self, BackendChoice};
use patron::config::{Config, ModelKind, StopMetric, TaskKind};
use patron::data::Format;
use patron::data::preprocess::Feature;
use patron::error::{PatronError, Result};
use patron::progress::Progress;
use patron::report::compare;
use patron::report::evaluation;
use patron::report::html;
use patron::report::run_report;
use patron::run::export::{self, ExportFormat};
use patron::run::{read_manifest, seal_folder, write_atomic, write_json};
use patron::score::shard::{self, Shard};
use patron::score::{self, session::Session};
use patron::task::Report;
use patron::train::tune::{self, Axis, Trial, TrialResult, TuneRequest};
use patron::train::{self, TrainRequest};

/// patron trains, evaluates and scores customer-data models from a TOML config.
#[derive(Debug, Parser)]
#[command(name = "patron", version, about, long_about = None)]
#[command(after_help = "Examples:
  patron train --config configs/bank_propensity.toml
  patron predict --checkpoint checkpoints/RUN --input new.csv --output scores.csv
  patron evaluate --checkpoint checkpoints/RUN --data labelled.csv
  patron drift --checkpoint checkpoints/RUN --data new.csv

Exit status: 0 success, 2 bad input or config, 1 internal failure.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command is `serve`, which runs beside the compute pool, not on it.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model from a config and export a run directory.
    #[command(after_help = "Examples:
  patron train --config configs/bank_propensity.toml
  patron train --config configs/bank_propensity.toml --set train.epochs=3 --set split.seed=1
  patron train --config configs/telco_churn.toml --output-dir runs/churn --backend ndarray
  patron train --config configs/feedback_sentiment_en.toml --set model.kind=text_transformer
  patron train --resume runs/churn

The last line on stdout is the run directory.")]
    Train(TrainArgs),
    /// Train one run per combination of config values and rank them on validation.
    #[command(after_help = "Examples:
  patron tune --config configs/telco_churn.toml --search 'train.learning_rate=3e-4|1e-3|3e-3' \\
      --search 'model.hidden=[64]|[256, 128]'
  patron tune --config configs/bank_propensity.toml --search 'model.dropout=0.1|0.3|0.5' \\
      --search 'train.weight_decay=0|1e-4|1e-3' --trials 4 --metric auc_pr
  patron tune --config configs/telco_churn.toml --trials 12 \\
      --search 'train.learning_rate=loguniform(1e-4,1e-2)' --search 'model.dropout=uniform(0,0.5)'
  patron tune --resume checkpoints/telco_churn-tune-20261126T120000Z

Each --search lists a key's values (TOML, as for --set) separated by '|'; every combination
is a trial (or --trials N of them, drawn with --seed). A key can instead take a range,
uniform(LOW,HIGH), loguniform(LOW,HIGH) or randint(LOW,HIGH): then each of the --trials N
trials draws every key. Trials are ranked by the validation
metric at their best epoch (default: the config's train.early_stopping.metric), never by
the test split. The leaderboard is printed and written to <dir>/leaderboard.csv and .md;
the last stdout line is the best trial's run directory. A stopped search (Ctrl-C, a crash)
continues with `patron tune --resume DIR`: finished trials are kept, the interrupted one
resumes from its last epoch.")]
    Tune(TuneArgs),
    /// Score a CSV, Parquet, Arrow or Excel file in chunks and write id/row, score and prediction (or
    /// prediction and p_<label> per class).
    #[command(after_help = "Examples:
  patron predict --checkpoint runs/churn --input customers.csv --output scores.csv
  patron predict --checkpoint runs/churn --input customers.parquet --output scores.parquet --batch-size 100000
  patron predict --checkpoint runs/churn --input customers.csv --output -     (CSV to stdout)
  patron predict --checkpoint runs/churn --input customers.csv --output scores.csv --reasons 3
                                      (with the 3 columns behind each customer's score)
  patron predict --checkpoint runs/churn --input customers.csv --output scores.csv --keep email,region
  patron predict --checkpoint runs/churn --input export.xlsx --sheet Customers --output scores.csv
  cat reviews.txt | patron predict --checkpoint runs/feedback --input - --output -
                                                  (text run: one text per line on stdin)
  cat reviews.txt | patron predict --checkpoint runs/feedback --input - --output - --reasons 2
                                                  (with the 2 words behind each prediction)
  for i in 0 1 2 3; do patron predict --checkpoint runs/churn --input 'lake/*.parquet' \\
      --shard $i/4 --output scored/ & done; wait
                                  (4 processes, each scoring every 4th file into scored/)")]
    Predict(PredictArgs),
    /// Score a labelled file with a run and write report.json, report.md and report.html.
    #[command(after_help = "Examples:
  patron evaluate --checkpoint runs/churn --data datasets/telco_customer_churn_ibm_7043.csv
  patron evaluate --checkpoint runs/churn --data march.parquet --output reports/march
  export-labels | patron evaluate --checkpoint runs/churn --data -     (CSV on stdin)")]
    Evaluate(EvaluateArgs),
    /// Measure how far new data has drifted from the training data (PSI per column).
    #[command(after_help = "Examples:
  patron drift --checkpoint runs/churn --data customers_march.csv
  patron drift --checkpoint runs/churn --data march.parquet --output reports/drift-march

Prints the population stability index of the scores and of each input column, largest
first (below 0.1: stable; 0.1-0.25: moderate shift; above: major shift, retrain or
investigate), and writes drift.json and drift.md to --output (default:
<checkpoint>/drift-<data file name without extension>); the last stdout line is that folder.
Labels are not needed.")]
    Drift(DriftArgs),
    /// Run every check `train` makes before its first epoch, without training.
    #[command(after_help = "Examples:
  patron validate --config configs/bank_propensity.toml
  patron validate --config configs/bank_propensity.toml --set data.drop=[]")]
    Validate(ConfigArgs),
    /// Rebuild report.json, report.md and report.html of a run from its saved files.
    #[command(after_help = "Examples:
  patron report --checkpoint runs/churn")]
    Report(ReportArgs),
    /// Print the key test metrics of several runs side by side, best marked.
    #[command(after_help = "Examples:
  patron compare checkpoints/bank_propensity-*
  patron compare runs/a runs/b --output comparison.md
  patron compare runs/a runs/b --output comparison.csv")]
    Compare(CompareArgs),
    /// Write a run's weights in a format other stacks read (safetensors, a Hugging Face
    /// model directory).
    #[command(after_help = "Examples:
  patron export --checkpoint runs/churn --format safetensors --output churn.safetensors
  patron export --checkpoint runs/sentiment --format hf --output hf/sentiment
      (a text_encoder run as a BertForSequenceClassification directory for transformers;
      a cross-validated run as hf/sentiment/fold-<k>/ per fold model and ensemble.json)
  patron export --checkpoint runs/churn-cv --format safetensors --output churn.safetensors
      (a cross-validated run: churn.fold-<k>.safetensors, one per fold model)

Tensor names and the metadata written are listed in README.md.")]
    Export(ExportArgs),
    /// Show the version, compiled backends, GPU adapter and threads.
    #[command(after_help = "Examples:
  patron info
  patron info --device 1     (the second discrete GPU)

Run it first when a GPU is not picked up: it says which adapter wgpu finds on the pinned
graphics API, whether it is a software one, and what --backend auto will use.")]
    Info(InfoArgs),
    /// Serve runs over HTTP: POST rows, get the scores `predict` would write.
    #[command(after_help = "Examples:
  patron serve --checkpoint runs/churn
  patron serve --checkpoint churn=runs/churn --checkpoint feedback=runs/feedback --bind 0.0.0.0:8080 \\
      --token-file /etc/patron/token
  curl -s localhost:8080/v1/models/churn/predict -d '{\"rows\": [{\"tenure\": 3, \"Contract\": \"Month-to-month\"}]}'
  curl -s 'localhost:8080/v1/models/churn/predict?reasons=3' -H 'Content-Type: text/csv' --data-binary @customers.csv
  curl -s localhost:8080/v1/models/feedback/predict -d '{\"texts\": [\"great phone\"]}'
  kill -HUP <pid>     (reload the runs, verified; a damaged one is refused and the old keeps serving)

Routes: POST /v1/models/NAME/predict[?reasons=K], GET /v1/models, /healthz, /readyz,
/metrics (Prometheus), and POST /v1/admin/reload when a token is set. Errors are JSON
{\"error\", \"row\", \"column\"}. The first stdout line is the address it listens on.")]
    Serve(ServeArgs),
    /// Print the fully resolved config (every default but `data.exact_values`,
    /// `data.crosses`, `data.min_varying_rows` and a tabular `model.dropout` and
    /// `train.batch_size`, set per task)
    #[command(after_help = "Examples:
  patron config --config configs/bank_propensity.toml
  patron config --config configs/bank_propensity.toml --set train.epochs=5 > resolved.toml")]
    Config(ConfigArgs),
}

/// Where a command runs: `--backend` and `--device`.
#[derive(Debug, Args)]
pub struct RunOn {
    /// Where to run: auto takes wgpu on a hardware GPU when found, except for text_bag
    /// models and for scoring tabular ones (the CPU is faster there), else flex; or force one.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// With wgpu or auto: use the N-th discrete GPU (0-based) instead of wgpu's default.
    #[arg(long, value_name = "N")]
    pub device: Option<usize>,
}

impl RunOn {
    /// The backend these flags pick for a model of the kind `kind` gives
    /// ([`backend::select_for_model`]); `kind` is asked only under a plain `auto`, so the
    /// other flags are checked before any file is read.
    fn select_for(
        &self,
        work: backend::Work,
        kind: impl FnOnce() -> Result<Option<ModelKind>>,
    ) -> Result<backend::Backend> {
        let plain_auto = self.backend == BackendChoice::Auto && self.device.is_none();
        let kind = if plain_auto { kind()? } else { None };
        let backend = match kind {
            Some(kind) => backend::select_for_model(self.backend, self.device, kind, work)?,
            None => backend::select_device(self.backend, self.device)?,
        };
        eprintln!("backend: {}", backend.description);
        Ok(backend)
    }

    /// The backend for scoring the run in `checkpoint`.
    fn select_for_run(&self, checkpoint: &std::path::Path) -> Result<backend::Backend> {
        self.select_for(backend::Work::Score, || {
            let model = read_manifest(checkpoint)?.model;
            Ok(Some(model.text.map_or(ModelKind::TabularMlp, |t| t.kind)))
        })
    }
}

/// `patron train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The TOML config (optional with --resume, where it must match the saved one).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
    /// Write the run into exactly this directory (default: checkpoints/<config>-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Override a config key, typed like TOML (repeatable): --set train.epochs=3.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue an interrupted run from its last epoch checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with = "output_dir")]
    pub resume: Option<PathBuf>,
    /// Plain progress lines instead of bars.
    #[arg(long)]
    pub quiet: bool,
    /// Replace an existing run directory at --output-dir.
    #[arg(long, requires = "output_dir")]
    pub force: bool,
}

/// `patron tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The base TOML config.
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// A key and its values to search: `|`-separated TOML, or uniform(LOW,HIGH),
    /// loguniform(LOW,HIGH), randint(LOW,HIGH) (repeatable).
    #[arg(long, value_name = "KEY=V1|V2|...", required_unless_present = "resume")]
    pub search: Vec<String>,
    /// Continue the search in DIR (the directory `patron tune` wrote) with its saved
    /// config, keys and trials.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["config", "search", "overrides", "trials", "seed", "metric", "output_dir"]
    )]
    pub resume: Option<PathBuf>,
    /// Override a config key in every trial, typed like TOML (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Run N combinations drawn at random instead of all of them.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Seed of the draw of --trials.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,
    /// Rank by this validation metric: auc_roc, auc_pr, log_loss, macro_f1 or accuracy; for a
    /// regression loss, rmse or mae
    /// (default: the config's train.early_stopping.metric).
    #[arg(long, value_name = "NAME", value_parser = parse_metric)]
    pub metric: Option<StopMetric>,
    /// Write the trials and the leaderboard here (default:
    /// checkpoints/<config>-tune-<UTC time>).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
    /// Plain progress lines instead of bars.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_metric(name: &str) -> std::result::Result<StopMetric, String> {
    StopMetric::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = StopMetric::ALL.iter().map(|m| m.name()).collect();
            format!("one of {}", names.join(", "))
        })
}

/// Which sheet of a workbook input to read.
#[derive(Debug, Args)]
pub struct SheetArg {
    /// The sheet of an Excel or OpenDocument input to read (default: the sheet the run
    /// was trained on, `data.sheet`, where the workbook has one of that name, else the
    /// first).
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
}

/// `patron evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// A labelled CSV, Parquet, Arrow or Excel file with the run's target column (`-`: CSV
    /// on stdin).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub sheet: SheetArg,
    /// Folder for the reports (default: <checkpoint>/eval-<data file name without
    /// extension>, or eval-stdin).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `patron drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// New CSV, Parquet, Arrow or Excel data with the run's input columns (`-`: CSV on
    /// stdin, or one text per line for a text run).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    #[command(flatten)]
    pub sheet: SheetArg,
    /// Folder for drift.json, drift.md and drift.html (default: <checkpoint>/drift-<data
    /// file name without extension>, or drift-stdin).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `patron predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// CSV, Parquet, Arrow or Excel file to score (`-`: standard input, CSV unless
    /// --input-format says otherwise); with --shard, a file pattern such as
    /// 'DIR/*.parquet' (quoted, so the shell leaves it alone).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    #[command(flatten)]
    pub sheet: SheetArg,
    /// Read the input as csv, parquet or arrow (an Arrow IPC stream or file) whatever its
    /// name; standard input takes csv or arrow.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<FileFormat>,
    /// Output .csv, .parquet, .arrow (Arrow IPC file) or .arrows (Arrow IPC stream)
    /// (`-`: standard output); with --shard, a folder that gets one output per input
    /// file, named by its stem.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Score only the I-th of N shares of the files matching --input (every N-th in name
    /// order from the I-th), so N processes or a Kubernetes Indexed Job
    /// (`--shard $JOB_COMPLETION_INDEX/N`) cover a folder once; a rerun replaces only its
    /// own outputs.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Write csv, parquet or arrow: on standard output (csv or arrow, an Arrow IPC
    /// stream), or with --shard (default: each input's format); a file output's extension
    /// must agree.
    #[arg(long, value_name = "FORMAT")]
    pub output_format: Option<FileFormat>,
    /// Rows read and scored per chunk; memory grows with it, not with the file.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Add what moved each row's prediction most: reason_1..K and reason_<i>_effect, the
    /// fall in the predicted class's log-odds when an input column is set to its typical
    /// value, or (text runs) a word is removed; about one more scoring pass per column or
    /// distinct word.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub reasons: usize,
    /// Copy these input columns into the predictions, after the id/row column (repeat the
    /// flag or separate names with commas).
    #[arg(long, value_name = "COLUMN", value_delimiter = ',')]
    pub keep: Vec<String>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// `patron serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A run to serve, as NAME=DIR (or DIR, named by its folder); repeatable.
    #[arg(long, value_name = "[NAME=]DIR", required = true, value_parser = patron::serve::parse_checkpoint)]
    pub checkpoint: Vec<(String, PathBuf)>,
    /// Address and port to listen on (port 0: any free port). Loopback unless told
    /// otherwise.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Largest request body in bytes (413 past it).
    #[arg(long, value_name = "B", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Rows being scored or waiting, past which new requests get 503 with Retry-After.
    #[arg(long, value_name = "Q", default_value_t = 1 << 20)]
    pub max_queue_rows: usize,
    /// Most rows gathered from concurrent requests into one scoring call.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batch_rows: u64,
    /// Longest the first request of a scoring call waits for others, in ms (0: it takes
    /// only the requests already waiting, never waits).
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub max_wait_ms: u64,
    /// Longest a request may wait for its scores, in seconds (then 503).
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    pub timeout: f64,
    /// A file holding the bearer token every request must carry (Authorization: Bearer
    /// TOKEN); also enables POST /v1/admin/reload.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where to run.
    #[command(flatten)]
    pub run_on: RunOn,
}

/// What `predict` reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// CSV with a header row.
    Csv,
    /// Parquet files.
    Parquet,
    /// Arrow IPC (a stream on standard input and output and in .arrows files; the file
    /// format in .arrow files).
    Arrow,
}

impl FileFormat {
    fn format(self) -> Format {
        match self {
            FileFormat::Csv => Format::Csv,
            FileFormat::Parquet => Format::Parquet,
            FileFormat::Arrow => Format::Arrow,
        }
    }
}

/// `patron info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Probe the N-th discrete GPU (0-based) instead of wgpu's default choice.
    #[arg(long, value_name = "N")]
    pub device: Option<usize>,
}

/// `patron report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
}

/// `patron compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories (or `patron evaluate` output folders).
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Also write the table: CSV for a .csv name, markdown otherwise.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `patron export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The export format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (`hf`: the directory to create; an existing non-empty one is
    /// refused).
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
}

/// `patron validate` and `patron config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The TOML config.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override a config key, typed like TOML (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Run a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Tune(args) => run_tune(args),
        Command::Evaluate(args) => run_evaluate(args),
        Command::Predict(args) => run_predict(args),
        Command::Serve(args) => run_serve(args),
        Command::Drift(args) => run_drift(args),
        Command::Validate(args) => run_validate(args),
        Command::Report(args) => {
            let report = run_report::regenerate(&args.checkpoint)?;
            println!(
                "{} ({} rows): {}",
                report.evaluated_on(),
                report.n(),
                headline(&report)
            );
            println!("{}", args.checkpoint.join("report.html").display());
            Ok(())
        }
        Command::Compare(args) => {
            let table = compare::compare(&args.dirs)?;
            print!("{}", table.to_markdown());
            if let Some(path) = &args.output {
                table.write(path)?;
            }
            Ok(())
        }
        Command::Export(args) => {
            for written in export::export(&args.checkpoint, args.format, &args.output)? {
                println!("{}", written.display());
            }
            Ok(())
        }
        Command::Info(args) => {
            run_info(args.device);
            Ok(())
        }
        Command::Config(args) => {
            let config = Config::load(&args.config, &args.overrides)?;
            // Printed without reading the data, so whether "auto" finds a number is open.
            if config.train.early_stopping.metric_defaulted && config.data.task == TaskKind::Auto {
                println!(
                    "# train.early_stopping.metric: a text kind's default; a numeric target that data.task = \"auto\" finds to be a regression watches \"rmse\" instead"
                );
            }
            print!("{}", config.to_toml());
            Ok(())
        }
    }
}

/// A flag the first Ctrl-C sets (training then stops after the current epoch's checkpoint);
/// a second Ctrl-C exits at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this epoch (press Ctrl-C again to quit now)");
    });
    stop
}

fn run_train(args: TrainArgs) -> Result<()> {
    // Resolved once, here; training gets the checked config.
    let resolved = match &args.config {
        Some(path) => Some(Config::resolve(path, &args.overrides)?),
        None => None,
    };
    let backend = args.run_on.select_for(backend::Work::Train, || {
        Ok(Some(match (&args.resume, &resolved) {
            (Some(run), _) => read_manifest(run)?
                .model
                .text
                .map_or(ModelKind::TabularMlp, |t| t.kind),
            (None, Some(resolved)) => resolved.config.model.kind,
            // train reports the missing --config.
            (None, None) => return Ok(None),
        }))
    })?;
    let progress = Progress::new(args.quiet);
    let stop = stop_on_ctrl_c();
    let request = TrainRequest {
        config: resolved,
        overrides: args.overrides,
        output_dir: args.output_dir,
        resume: args.resume,
        force: args.force,
        stop,
    };
    let outcome = train::train(&request, &backend, &progress)?;
    let uncalibrated = match &outcome.report {
        Report::Binary(r) => format!(" (uncalibrated {:.4})", r.metrics.ece_uncalibrated),
        Report::Multiclass(_) | Report::Regression(_) => String::new(),
    };
    let epochs = match outcome.report.cv() {
        Some(cv) => format!(
            "{} folds, mean best epoch {}, {} epochs in all",
            cv.folds, outcome.best_epoch, outcome.epochs_run
        ),
        None => format!(
            "best epoch {} of {}",
            outcome.best_epoch, outcome.epochs_run
        ),
    };
    println!(
        "{} ({} rows): {}{uncalibrated}; {epochs}",
        outcome.report.evaluated_on(),
        outcome.report.n(),
        headline(&outcome.report),
    );
    println!("{}", outcome.run_dir.display());
    Ok(())
}

fn run_tune(args: TuneArgs) -> Result<()> {
    let progress = Progress::new(args.quiet);
    let outcome = match (args.resume, args.config) {
        (Some(dir), _) => {
            let search = tune::SavedSearch::open(&dir)?;
            let backend = args
                .run_on
                .select_for(backend::Work::Train, || search.model_kind())?;
            tune::resume(search, stop_on_ctrl_c(), &backend, &progress)?
        }
        (None, Some(config)) => {
            let search = args
                .search
                .iter()
                .map(|spec| Axis::parse(spec))
                .collect::<Result<Vec<_>>>()?;
            // A search over model.kind trains several kinds: auto's plain choice then.
            let backend = args.run_on.select_for(backend::Work::Train, || {
                Ok(match search.iter().any(|axis| axis.key == "model.kind") {
                    true => None,
                    false => Some(Config::load(&config, &args.overrides)?.model.kind),
                })
            })?;
            let request = TuneRequest {
                config,
                overrides: args.overrides,
                search,
                trials: args.trials,
                seed: args.seed,
                metric: args.metric,
                output_dir: args.output_dir,
                stop: stop_on_ctrl_c(),
            };
            tune::tune(&request, &backend, &progress)?
        }
        // clap requires --config without --resume.
        (None, None) => {
            return Err(PatronError::Usage(
                "patron tune needs --config FILE (or --resume DIR)".into(),
            ));
        }
    };
    print!("{}", outcome.leaderboard);
    match outcome.ranked.first() {
        Some(Trial {
            result: TrialResult::Trained { .. },
            run_dir: Some(dir),
            ..
        }) => {
            println!("{}", dir.display());
            Ok(())
        }
        _ => Err(PatronError::Diverged(format!(
            "every trial diverged; lower train.learning_rate (trials in {})",
            outcome.dir.display()
        ))),
    }
}

/// `name value` pairs of a report's headline metrics, for one-line summaries.
fn headline(report: &Report) -> String {
    report
        .headline()
        .iter()
        .map(|(name, value)| format!("{name} {value:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `<checkpoint>/<kind>-<data file stem>` (`-stdin` for standard input): where evaluate
/// and drift write by default.
fn default_output(checkpoint: &std::path::Path, kind: &str, data: &std::path::Path) -> PathBuf {
    let name = match data.to_str() {
        Some("-") => "stdin".into(),
        _ => data
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into()),
    };
    checkpoint.join(format!("{kind}-{name}"))
}

fn run_drift(args: DriftArgs) -> Result<()> {
    let backend = args.run_on.select_for_run(&args.checkpoint)?;
    let session = Session::open(&args.checkpoint, &backend.device)?;
    let out = args
        .output
        .unwrap_or_else(|| default_output(&args.checkpoint, "drift", &args.data));
    let report = score::drift(&session, &args.data, args.sheet.sheet.as_deref())?;
    let markdown = report.markdown();
    let facts = [
        ("run".to_string(), args.checkpoint.display().to_string()),
        ("new data".to_string(), args.data.display().to_string()),
        ("rows".to_string(), report.rows.to_string()),
        (
            "training rows".to_string(),
            report.training_rows.to_string(),
        ),
    ];
    let html = html::render_drift(&report, "Drift against the training data", &facts)?;
    std::fs::create_dir_all(&out).map_err(|e| PatronError::io(&out, e))?;
    write_json(&out.join("drift.json"), &report)?;
    write_atomic(&out.join("drift.md"), markdown.as_bytes())?;
    write_atomic(&out.join("drift.html"), html.as_bytes())?;
    seal_folder(&out, &["drift.json", "drift.md", "drift.html"])?;
    print!("{markdown}");
    println!("{}", out.display());
    Ok(())
}

fn run_evaluate(args: EvaluateArgs) -> Result<()> {
    let backend = args.run_on.select_for_run(&args.checkpoint)?;
    let session = Session::open(&args.checkpoint, &backend.device)?;
    let out = args
        .output
        .unwrap_or_else(|| default_output(&args.checkpoint, "eval", &args.data));
    let (evaluation, unlabelled) =
        score::evaluate(&session, &args.data, args.sheet.sheet.as_deref())?;
    if let Some(first) = unlabelled.first {
        eprintln!(
            "warning: target column {:?} is blank on {} row{} of {} (the first is row {first}); left out of the evaluation",
            session.run().preprocess.target,
            unlabelled.rows,
            if unlabelled.rows == 1 { "" } else { "s" },
            args.data.display()
        );
    }
    evaluation::write(session.run(), &evaluation, &backend.description, &out)?;
    let report = &evaluation.report;
    println!("{} rows: {}", report.n(), headline(report));
    println!("{}", out.display());
    Ok(())
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| PatronError::io(path, e))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(PatronError::data(
                    path,
                    "is empty; put the bearer token in it",
                ));
            }
            Some(token)
        }
        None => None,
    };
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(PatronError::Usage(
            "--timeout must be a positive number of seconds".into(),
        ));
    }
    // One backend for every run: the first run's kind picks it under auto.
    let first = &args.checkpoint[0].1;
    let backend = args.run_on.select_for_run(first)?;
    let options = patron::serve::http::ServeOptions {
        bind: args.bind,
        max_body_bytes: args.max_body_bytes,
        max_queue_rows: args.max_queue_rows,
        timeout: std::time::Duration::from_secs_f64(args.timeout),
        token,
        batching: patron::serve::Batching {
            max_rows: usize::try_from(args.max_batch_rows).unwrap_or(usize::MAX),
            max_wait: std::time::Duration::from_millis(args.max_wait_ms),
        },
    };
    let names: Vec<&str> = args.checkpoint.iter().map(|(n, _)| n.as_str()).collect();
    let names = names.join(", ");
    patron::serve::http::serve(args.checkpoint, backend.device, options, |address| {
        println!("http://{address}");
        eprintln!("serving {names} on http://{address}");
    })
}

fn run_predict(args: PredictArgs) -> Result<()> {
    let backend = args.run_on.select_for_run(&args.checkpoint)?;
    let session = Session::open(&args.checkpoint, &backend.device)?;
    let run = session.run();
    let batch = usize::try_from(args.batch_size).unwrap_or(usize::MAX);
    let request = score::PredictRequest {
        input: args.input,
        input_format: args.input_format.map(FileFormat::format),
        output: args.output,
        output_format: args.output_format.map(FileFormat::format),
        batch_size: batch,
        reasons: args.reasons,
        keep: args.keep,
        sheet: args.sheet.sheet,
    };
    if let Some(shard) = args.shard {
        let pattern = request.input.to_string_lossy().into_owned();
        let summary = shard::predict_shard(&session, &pattern, shard, &request.output, &request)?;
        eprintln!(
            "shard {}/{}: scored {} rows in {} files ({})",
            shard.index,
            shard.count,
            summary.rows,
            summary.files.len(),
            run.task.describe_predictions(&summary.class_counts)
        );
        for (_, output) in &summary.files {
            println!("{}", output.display());
        }
        return Ok(());
    }
    let summary = score::predict(&session, &request)?;
    eprintln!(
        "scored {} rows ({})",
        summary.rows,
        run.task.describe_predictions(&summary.class_counts)
    );
    if request.output != std::path::Path::new("-") {
        println!("{}", request.output.display());
    }
    Ok(())
}

fn run_info(gpu: Option<usize>) {
    let info = backend::system_info(gpu);
    println!("patron {}", info.version);
    println!("backends compiled in: {}", info.backends.join(", "));
    println!("CPU threads: {}", info.threads);
    match &info.adapter {
        Ok((name, software, compiler)) => println!(
            "wgpu adapter ({}): {name} ({}, kernels: {compiler})",
            info.graphics_api,
            if *software { "software" } else { "hardware" }
        ),
        Err(why) => println!("wgpu adapter ({}): none ({why})", info.graphics_api),
    }
    if info.adapters.is_empty() {
        println!("adapters listed on {}: none", info.graphics_api);
    } else {
        println!("adapters listed on {}:", info.graphics_api);
    }
    for a in &info.adapters {
        let flag = a
            .device_flag
            .map_or(String::new(), |n| format!(" (--device {n})"));
        println!("  {}: {}, driver {}{flag}", a.name, a.kind, a.driver);
    }
    println!("--backend auto uses: {}", info.auto);
    if info.auto.starts_with("wgpu") {
        println!(
            "--backend auto keeps text_bag models, and the scoring of tabular ones, on flex (faster than a GPU for them)"
        );
    }
}

fn run_validate(args: ConfigArgs) -> Result<()> {
    let v = train::validate(&Config::resolve(&args.config, &args.overrides)?)?;
    let pre = &v.pre;
    let counts: Vec<String> = pre
        .labels
        .iter()
        .zip(&v.class_rows)
        .map(|(label, rows)| format!("{label:?}: {rows}"))
        .collect();
    let task = patron::task::for_run(pre).describe_target();
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!("; {}", counts.join(", "))
    };
    println!(
        "{}: {} rows, target {:?} ({task}{counts})",
        v.data.display(),
        v.rows,
        v.config.data.target,
    );
    println!("{}", v.task_note);
    println!(
        "split: train {}, valid {}, test {}",
        v.split.train.len(),
        v.split.valid.len(),
        v.split.test.len()
    );
    if !v.split.folds.is_empty() {
        let sizes: Vec<String> = v.split.folds.iter().map(|f| f.len().to_string()).collect();
        println!(
            "folds: {} of the training rows ({} rows each), one model per fold, scored as their ensemble (split.folds = 1: one model)",
            sizes.len(),
            sizes.join(", ")
        );
    }
    if let Some(text) = &pre.text {
        for column in &text.columns {
            println!("  text         {column}");
        }
    }
    for f in &pre.features {
        match f {
            Feature::Numeric {
                name,
                missing_indicator,
                date,
                calendar,
                decimal_comma,
                ..
            } => {
                // A date's parts (weekday, month, hour) are inputs of their own.
                let parts: Vec<&str> = calendar.iter().map(|p| p.as_str()).collect();
                println!(
                    "  {}{name}{}{}{}",
                    if *date {
                        "date (days)  "
                    } else {
                        "numeric      "
                    },
                    if parts.is_empty() {
                        String::new()
                    } else {
                        format!(" with its {}", parts.join(", "))
                    },
                    if *decimal_comma {
                        " (decimal comma)"
                    } else {
                        ""
                    },
                    if *missing_indicator {
                        " (has missing values)"
                    } else {
                        ""
                    }
                )
            }
            Feature::Categorical { name, categories } => {
                println!("  categorical  {name} ({} categories)", categories.len())
            }
            Feature::Cross {
                name, categories, ..
            } => println!("  crossed      {name} ({} cells)", categories.len()),
        }
    }
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    println!("ok");
    Ok(())
}

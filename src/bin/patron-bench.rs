//! Benchmark harness (run it with `bench/run`): one JSON line per case, then a markdown
//! table. Runs the PyTorch peer reference (`../shared/bench/torch_reference.py`, or
//! `PATRON_TORCH_REFERENCE`) in the same run when python3 has torch, and prints the ratio.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::optim::AdamWConfig;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use patron::backend::{BackendChoice, on_compute_pool, select, threads, tune_allocator};
use patron::config::{Config, ModelKind, Pooling};
use patron::data::arrow::ArrowTarget;
use patron::data::binning::BinTarget;
use patron::data::preprocess::{Encoded, Preprocessor};
use patron::data::split::split_rows;
use patron::data::{ReadOptions, read_table};
use patron::model::sparse::SparseTable;
use patron::model::{Inputs, ModelSpec, Network, TabularInputs, TextSpec};
use patron::score::Scorer;
use patron::task::binary::Binary;
use patron::task::labels::{fit_labels, target_values};
use patron::task::multiclass::Multiclass;
use patron::train::{text_bag_step, train_step};
use rand::{Rng, SeedableRng};

/// One result line.
struct Case {
    case: String,
    unit: &'static str,
    patron: Option<f64>,
    /// The key of the reference's figure in its JSON output, if it has one.
    reference: Option<&'static str>,
    /// Measured on the GPU: compared with the reference on CUDA, not on the CPU.
    gpu: bool,
    extra: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The reference MLP: 64 -> 256 -> 128 -> 1, no dropout.
fn spec() -> ModelSpec {
    ModelSpec {
        numeric_width: 64,
        categorical_count: 0,
        embedding_rows: 0,
        embedding_dim: 1,
        hidden: vec![256, 128],
        dropout: 0.0,
        ensemble: 1,
        numeric_embedding: None,
        outputs: 1,
        text: None,
    }
}

fn batch(rows: usize, device: &Device) -> (Inputs, Tensor<2>, Tensor<1>) {
    let x = Tensor::<2>::random([rows, 64], Distribution::Normal(0.0, 1.0), device);
    let y = Tensor::<2>::random([rows, 1], Distribution::Bernoulli(0.3), device);
    let w = Tensor::<1>::ones([rows], device);
    let inputs = Inputs::Tabular(TabularInputs {
        numeric: Some(x),
        categorical: None,
    });
    (inputs, y, w)
}

/// Median over `runs` runs of `steps` training steps (after 20 untimed ones) of the units
/// (samples, ids) a step consumes per second. `step(i)` returns the step's loss.
fn timed_steps(
    steps: usize,
    runs: usize,
    units_per_step: usize,
    mut step: impl FnMut(usize) -> Tensor<1>,
) -> f64 {
    for i in 0..20 {
        step(i);
    }
    let mut rates = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut last = None;
        for i in 0..steps {
            last = Some(step(i));
        }
        // Reading the last loss waits for all queued work.
        if let Some(loss) = last {
            let _ = loss.into_scalar::<f32>();
        }
        rates.push((steps * units_per_step) as f64 / started.elapsed().as_secs_f64());
    }
    median(rates)
}

/// Training samples/s at batch 512 (AdamW, batches pre-made on the device, as the reference).
fn tabular_train(device: &Device, steps: usize, runs: usize) -> f64 {
    let ad = device.clone().autodiff();
    ad.seed(0);
    let rows = 512;
    let pool: Vec<_> = (0..16).map(|_| batch(rows, &ad)).collect();
    let mut model = spec().init(&ad);
    let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
    let task = Binary::new(&["no".into(), "yes".into()]);
    let step = |i: usize| {
        let (x, y, w) = pool[i % pool.len()].clone();
        let (next, loss, _) = train_step(model.clone(), &mut optim, &task, x, y, w, 1e-3, 0.0);
        model = next;
        loss
    };
    timed_steps(steps, runs, rows, step)
}

/// The reference's fastText-style case on its own sizes and data: 32 documents of 40 ids
/// drawn uniformly from a 2^20 x 64 table, a linear 2-class head, lr 5e-3, sparse Adam on
/// the table (Adam on the head), through the same step as `text_bag` training. Ids/s, or
/// why the device could not run it.
fn fasttext_train(device: &Device, steps: usize, runs: usize) -> Result<f64, String> {
    let (docs, ids, dim) = (32, 40, 64);
    let ad = device.clone().autodiff();
    ad.seed(0);
    let spec = ModelSpec {
        numeric_width: 0,
        categorical_count: 0,
        embedding_rows: 0,
        embedding_dim: 1,
        hidden: vec![],
        dropout: 0.0,
        ensemble: 1,
        numeric_embedding: None,
        outputs: 2,
        text: Some(TextSpec {
            kind: ModelKind::TextBag,
            vocab: 1 << 20,
            dim,
            max_length: ids,
            layers: 1,
            heads: 1,
            pooling: Pooling::Mean,
            pretrained: None,
            freeze_layers: 0,
            pad_id: 0,
            bag: Default::default(),
        }),
    };
    let mut model = spec.init(&ad);
    let Network::Bag(bag) = &model else {
        unreachable!("a text_bag spec builds a bag network")
    };
    let mut table = SparseTable::new(bag.host_table().map_err(|e| e.to_string())?, dim);
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let pool: Vec<(Vec<Vec<u32>>, Tensor<2>)> = (0..16)
        .map(|_| {
            let tokens = (0..docs)
                .map(|_| (0..ids).map(|_| rng.random_range(0..1u32 << 20)).collect())
                .collect();
            let one_hot: Vec<f32> = (0..docs)
                .flat_map(|_| {
                    if rng.random_bool(0.5) {
                        [1.0, 0.0]
                    } else {
                        [0.0, 1.0]
                    }
                })
                .collect();
            let y = Tensor::<2>::from_data(TensorData::new(one_hot, [docs, 2]), &ad);
            (tokens, y)
        })
        .collect();
    let w = Tensor::<1>::ones([docs], &ad);
    // Two logits and softmax cross-entropy, as the reference's head.
    let task = Multiclass::new(&["a".into(), "b".into()]);
    let step = |i: usize| {
        let (tokens, y) = &pool[i % pool.len()];
        let refs: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        let (next, loss) = text_bag_step(
            model.clone(),
            &mut optim,
            &task,
            &mut table,
            &refs,
            Default::default(),
            y.clone(),
            w.clone(),
            5e-3,
            &ad,
        )
        .expect("text_bag step");
        model = next;
        loss
    };
    Ok(timed_steps(steps, runs, docs * ids, step))
}

/// Inference rows/s at batch 4096 through the scoring path of `patron predict`
/// (`Scorer`: the fused host forward on flex, Burn's forward on the other backends).
fn tabular_infer(device: &Device, iters: usize, runs: usize) -> f64 {
    device.seed(0);
    let spec = spec();
    let model = spec.init(device);
    let rows = 4096;
    let x = Tensor::<2>::random([rows, 64], Distribution::Normal(0.0, 1.0), device);
    let encoded = Encoded {
        rows,
        numeric_width: 64,
        numeric: x.into_data().try_to_vec::<f32>().expect("f32 inputs"),
        ..Encoded::default()
    };
    let scorer = Scorer::new(&model, &spec, device).expect("a fresh network");
    let score = || scorer.logits(&encoded).expect("scores");
    for _ in 0..5 {
        score();
    }
    let mut rates = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        for _ in 0..iters {
            score();
        }
        rates.push((iters * rows) as f64 / started.elapsed().as_secs_f64());
    }
    median(rates)
}

/// The PyTorch reference script, when python3 with torch is there.
fn torch_script() -> Option<PathBuf> {
    let script = std::env::var_os("PATRON_TORCH_REFERENCE")
        .map(PathBuf::from)
        // Next to the project being benchmarked (bench/run starts in its root), not the
        // one the binary was built from: clones share a target directory.
        .unwrap_or_else(|| project_dir().join("../shared/bench/torch_reference.py"));
    let has_torch = Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch || !script.is_file() {
        eprintln!(
            "reference: python3 with torch not found (or {} missing); printing patron's figures alone",
            script.display()
        );
        return None;
    }
    Some(script)
}

/// One run of the reference on CUDA (`bench/torch_cuda.py`), for the wgpu cases; `None`
/// when torch sees no CUDA device.
fn torch_cuda_reference(script: &Path, quick: bool) -> Option<serde_json::Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(project_dir().join("bench/torch_cuda.py"))
        .env("PATRON_TORCH_REFERENCE", script);
    reference_json(cmd, quick)
}

/// One run of the reference (its JSON line). It inherits the environment, so torch runs
/// as a user's script would (OpenMP's default wait policy unless the caller sets one).
fn torch_reference(script: &Path, quick: bool, tuned_malloc: bool) -> Option<serde_json::Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--threads", &threads().to_string()]);
    if tuned_malloc {
        // glibc's thresholds as patron sets them in-process (backend::tune_allocator):
        // without them torch's inference outputs are mmapped and unmapped on every pass in
        // some processes, which halved its inference figure (BENCHMARKS.md).
        cmd.env("MALLOC_MMAP_THRESHOLD_", (32u64 << 20).to_string())
            .env("MALLOC_TRIM_THRESHOLD_", (512u64 << 20).to_string());
    }
    reference_json(cmd, quick)
}

/// Run a reference command (with quick mode's shorter runs) and read its JSON line.
fn reference_json(mut cmd: Command, quick: bool) -> Option<serde_json::Value> {
    if quick {
        cmd.args(["--steps", "50", "--runs", "1", "--infer-iters", "10"]);
    }
    let out = cmd.stderr(std::process::Stdio::null()).output().ok()?;
    serde_json::from_slice(out.stdout.trim_ascii()).ok()
}

fn patron_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.with_file_name(format!("patron{}", std::env::consts::EXE_SUFFIX))
}

/// Run the patron binary; returns the wall-clock seconds and that process's own peak RSS
/// in MB (not the maximum over every child, which would be the torch reference's). Linux
/// counts this process's RSS at the spawn in it too, so measure while this one is small.
fn run(args: &[&str]) -> (f64, f64) {
    try_run(args).unwrap_or_else(|e| panic!("patron {args:?} failed: {e}"))
}

/// [`run`], or the last line patron wrote on stderr when it failed.
fn try_run(args: &[&str]) -> Result<(f64, f64), String> {
    let errors = std::env::temp_dir().join(format!("patron-bench-{}.err", std::process::id()));
    let started = Instant::now();
    // Reaped by wait4 below, which std's wait does not offer (it drops the usage).
    let child = Command::new(patron_exe())
        .args(args)
        .current_dir(project_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errors).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("patron does not start: {e}"))?
        .id();
    let mut status = 0;
    // SAFETY: wait4 reaps our own child and fills the status and usage we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    let stderr = std::fs::read_to_string(&errors).unwrap_or_default();
    let _ = std::fs::remove_file(&errors);
    if pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok((seconds, usage.ru_maxrss as f64 / 1024.0))
    } else {
        Err(stderr.lines().last().unwrap_or("no message").to_string())
    }
}

/// The project root: the working directory when it holds the configs (a copied tree),
/// otherwise the one this binary was built from.
fn project_dir() -> PathBuf {
    if Path::new("configs").is_dir() {
        PathBuf::from(".")
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}

/// One epoch of a text config on `backend`: (training texts/s, seconds per optimizer step),
/// or why patron could not train it there.
fn text_epoch(
    backend: &str,
    config: &str,
    sets: &[&str],
    dir: &Path,
) -> Result<(f64, f64), String> {
    try_run(&train_args(
        config,
        backend,
        dir,
        &[&["train.epochs=1"], sets].concat(),
    ))?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("run file");
    let manifest: serde_json::Value = serde_json::from_str(&read("manifest.json")).expect("json");
    let config: toml::Table = read("config.toml").parse().expect("toml");
    let rows = manifest["rows"]["train"].as_f64().expect("train rows");
    let batch = config["train"]["batch_size"].as_integer().expect("batch") as f64;
    let metrics = read("metrics.csv");
    let seconds: f64 = metrics
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(5))
        .and_then(|v| v.parse().ok())
        .expect("epoch seconds");
    let _ = std::fs::remove_dir_all(dir);
    Ok((rows / seconds, seconds / (rows / batch).ceil()))
}

/// Mean embedding-table ids per training text of a text config (to turn texts/s into the
/// ids/s the fastText-style reference reports).
fn ids_per_text(config: &str, sets: &[&str]) -> f64 {
    let overrides: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::load(&project_dir().join(config), &overrides).expect("config");
    let path = project_dir().join(config.data_path());
    let read = ReadOptions::of(&config);
    let table = read_table(&path, &read).expect("data");
    let classes = fit_labels(&table, &config, &path).expect("labels");
    let labels = target_values(&table, &config, &classes);
    let strata: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
    let split = split_rows(&strata, &config.split);
    let target = BinTarget {
        values: &labels,
        classes: classes.len(),
    };
    let (pre, _) =
        Preprocessor::fit(&table, &split.train, classes, target, &config, &path).expect("fit");
    let encoded = pre.transform(&table, 0, &path).expect("transform");
    let ids: usize = split.train.iter().map(|&r| encoded.tokens[r].len()).sum();
    ids as f64 / split.train.len().max(1) as f64
}

/// A bank-shaped CSV of `rows` rows (the shipped file repeated).
fn write_rows(path: &Path, rows: usize) {
    write_rows_of(path, rows, "datasets/bank_marketing_uci_bank_4521.csv");
}

/// A CSV of `rows` rows shaped like the shipped `dataset` (its rows repeated).
fn write_rows_of(path: &Path, rows: usize, dataset: &str) {
    let data = std::fs::read_to_string(project_dir().join(dataset)).expect("shipped data");
    let mut lines = data.lines();
    let header = lines.next().unwrap_or_default();
    let body: Vec<&str> = lines.collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("temp file"));
    writeln!(f, "{header}").expect("write");
    for i in 0..rows {
        writeln!(f, "{}", body[i % body.len()]).expect("write");
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `patron train` arguments: `config` on `backend` into `dir`, quiet, with `--set` for each
/// of `sets`.
fn train_args<'a>(
    config: &'a str,
    backend: &'a str,
    dir: &'a Path,
    sets: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--config",
        config,
        "--backend",
        backend,
        "--quiet",
        "--output-dir",
        path_str(dir),
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    args
}

fn main() {
    tune_allocator();
    // As the patron binary does: the cases run on a worker of flex's pool.
    on_compute_pool(bench);
}

fn bench() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if args.iter().any(|a| a == "--serve-only") {
        // Only the server cases, on a freshly trained bank run.
        let tmp = std::env::temp_dir().join(format!("patron-bench-{}", std::process::id()));
        let run_dir = tmp.join("run");
        let epochs = "train.epochs=2";
        let config = "configs/bank_propensity.toml";
        run(&[
            "train",
            "--config",
            config,
            "--quiet",
            "--output-dir",
            path_str(&run_dir),
            "--set",
            epochs,
        ]);
        let mut cases = serve_cases(quick, &run_dir);
        cases.extend(serve_encoder_cases(quick, &tmp));
        // Batch `predict` of the same run, the yardstick of the 1,000-row requests.
        let big = tmp.join("big.csv");
        write_rows(&big, 200_000);
        let out = tmp.join("out.csv");
        let case = "predict_200k";
        cases.push(predict_case(&run_dir, &big, 200_000, &out, case, "auto"));
        let _ = std::fs::remove_dir_all(&tmp);
        print_results(&cases, &References::default());
        return;
    }
    // The in-process cases (tabular, fastText-style) and the reference take turns, so a
    // noisy neighbour on a shared machine slows both sides alike; each side's figure is
    // its median over the rounds.
    let rounds = if quick { 1 } else { 3 };
    let mut backends = match backends_arg(&args) {
        Ok(backends) => backends,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    let tmp = std::env::temp_dir().join(format!("patron-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    // The end-to-end cases run first: a child's peak RSS includes its parent's at the
    // moment of spawning (Linux carries the high-water mark across exec), and the
    // in-process cases below hold an 800 MB fastText table.
    let gpus: Vec<&str> = backends
        .iter()
        .map(|&(name, _)| name)
        .filter(|&name| name == "wgpu")
        .collect();
    let mut end_to_end = end_to_end_cases(quick, &tmp, &gpus);
    // Probed after the end-to-end cases, so that this process holds no GPU while they run.
    backends.retain(|&(name, choice)| match select(choice) {
        Ok(backend) => {
            eprintln!("{name}: {}", backend.description);
            true
        }
        Err(e) => {
            eprintln!("skipping the {name} cases: {e}");
            false
        }
    });
    let (mut cases, references) = in_process_cases(quick, rounds, &backends);
    cases.append(&mut end_to_end);
    cases.extend(text_cases(quick, &backends, &tmp));
    let _ = std::fs::remove_dir_all(&tmp);
    print_results(&cases, &references);
}

/// The backends to measure: `--backends flex,ndarray,wgpu` (default flex and ndarray);
/// `--wgpu` adds the GPU backend to the list.
fn backends_arg(args: &[String]) -> Result<Vec<(&'static str, BackendChoice)>, String> {
    let known = [
        ("flex", BackendChoice::Flex),
        ("ndarray", BackendChoice::Ndarray),
        ("wgpu", BackendChoice::Wgpu),
    ];
    let mut backends = match args.iter().position(|a| a == "--backends") {
        Some(i) => {
            let list = args
                .get(i + 1)
                .ok_or("--backends needs a list such as flex,wgpu")?;
            list.split(',')
                .map(|name| {
                    known
                        .iter()
                        .find(|(k, _)| *k == name.trim())
                        .copied()
                        .ok_or(format!(
                            "--backends: unknown backend {name:?}; use flex, ndarray or wgpu"
                        ))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => known[..2].to_vec(),
    };
    if args.iter().any(|a| a == "--wgpu") && !backends.iter().any(|(k, _)| *k == "wgpu") {
        backends.push(known[2]);
    }
    Ok(backends)
}

/// `patron predict` of the run in `run_dir` on `big` (`rows` rows) into `out` on
/// `backend`: rows/s and peak RSS as `case` (`case/backend` for a GPU), or no figure with
/// the reason on stderr when it fails.
fn predict_case(
    run_dir: &Path,
    big: &Path,
    rows: usize,
    out: &Path,
    case: &str,
    backend: &str,
) -> Case {
    let predicted = try_run(&[
        "predict",
        "--checkpoint",
        path_str(run_dir),
        "--input",
        path_str(big),
        "--output",
        path_str(out),
        "--backend",
        backend,
    ]);
    let (patron, extra) = match predicted {
        Ok((secs, peak_rss_mb)) => (
            Some(rows as f64 / secs),
            format!("\"peak_rss_mb\": {peak_rss_mb:.0}"),
        ),
        Err(e) => {
            eprintln!("{case}/{backend}: not measured: {e}");
            (None, "\"peak_rss_mb\": null".into())
        }
    };
    Case {
        case: match backend {
            "auto" => case.into(),
            gpu => format!("{case}/{gpu}"),
        },
        unit: "rows/s",
        patron,
        reference: None,
        gpu: backend != "auto",
        extra,
    }
}

/// `predict` on a large file (rows/s, peak RSS) and on a 10-row one (cold start), as
/// users run it (`--backend auto`), and on each of `gpus` (`predict_*/wgpu`).
fn end_to_end_cases(quick: bool, tmp: &Path, gpus: &[&str]) -> Vec<Case> {
    let mut end_to_end = Vec::new();
    // Two epochs of the bank config on flex into `dir`, with `set` (`--set` overrides).
    let train_bank = |dir: &Path, set: &[&str]| {
        let sets = [&["train.epochs=2"], set].concat();
        run(&train_args(
            "configs/bank_propensity.toml",
            "flex",
            dir,
            &sets,
        ));
    };
    let run_dir = tmp.join("run");
    train_bank(&run_dir, &[]);
    let rows = if quick { 200_000 } else { 1_000_000 };
    let big = tmp.join("big.csv");
    write_rows(&big, rows);
    let out = tmp.join("out.csv");
    let case = if quick { "predict_200k" } else { "predict_1m" };
    for backend in std::iter::once("auto").chain(gpus.iter().copied()) {
        end_to_end.push(predict_case(&run_dir, &big, rows, &out, case, backend));
    }
    // The same rows scored by a 5-fold ensemble (`split.folds = 5`): five MLPs per row.
    let cv_dir = tmp.join("run_cv5");
    train_bank(&cv_dir, &["split.folds=5"]);
    let cv_case = format!("{case}_cv5");
    end_to_end.push(predict_case(&cv_dir, &big, rows, &out, &cv_case, "auto"));
    end_to_end.push(arrow_case(&run_dir, &big, rows, tmp, case));
    end_to_end.extend(spark_case(&run_dir, &big, tmp, case));
    let small = tmp.join("small.csv");
    write_rows(&small, 10);
    let small_out = tmp.join("small_out.csv");
    let cold: Vec<f64> = (0..5)
        .map(|_| {
            run(&[
                "predict",
                "--checkpoint",
                path_str(&run_dir),
                "--input",
                path_str(&small),
                "--output",
                path_str(&small_out),
            ])
            .0
        })
        .collect();
    end_to_end.push(Case {
        case: "cold_start".into(),
        unit: "s",
        patron: Some(median(cold)),
        reference: None,
        gpu: false,
        extra: "\"rows\": 10".into(),
    });
    end_to_end.extend(regression_cases(quick, tmp));
    end_to_end.extend(serve_cases(quick, &run_dir));
    end_to_end.extend(serve_encoder_cases(quick, tmp));
    end_to_end
}

/// `predict` with Arrow IPC in and out (an `.arrows` stream file of 10,000-row batches,
/// Spark's default) against CSV in and out, on the same rows, each the median of 3 runs.
fn arrow_case(run_dir: &Path, csv: &Path, rows: usize, tmp: &Path, case: &str) -> Case {
    let df = polars::prelude::CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.to_path_buf()))
        .and_then(polars::prelude::SerReader::finish)
        .expect("the bench CSV reads");
    let arrows = tmp.join("big.arrows");
    let file = std::fs::File::create(&arrows).expect("temp file");
    patron::data::arrow::write_frame(&df, 10_000, ArrowTarget::Stream(Box::new(file)))
        .expect("the Arrow input writes");
    drop(df);
    let measure = |input: &Path, output: &Path| {
        let runs: Vec<(f64, f64)> = (0..3)
            .map(|_| {
                run(&[
                    "predict",
                    "--checkpoint",
                    path_str(run_dir),
                    "--input",
                    path_str(input),
                    "--output",
                    path_str(output),
                ])
            })
            .collect();
        let rss = runs.iter().map(|r| r.1).fold(0.0, f64::max);
        (
            rows as f64 / median(runs.iter().map(|r| r.0).collect()),
            rss,
        )
    };
    let (csv_rate, _) = measure(csv, &tmp.join("out.csv"));
    let (arrow_rate, rss) = measure(&arrows, &tmp.join("out.arrows"));
    Case {
        case: format!("{case}_arrow"),
        unit: "rows/s",
        patron: Some(arrow_rate),
        reference: None,
        gpu: false,
        extra: format!(
            "\"csv_rows_per_s\": {csv_rate:.0}, \"vs_csv\": {:.2}, \"peak_rss_mb\": {rss:.0}",
            arrow_rate / csv_rate
        ),
    }
}

/// The same rows as a Parquet file scored through Spark `local[2]` into Parquet
/// (`integrations/spark/check_spark.py bench`), against plain `predict` of that file; `None`
/// (with the reason) where python3 with pyspark or Java is missing.
fn spark_case(run_dir: &Path, csv: &Path, tmp: &Path, case: &str) -> Option<Case> {
    use polars::prelude::{CsvReadOptions, ParquetWriter, SerReader};
    let ready = Command::new("python3")
        .args(["-c", "import pyspark, pyarrow"])
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!("{case}_spark: not measured: python3 with pyspark and pyarrow, or java, missing");
        return None;
    }
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.to_path_buf()))
        .and_then(SerReader::finish)
        .expect("the bench CSV reads");
    let parquet = tmp.join("big.parquet");
    let file = std::fs::File::create(&parquet).expect("temp file");
    ParquetWriter::new(file)
        .finish(&mut df)
        .expect("the Parquet input writes");
    drop(df);
    let work = tmp.join("spark");
    std::fs::create_dir_all(&work).expect("temp dir");
    let out = Command::new("python3")
        .arg(project_dir().join("integrations/spark/check_spark.py"))
        .args(["bench", path_str(&patron_exe()), path_str(run_dir)])
        .args([path_str(&parquet), path_str(&work)])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rfind(|l| l.starts_with('{'));
    let Some(figures) = line.and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()) else {
        let why = String::from_utf8_lossy(&out.stderr);
        eprintln!("{case}_spark: failed: {}", why.lines().last().unwrap_or(""));
        return None;
    };
    let extra = [
        "spark_cold_rows_per_s",
        "identity_rows_per_s",
        "plain_rows_per_s",
        "vs_plain",
    ]
    .iter()
    .map(|k| format!("\"{k}\": {}", figures[k]))
    .collect::<Vec<_>>()
    .join(", ");
    Some(Case {
        case: format!("{case}_spark_local2"),
        unit: "rows/s",
        patron: figures["spark_rows_per_s"].as_f64(),
        reference: None,
        gpu: false,
        extra,
    })
}

/// One keep-alive HTTP/1.1 connection of the load client (loopback only).
struct Connection {
    stream: std::io::BufReader<std::net::TcpStream>,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = std::net::TcpStream::connect(address).expect("the server accepts");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            stream: std::io::BufReader::new(stream),
        }
    }

    /// POST `body` to `path` and read the whole answer; its status.
    fn post(&mut self, path: &str, body: &[u8]) -> u16 {
        use std::io::{BufRead, Read};
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).expect("request");
        stream.write_all(body).expect("request body");
        let (mut status, mut length) = (0, 0usize);
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("answer");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).expect("answer body");
        status
    }
}

/// `connections` clients each sending `body` to the served run `model` back to back for
/// `seconds`: requests/s and the 99th percentile latency in ms; a non-200 answer aborts
/// the case.
fn load(address: &str, model: &str, body: &[u8], connections: usize, seconds: f64) -> (f64, f64) {
    let path = format!("/v1/models/{model}/predict");
    let path = path.as_str();
    let started = Instant::now();
    let latencies: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                scope.spawn(|| {
                    let mut connection = Connection::open(address);
                    let mut times = Vec::new();
                    while started.elapsed().as_secs_f64() < seconds {
                        let sent = Instant::now();
                        assert_eq!(connection.post(path, body), 200, "the server refused");
                        times.push(sent.elapsed().as_secs_f64() * 1e3);
                    }
                    times
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    (latencies.len() as f64 / elapsed, p99)
}

/// `patron serve` of the run in `run_dir` as `name` on flex: the child and the address it
/// listens on.
fn start_server(name: &str, run_dir: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let spec = format!("{name}={}", run_dir.display());
    let mut child = Command::new(patron_exe())
        .args(["serve", "--bind", "127.0.0.1:0", "--backend", "flex"])
        .args(["--checkpoint", &spec])
        // Extra `patron serve` flags to measure (its batching, say).
        .args(
            std::env::var("PATRON_BENCH_SERVE_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .current_dir(project_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("patron serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the address");
    let address = line.trim().trim_start_matches("http://").to_string();
    (child, address)
}

/// `patron serve` of a MiniLM `text_encoder` run (one epoch on 160 UCI sentences; the
/// weights are what matters for latency, not their quality): one short text per request
/// from 8 keep-alive connections. Skipped with the reason when scripts/fetch_minilm.sh has
/// not fetched the model.
fn serve_encoder_cases(quick: bool, tmp: &Path) -> Vec<Case> {
    let model = project_dir().join("models/all-MiniLM-L6-v2");
    if !model.join("model.safetensors").is_file() {
        eprintln!(
            "serve_encoder_1_text skipped: no {} (scripts/fetch_minilm.sh)",
            model.display()
        );
        return Vec::new();
    }
    std::fs::create_dir_all(tmp).expect("temp dir");
    let data = std::fs::read_to_string(
        project_dir().join("datasets/uci_sentiment_labelled_sentences_3000.csv"),
    )
    .expect("shipped UCI data");
    let slice: Vec<&str> = data.lines().take(161).collect();
    let csv = tmp.join("uci160.csv");
    std::fs::write(&csv, slice.join("\n") + "\n").expect("temp file");
    let config = tmp.join("encoder.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\npath = {:?}\ntext = \"text\"\ntarget = \"label\"\npositive = \"positive\"\n\
             drop = [\"source\", \"class\"]\n[model]\nkind = \"text_encoder\"\npretrained = {:?}\n\
             [train]\nepochs = 1\n",
            path_str(&csv),
            path_str(&model)
        ),
    )
    .expect("temp file");
    let run_dir = tmp.join("encoder");
    run(&train_args(path_str(&config), "flex", &run_dir, &[]));
    let (mut child, address) = start_server("sentiment", &run_dir);
    let body = br#"{"rows": [{"text": "The battery died after two days, very disappointed."}]}"#;
    let seconds = if quick { 3.0 } else { 10.0 };
    let (rate, p99) = load(&address, "sentiment", body, 8, seconds);
    let _ = child.kill();
    let _ = child.wait();
    vec![Case {
        case: "serve_encoder_1_text".into(),
        unit: "requests/s",
        patron: Some(rate),
        reference: None,
        gpu: false,
        extra: format!("\"p99_ms\": {p99:.2}, \"connections\": 8, \"seconds\": {seconds}"),
    }]
}

/// `patron serve` of the bank run on flex, loaded over loopback by this process's own
/// bounded client (both on the same 2 cores): one-row requests from 32 keep-alive
/// connections, and 1,000-row requests from 2.
fn serve_cases(quick: bool, run_dir: &Path) -> Vec<Case> {
    let (mut child, address) = start_server("bank", run_dir);
    let data =
        std::fs::read_to_string(project_dir().join("datasets/bank_marketing_uci_bank_4521.csv"))
            .expect("shipped bank data");
    let mut lines = data.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<String> = lines
        .take(1000)
        .map(|l| {
            let cells: Vec<String> = header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| match v.parse::<f64>() {
                    Ok(_) => format!("{k:?}: {v}"),
                    Err(_) => format!("{k:?}: {:?}", v.trim_matches('"')),
                })
                .collect();
            format!("{{{}}}", cells.join(", "))
        })
        .collect();
    let one = format!("{{\"rows\": [{}]}}", rows[0]);
    let thousand = format!("{{\"rows\": [{}]}}", rows.join(", "));
    let seconds = if quick { 3.0 } else { 10.0 };
    let (rate, p99) = load(&address, "bank", one.as_bytes(), 32, seconds);
    let (big_rate, big_p99) = load(&address, "bank", thousand.as_bytes(), 2, seconds);
    let _ = child.kill();
    let _ = child.wait();
    vec![
        Case {
            case: "serve_1_row".into(),
            unit: "requests/s",
            patron: Some(rate),
            reference: None,
            gpu: false,
            extra: format!("\"p99_ms\": {p99:.2}, \"connections\": 32, \"seconds\": {seconds}"),
        },
        Case {
            case: "serve_1000_rows".into(),
            unit: "rows/s",
            patron: Some(big_rate * 1000.0),
            reference: None,
            gpu: false,
            extra: format!("\"p99_ms\": {big_p99:.2}, \"connections\": 2, \"seconds\": {seconds}"),
        },
    ]
}

/// The customer-value config (CDNOW, Tweedie loss) on flex: training rows/s over a fixed
/// number of epochs, and `predict` rows/s with its peak memory on CDNOW-shaped rows.
fn regression_cases(quick: bool, tmp: &Path) -> Vec<Case> {
    let run_dir = tmp.join("regression");
    let epochs = 5;
    let epochs_set = format!("train.epochs={epochs}");
    run(&train_args(
        "configs/customer_value.toml",
        "flex",
        &run_dir,
        &[&epochs_set, "train.early_stopping.patience=0"],
    ));
    let read = |name: &str| std::fs::read_to_string(run_dir.join(name)).expect("run file");
    let manifest: serde_json::Value = serde_json::from_str(&read("manifest.json")).expect("json");
    let train_rows = manifest["rows"]["train"].as_f64().expect("train rows");
    let metrics = read("metrics.csv");
    let seconds_column = metrics
        .lines()
        .next()
        .and_then(|h| h.split(',').position(|c| c == "seconds"))
        .expect("a seconds column");
    let seconds: f64 = metrics
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(seconds_column)?.parse::<f64>().ok())
        .sum();
    let mut cases = vec![Case {
        case: "regression_train".into(),
        unit: "rows/s",
        patron: Some(train_rows * epochs as f64 / seconds),
        reference: None,
        gpu: false,
        extra: format!(
            "\"data\": \"CDNOW future_spend, Tweedie, {epochs} epochs of {train_rows} rows\""
        ),
    }];
    let rows = if quick { 200_000 } else { 1_000_000 };
    let big = tmp.join("cdnow_big.csv");
    write_rows_of(&big, rows, "datasets/cdnow_customer_value_23570.csv");
    let out = tmp.join("cdnow_out.csv");
    let (secs, peak_rss_mb) = run(&[
        "predict",
        "--checkpoint",
        path_str(&run_dir),
        "--input",
        path_str(&big),
        "--output",
        path_str(&out),
    ]);
    cases.push(Case {
        case: if quick {
            "regression_predict_200k".into()
        } else {
            "regression_predict_1m".into()
        },
        unit: "rows/s",
        patron: Some(rows as f64 / secs),
        reference: None,
        gpu: false,
        extra: format!("\"peak_rss_mb\": {peak_rss_mb:.0}"),
    });
    cases
}

/// What the PyTorch reference printed in each round: as users run it, and with
/// patron's malloc thresholds.
#[derive(Default)]
struct References {
    plain: Vec<serde_json::Value>,
    tuned: Vec<serde_json::Value>,
    /// On CUDA, when the wgpu cases run and torch sees a CUDA device.
    cuda: Vec<serde_json::Value>,
}

/// The tabular and fastText-style cases of each backend, taking turns with the
/// reference for `rounds` rounds.
fn in_process_cases(
    quick: bool,
    rounds: usize,
    backends: &[(&str, BackendChoice)],
) -> (Vec<Case>, References) {
    let (steps, runs, iters) = if quick { (50, 1, 10) } else { (200, 3, 50) };
    let script = torch_script();
    let mut references = References::default();
    let mut train_rates = vec![Vec::new(); backends.len()];
    let mut infer_rates = vec![Vec::new(); backends.len()];
    let mut fasttext_rates = vec![Vec::new(); backends.len()];
    let ft_steps = if quick { 100 } else { 300 };
    let on_gpu = backends.iter().any(|&(name, _)| name == "wgpu");
    for _ in 0..rounds {
        if let Some(script) = script.as_deref() {
            references
                .plain
                .extend(torch_reference(script, quick, false));
            references
                .tuned
                .extend(torch_reference(script, quick, true));
            if on_gpu {
                references.cuda.extend(torch_cuda_reference(script, quick));
            }
        }
        for (i, &(_, choice)) in backends.iter().enumerate() {
            let backend = select(choice).expect("checked above; CPU backends always exist");
            train_rates[i].push(tabular_train(&backend.device, steps, runs));
            infer_rates[i].push(tabular_infer(&backend.device, iters, runs));
            match fasttext_train(&backend.device, ft_steps, runs) {
                Ok(rate) => fasttext_rates[i].push(rate),
                Err(e) => eprintln!("fasttext_train/{}: not measured: {e}", backend.name),
            }
        }
    }
    if on_gpu && script.is_some() && references.cuda.is_empty() {
        eprintln!("reference on CUDA: torch sees no CUDA device; the wgpu cases have no ratio");
    }
    let omp = std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "default".into());
    let mut cases = Vec::new();
    for (i, &(name, _)) in backends.iter().enumerate() {
        cases.push(Case {
            case: format!("tabular_train/{name}"),
            unit: "samples/s",
            patron: Some(median(train_rates[i].clone())),
            reference: Some("train_samples_per_s"),
            gpu: name == "wgpu",
            extra: format!(
                "\"threads\": {}, \"batch\": 512, \"rounds\": {rounds}, \"omp_wait_policy\": \"{omp}\"",
                threads()
            ),
        });
        cases.push(Case {
            case: format!("tabular_infer/{name}"),
            unit: "rows/s",
            patron: Some(median(infer_rates[i].clone())),
            reference: Some("infer_inference_mode_rows_per_s"),
            gpu: name == "wgpu",
            extra: format!(
                "\"threads\": {}, \"batch\": 4096, \"rounds\": {rounds}, \"omp_wait_policy\": \"{omp}\"",
                threads()
            ),
        });
    }
    for (i, &(name, _)) in backends.iter().enumerate() {
        cases.push(Case {
            case: format!("fasttext_train/{name}"),
            unit: "ids/s",
            patron: (!fasttext_rates[i].is_empty()).then(|| median(fasttext_rates[i].clone())),
            reference: Some("fasttext_train_tokens_per_s"),
            gpu: name == "wgpu",
            extra: format!(
                "\"data\": \"the reference's: 32 docs x 40 uniform ids, 2^20 x 64 table, 2 classes\", \"rounds\": {rounds}"
            ),
        });
    }
    (cases, references)
}

/// `text_bag` on the Chinese reviews and a Transformer step on the English config, per
/// backend, each a training run of its own.
fn text_cases(quick: bool, backends: &[(&str, BackendChoice)], tmp: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(name, _) in backends {
        // The reference's fastText-style sizes: a 2^20 x 64 table, batch 32 documents.
        let sizes = ["model.embedding_dim=64", "model.buckets=1048576"];
        let zh = "configs/feedback_sentiment_zh.toml";
        let texts = text_epoch(name, zh, &sizes, &tmp.join("zh"))
            .inspect_err(|e| eprintln!("text_bag_train/{name}: not measured: {e}"))
            .ok()
            .map(|(texts, _)| texts);
        let ids = ids_per_text(zh, &sizes);
        cases.push(Case {
            case: format!("text_bag_train/{name}"),
            unit: "ids/s",
            patron: texts.map(|t| t * ids),
            reference: Some("fasttext_train_tokens_per_s"),
            gpu: name == "wgpu",
            extra: format!(
                "\"texts_per_s\": {}, \"ids_per_text\": {ids:.1}, \"data\": \"Chinese reviews, one epoch, batch 32, 2^20 x 64 table\"",
                texts.map_or("null".into(), |t| format!("{t:.0}"))
            ),
        });
        // The shipped English config as a Transformer at the default size; quick mode
        // shortens the texts.
        let length = if quick {
            "model.max_length=32"
        } else {
            "model.max_length=64"
        };
        let step = text_epoch(
            name,
            "configs/feedback_sentiment_en.toml",
            &["model.kind=\"text_transformer\"", length],
            &tmp.join("en"),
        )
        .inspect_err(|e| eprintln!("text_transformer_step/{name}: not measured: {e}"))
        .ok()
        .map(|(_, step)| step);
        cases.push(Case {
            case: format!("text_transformer_step/{name}"),
            unit: "s/step",
            patron: step,
            reference: None,
            gpu: name == "wgpu",
            extra: format!("\"batch\": 32, \"{}\": true", length),
        });
    }
    cases
}

/// One JSON line per case, then the markdown table.
fn print_results(cases: &[Case], references: &References) {
    let median_of = |runs: &[serde_json::Value], key: Option<&str>| {
        let v: Vec<f64> = runs.iter().filter_map(|r| r[key?].as_f64()).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let num = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:.4}"));
    // A GPU case's reference is PyTorch on CUDA; the malloc setting is a CPU matter.
    let figures = |c: &Case| {
        let (reference, tuned) = if c.gpu {
            (median_of(&references.cuda, c.reference), None)
        } else {
            (
                median_of(&references.plain, c.reference),
                median_of(&references.tuned, c.reference),
            )
        };
        let ratio = |r: Option<f64>| c.patron.zip(r).map(|(p, r)| p / r);
        (reference, ratio(reference), tuned, ratio(tuned))
    };
    let cuda_device = references.cuda.first().and_then(|r| r["device"].as_str());
    for c in cases {
        let (reference, ratio, tuned, tuned_ratio) = figures(c);
        let device = match cuda_device {
            Some(name) if c.gpu => format!(", \"reference_device\": \"CUDA {name}\""),
            _ => String::new(),
        };
        println!(
            "{{\"case\": \"{}\", \"unit\": \"{}\", \"patron\": {}, \"reference\": {}, \"ratio\": {}, \"reference_malloc_tuned\": {}, \"ratio_malloc_tuned\": {}, {}{device}}}",
            c.case,
            c.unit,
            num(c.patron),
            num(reference),
            num(ratio),
            num(tuned),
            num(tuned_ratio),
            c.extra
        );
    }
    println!(
        "\n| case | unit | patron | PyTorch | ratio | PyTorch, malloc tuned | ratio |\n|---|---|---|---|---|---|---|"
    );
    let show = |v: Option<f64>| {
        v.map_or("-".to_string(), |x| {
            if x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            }
        })
    };
    let times = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
    for c in cases {
        let (reference, ratio, tuned, tuned_ratio) = figures(c);
        let on = if c.gpu && reference.is_some() {
            " (CUDA)"
        } else {
            ""
        };
        println!(
            "| {} | {} | {} | {}{on} | {} | {} | {} |",
            c.case,
            c.unit,
            show(c.patron),
            show(reference),
            times(ratio),
            show(tuned),
            times(tuned_ratio)
        );
    }
}

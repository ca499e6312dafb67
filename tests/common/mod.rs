//! Helpers shared by the integration tests: run the built binary and read its outputs.

#![allow(dead_code)] // each test crate uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Run `patron` with `args` from the package root.
pub fn patron(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("patron runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a zero exit status, showing both streams otherwise.
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Parse a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The numbers of a JSON array.
pub fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The entry of a JSON list of objects whose `name` is `name`.
pub fn named<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

/// `patron train` arguments: `config` with `--set` overrides into `dir` on `backend`, quiet.
pub fn train_args(backend: &str, config: &str, dir: &Path, sets: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--config",
        config,
        "--backend",
        backend,
        "--quiet",
        "--output-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(dir.display().to_string());
    for s in sets {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args
}

/// Train `config` with `--set` overrides into `dir` on `backend`; checks that the last
/// stdout line is the run directory and returns it.
pub fn train_on(backend: &str, config: &str, dir: &Path, sets: &[&str]) -> PathBuf {
    let args = train_args(backend, config, dir, sets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = patron(&args);
    assert_ok(&o);
    let last = stdout(&o).lines().last().unwrap_or_default().to_string();
    assert_eq!(Path::new(&last), dir, "the last stdout line is the run dir");
    dir.to_path_buf()
}

/// The `score` column of a predictions CSV written by `patron predict`.
pub fn scores(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

/// Run `patron predict` on `backend`, with `extra` arguments.
pub fn predict_on(
    run: &Path,
    input: &Path,
    output: &Path,
    backend: &str,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "predict",
        "--checkpoint",
        run.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--backend",
        backend,
    ];
    args.extend(extra);
    patron(&args)
}

/// Run `patron evaluate` of `run` on `data` on `backend`, writing into `output` if given.
pub fn evaluate_on(run: &Path, data: &Path, output: Option<&Path>, backend: &str) -> Output {
    let mut args = vec![
        "evaluate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--backend",
        backend,
    ];
    if let Some(output) = output {
        args.extend(["--output", output.to_str().unwrap()]);
    }
    patron(&args)
}

/// report.html is self-contained: no scripts, stylesheets, images or fonts fetched.
pub fn check_self_contained(html: &str) {
    for needle in [
        "<script",
        "<link",
        "<img",
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!html.contains(needle), "report.html contains {needle}");
    }
}

/// Parse every inline SVG of a page as XML, check each has axis labels and text, and
/// return how many there are.
pub fn check_svgs(html: &str) -> usize {
    let mut svgs = 0;
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
        let svg = &rest[start..end];
        let doc = roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("SVG {svgs} is not XML: {e}"));
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.len() >= 4, "SVG {svgs} has too few labels: {texts:?}");
        svgs += 1;
        rest = &rest[end..];
    }
    svgs
}

/// The lines of a run's metrics.csv without the epoch's wall-clock seconds (column 6),
/// which differ between otherwise identical runs.
pub fn metrics_without_seconds(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(',').collect();
            fields.remove(5);
            fields.join(",")
        })
        .collect()
}

/// A three-class run of the telco data (which contract a customer holds; `Churn` dropped)
/// trained on ndarray for `epochs` into `dir`, with `extra` TOML appended to its config.
pub fn train_contract(dir: &Path, epochs: usize, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("contract.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\npath = \"datasets/telco_customer_churn_ibm_7043.csv\"\ntarget = \"Contract\"\n\
             id = \"customerID\"\ndrop = [\"Churn\"]\n[train]\nepochs = {epochs}\n{extra}"
        ),
    )
    .unwrap();
    train_on("ndarray", config.to_str().unwrap(), &dir.join("run"), &[])
}

/// A Parquet file's rows and its column names.
pub fn read_parquet(path: &Path) -> (polars::prelude::DataFrame, Vec<String>) {
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap();
    let names = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    (df, names)
}

/// `patron predict --input - --output -` of a text run on ndarray, with `input` on standard
/// input and `extra` arguments.
pub fn predict_stdin(run: &Path, input: &[u8], extra: &[&str]) -> Output {
    predict_pipe(run, input, "ndarray", extra)
}

/// `patron predict --input - --output -` on `backend`, with `input` written to standard
/// input from another thread (as a real producer writes while patron answers) and `extra`
/// arguments.
pub fn predict_pipe(run: &Path, input: &[u8], backend: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["predict", "--checkpoint", run.to_str().unwrap()])
        .args(["--input", "-", "--output", "-", "--backend", backend])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // patron may stop reading early (an error): a broken pipe is its answer.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `patron drift` of `run` on `data` on ndarray, writing into `out`.
pub fn drift_on(run: &Path, data: &Path, out: &Path) -> Output {
    patron(&[
        "drift",
        "--checkpoint",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--backend",
        "ndarray",
    ])
}

/// A CSV `patron` wrote (no quoted commas): its header and rows of cells.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

/// `patron export --format FORMAT` of `run` into `output`.
pub fn export(run: &Path, format: &str, output: &Path) -> Output {
    patron(&[
        "export",
        "--checkpoint",
        run.to_str().unwrap(),
        "--format",
        format,
        "--output",
        output.to_str().unwrap(),
    ])
}

/// `patron export --format safetensors` of `run` into `output`, and the file's JSON header.
pub fn export_header(run: &Path, output: &Path) -> serde_json::Value {
    assert_ok(&export(run, "safetensors", output));
    safetensors_header(output)
}

/// The JSON header of a safetensors file.
pub fn safetensors_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

/// Whether wgpu finds an adapter; prints why not when it does not.
pub fn adapter_found() -> bool {
    let o = patron(&["info"]);
    assert_ok(&o);
    let info = stdout(&o);
    let found = info
        .lines()
        .any(|l| l.starts_with("wgpu adapter") && !l.contains(": none"));
    if found {
        // The adapter picked is among those listed, with its kind and driver.
        let picked = info
            .lines()
            .find_map(|l| l.strip_prefix("wgpu adapter (Vulkan): "))
            .and_then(|rest| rest.rsplit_once(" (").map(|(name, _)| name.to_string()));
        let listed = picked.as_deref().is_some_and(|name| {
            info.lines()
                .any(|l| l.starts_with(&format!("  {name}: ")) && l.contains(", driver "))
        });
        assert!(listed, "{info}");
    } else {
        eprintln!(
            "skipping wgpu tests: no wgpu adapter found (install mesa-vulkan-drivers and libvulkan1 for a software one)\n{info}"
        );
    }
    found
}

//! Soak test, ignored by default (it writes a ~0.8 GB file and takes about a minute):
//! `cargo test --release --test soak -- --ignored --nocapture`.
//! `patron predict` on 10M rows must stream: peak memory flat in the number of rows.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::train_on;

/// Peak RSS (MiB) of the largest child process waited for so far.
fn children_peak_rss_mb() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn write_rows(path: &Path, rows: usize) {
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let mut lines = data.lines();
    let header = lines.next().unwrap();
    let body: Vec<&str> = lines.collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "{header}").unwrap();
    for i in 0..rows {
        writeln!(f, "{}", body[i % body.len()]).unwrap();
    }
}

fn predict(run: &Path, input: &Path, output: &Path) -> f64 {
    let started = std::time::Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "predict",
            "--checkpoint",
            run.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ])
        .args(["--output", output.to_str().unwrap(), "--backend", "flex"])
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed().as_secs_f64()
}

#[test]
#[ignore = "writes a 0.8 GB file; run with --ignored"]
fn predict_streams_ten_million_rows_in_flat_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    let small = tmp.path().join("small.csv");
    write_rows(&small, 1_000_000);
    let secs_small = predict(&run, &small, &tmp.path().join("small_out.csv"));
    let rss_small = children_peak_rss_mb();
    let big = tmp.path().join("big.csv");
    write_rows(&big, 10_000_000);
    let secs_big = predict(&run, &big, &tmp.path().join("big_out.csv"));
    let rss_big = children_peak_rss_mb();
    println!(
        "1M rows: {secs_small:.1} s; 10M rows: {secs_big:.1} s ({:.0} rows/s); peak RSS over both runs {rss_big:.0} MiB (after 1M: {rss_small:.0} MiB)",
        10_000_000.0 / secs_big
    );
    assert!(rss_big < 1024.0, "peak RSS {rss_big:.0} MiB");
    assert!(
        rss_big < rss_small * 1.5 + 64.0,
        "memory grew with rows: {rss_small:.0} -> {rss_big:.0} MiB"
    );
}

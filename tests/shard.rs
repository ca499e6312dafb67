//! `predict --shard I/N`: N processes over a folder of files score every file exactly once,
//! each output the same as scoring that file alone.

mod common;

use std::path::Path;

use common::{assert_ok, patron, predict_on, read_parquet, stderr, stdout, train_on};

fn shard(run: &Path, pattern: &str, i: usize, out: &Path, extra: &[&str]) -> std::process::Output {
    let spec = format!("{i}/3");
    let mut args = vec![
        "predict",
        "--checkpoint",
        run.to_str().unwrap(),
        "--input",
        pattern,
        "--shard",
        &spec,
        "--output",
        out.to_str().unwrap(),
        "--backend",
        "flex",
    ];
    args.extend(extra);
    patron(&args)
}

#[test]
fn three_shards_over_seven_files_score_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("run"),
        &["train.epochs=2"],
    );
    // The bank rows cut into 7 files of unequal size.
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let mut lines = data.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut start = 0;
    for k in 0..7 {
        let end = if k == 6 {
            rows.len()
        } else {
            start + 300 + 100 * k
        };
        let body: String = rows[start..end].iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(
            input.join(format!("part-{k}.csv")),
            format!("{header}\n{body}"),
        )
        .unwrap();
        start = end;
    }
    let pattern = format!("{}/*.csv", input.display());

    let out = tmp.path().join("out");
    let mut listed = Vec::new();
    for i in 0..3 {
        let o = shard(&run, &pattern, i, &out, &[]);
        assert_ok(&o);
        assert!(
            stderr(&o).contains(&format!("shard {i}/3: scored")),
            "{}",
            stderr(&o)
        );
        listed.extend(stdout(&o).lines().map(str::to_string));
    }
    listed.sort();
    let expected: Vec<String> = (0..7)
        .map(|k| out.join(format!("part-{k}.csv")).display().to_string())
        .collect();
    assert_eq!(listed, expected, "every file once");
    let mut total = 0;
    for k in 0..7 {
        let alone = tmp.path().join(format!("alone-{k}.csv"));
        assert_ok(&predict_on(
            &run,
            &input.join(format!("part-{k}.csv")),
            &alone,
            "flex",
            &[],
        ));
        let sharded = std::fs::read(out.join(format!("part-{k}.csv"))).unwrap();
        assert_eq!(sharded, std::fs::read(&alone).unwrap(), "part-{k}");
        total += sharded.iter().filter(|&&b| b == b'\n').count() - 1;
    }
    assert_eq!(total, rows.len());

    // A rerun of shard 1 rewrites its own outputs and leaves shard 0's alone.
    std::fs::write(out.join("part-0.csv"), "left as it was\n").unwrap();
    std::fs::write(out.join("part-1.csv"), "to be replaced\n").unwrap();
    assert_ok(&shard(&run, &pattern, 1, &out, &[]));
    assert_eq!(
        std::fs::read_to_string(out.join("part-0.csv")).unwrap(),
        "left as it was\n"
    );
    assert_eq!(
        std::fs::read(out.join("part-1.csv")).unwrap(),
        std::fs::read(tmp.path().join("alone-1.csv")).unwrap()
    );

    // Parquet outputs, by --output-format.
    let parquet = tmp.path().join("parquet");
    assert_ok(&shard(
        &run,
        &pattern,
        2,
        &parquet,
        &["--output-format", "parquet"],
    ));
    let (df, _) = read_parquet(&parquet.join("part-2.parquet"));
    assert_eq!(df.height(), 500);

    // No file matches: a usage error naming the pattern, nothing written.
    let none = format!("{}/*.tsv", input.display());
    let o = shard(&run, &none, 0, &tmp.path().join("none"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("matches no .csv or .parquet file"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("none").exists());
    // I must be below N.
    let o = patron(&[
        "predict",
        "--checkpoint",
        run.to_str().unwrap(),
        "--input",
        &pattern,
        "--shard",
        "3/3",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

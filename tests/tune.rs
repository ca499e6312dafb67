//! `patron tune`: trials are ordinary runs, ranked on validation; bad searches fail before
//! any training.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_ok, json, patron, stderr, stdout, train_on};

const TELCO: &str = "configs/telco_churn.toml";
/// Small and quick: what is checked is the search, not the models.
const SHARED: [&str; 4] = [
    "--set",
    "train.epochs=3",
    "--set",
    "train.early_stopping.patience=0",
];

/// `patron tune` of the telco config on ndarray into `dir` with `args` added.
fn tune(dir: &Path, args: &[&str]) -> std::process::Output {
    patron(&tune_args(dir, args))
}

/// The arguments of [`tune`].
fn tune_args<'a>(dir: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "tune",
        "--config",
        TELCO,
        "--backend",
        "ndarray",
        "--quiet",
        "--output-dir",
        dir.to_str().unwrap(),
    ];
    all.extend(SHARED);
    all.extend(args);
    all
}

/// leaderboard.csv: its header and rows (no quoted fields in these searches).
fn leaderboard(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(dir.join("leaderboard.csv")).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

#[test]
fn a_grid_trains_every_combination_and_ranks_it_on_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("search");
    let o = tune(
        &dir,
        &[
            "--search",
            "train.learning_rate=3e-4|3e-3",
            "--search",
            "model.hidden=[16]|[64]",
        ],
    );
    assert_ok(&o);
    let (header, rows) = leaderboard(&dir);
    assert_eq!(
        header[..5],
        [
            "rank",
            "trial",
            "train.learning_rate",
            "model.hidden",
            "valid_log_loss"
        ]
    );
    assert_eq!(rows.len(), 4);
    // Every combination once, best (lowest validation log loss) first.
    let mut combos: Vec<(String, String)> =
        rows.iter().map(|r| (r[2].clone(), r[3].clone())).collect();
    combos.sort();
    assert_eq!(
        combos,
        [
            ("3e-3".into(), "[16]".into()),
            ("3e-3".into(), "[64]".into()),
            ("3e-4".into(), "[16]".into()),
            ("3e-4".into(), "[64]".into()),
        ]
    );
    let losses: Vec<f64> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    // The ranking column is the best epoch's validation log loss of metrics.csv.
    let run_dir = column(&header, "run_dir");
    let best = PathBuf::from(&rows[0][run_dir]);
    let metrics = std::fs::read_to_string(best.join("metrics.csv")).unwrap();
    let epoch: usize = rows[0][column(&header, "best_epoch")].parse().unwrap();
    let row: Vec<&str> = metrics.lines().nth(epoch).unwrap().split(',').collect();
    assert!((row[3].parse::<f64>().unwrap() - losses[0]).abs() < 1e-6);
    // The printed leaderboard, and the best run directory last.
    let out = stdout(&o);
    assert!(out.starts_with("| rank | trial |"), "{out}");
    assert_eq!(out.lines().last().unwrap(), best.to_str().unwrap());
    assert!(dir.join("leaderboard.md").is_file());
    // Each trial's result is reported as it finishes; the first leads by default.
    let log = stderr(&o);
    assert!(
        log.contains("trial 1: valid_log_loss ") && log.contains("(best so far)"),
        "{log}"
    );

    // A trial is the run `patron train` makes with the same values.
    let (lr, hidden) = (&rows[0][2], &rows[0][3]);
    let lr_set = format!("train.learning_rate={lr}");
    let hidden_set = format!("model.hidden={hidden}");
    let alone = train_on(
        "ndarray",
        TELCO,
        &tmp.path().join("alone"),
        &[
            "train.epochs=3",
            "train.early_stopping.patience=0",
            &lr_set,
            &hidden_set,
        ],
    );
    assert_eq!(
        json(&alone.join("report.json")),
        json(&best.join("report.json"))
    );
}

#[test]
fn trials_are_drawn_by_seed_from_lists_and_ranges_and_ranked_by_the_chosen_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let search = [
        "--search",
        "model.dropout=0|0.2|0.4",
        "--search",
        "train.learning_rate=loguniform(1e-4,1e-2)",
        "--trials",
        "2",
        "--seed",
        "3",
        "--metric",
        "auc_roc",
    ];
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert_ok(&tune(&a, &search));
    assert_ok(&tune(&b, &search));
    let (header, rows) = leaderboard(&a);
    assert_eq!(rows.len(), 2);
    assert_eq!(header[4], "valid_auc_roc");
    let auc: Vec<f64> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(auc[0] >= auc[1], "highest AUC first: {auc:?}");
    for row in &rows {
        let lr: f64 = row[3].parse().unwrap();
        assert!((1e-4..=1e-2).contains(&lr), "{row:?}");
    }
    // The same seed draws the same trials with the same results.
    let without_time = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        let seconds = column(&header, "seconds");
        rows.into_iter().map(|r| r[..seconds].to_vec()).collect()
    };
    assert_eq!(without_time(rows), without_time(leaderboard(&b).1));
}

#[test]
fn diverged_trials_rank_last_and_bad_searches_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("search");
    let o = tune(&dir, &["--search", "train.learning_rate=1e12|1e-3"]);
    assert_ok(&o);
    let (header, rows) = leaderboard(&dir);
    assert_eq!(rows[0][2], "1e-3");
    assert_eq!(rows[1][2], "1e12");
    assert_eq!(rows[1][column(&header, "valid_log_loss")], "diverged");
    // It diverged in its first epoch, so no run directory is left to point to.
    assert_eq!(rows[1][column(&header, "run_dir")], "");
    assert!(stderr(&o).contains("trial 1 diverged"), "{}", stderr(&o));

    for (args, message) in [
        (
            vec!["--search", "train.learnin_rate=1e-3|3e-3"],
            "did you mean",
        ),
        (vec!["--search", "train.epochs=3|-1"], "train.epochs"),
        (vec!["--search", "model.hidden"], "write KEY=VALUE|VALUE"),
        (
            vec!["--search", "train.seed=1|2", "--search", "train.seed=3"],
            "given twice",
        ),
        (
            vec!["--search", "train.seed=1|2", "--metric", "auc"],
            "one of auc_roc, auc_pr",
        ),
        (
            vec!["--search", "train.early_stopping.metric=log_loss|auc_roc"],
            "rank them with --metric",
        ),
        // Found by the first trial's data checks: no search directory is left.
        (
            vec!["--search", "train.seed=1|2", "--set", "data.target=Churned"],
            "target column \"Churned\" not found",
        ),
    ] {
        let out = tmp.path().join("bad");
        let o = tune(&out, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: nothing is written");
    }
    // An existing search directory is never written into.
    let o = tune(&dir, &["--search", "train.seed=1|2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn a_stopped_search_resumes_to_the_leaderboard_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let search = [
        "--search",
        "train.learning_rate=1e-3|3e-3|1e-2",
        "--set",
        "train.epochs=8",
    ];
    let whole = tmp.path().join("whole");
    assert_ok(&tune(&whole, &search));

    // Ctrl-C (SIGINT) once the second trial has started: it stops after its epoch.
    let stopped = tmp.path().join("stopped");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(tune_args(&stopped, &search))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !stopped.join("trial-02").exists() {
        assert!(started.elapsed().as_secs() < 120, "trial 2 never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: a signal to our own child, which is still running (it has two trials left).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "continue with `patron tune --resume {}`",
            stopped.display()
        )),
        "{}",
        stderr(&o)
    );
    let finished = json(&stopped.join("search.json"))["done"]
        .as_array()
        .unwrap()
        .len();
    assert!(finished < 3, "{finished} trials finished before the stop");

    // The resume keeps what finished, continues the stopped trial from its checkpoint and
    // runs the rest: the same ranking and validation figures as the uninterrupted search.
    let dir = stopped.to_str().unwrap();
    let o = patron(&["tune", "--resume", dir, "--backend", "ndarray", "--quiet"]);
    assert_ok(&o);
    assert!(stderr(&o).contains("resuming"), "{}", stderr(&o));
    let figures = |dir: &Path| {
        let (header, rows) = leaderboard(dir);
        let last = column(&header, "valid_macro_f1");
        rows.into_iter()
            .map(|r| r[..=last].to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(figures(&stopped), figures(&whole));
    assert_eq!(figures(&whole).len(), 3);

    // A resume takes the saved search as it is: no new keys or config; and it needs one.
    let o = patron(&["tune", "--resume", dir, "--config", TELCO]);
    assert_eq!(o.status.code(), Some(2));
    let o = patron(&["tune", "--resume", whole.join("trial-01").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("has no search.json"), "{}", stderr(&o));

    // A base config edited since the search started is refused, before anything else is
    // read from it (a backend choice reads its model kind).
    let config = tmp.path().join("telco.toml");
    std::fs::copy(TELCO, &config).unwrap();
    let edited = tmp.path().join("edited");
    let o = patron(&[
        "tune",
        "--config",
        config.to_str().unwrap(),
        "--backend",
        "ndarray",
        "--quiet",
        "--output-dir",
        edited.to_str().unwrap(),
        "--set",
        "train.epochs=1",
        "--search",
        "train.seed=1",
    ]);
    assert_ok(&o);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\nnot toml\n");
    std::fs::write(&config, text).unwrap();
    let o = patron(&["tune", "--resume", edited.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("changed since the search started"),
        "{}",
        stderr(&o)
    );
}

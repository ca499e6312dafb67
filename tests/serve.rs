//! `patron serve` over loopback: answers equal `patron predict` on the same rows (JSON rows,
//! CSV bodies and texts), every error is JSON with the right status, reload swaps runs and
//! refuses a damaged one, and concurrent clients get their own answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{assert_ok, predict_on, read_csv, train_on};

/// A running `patron serve` on a free loopback port, stopped when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--backend", "flex"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("patron serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("http://")
            .unwrap_or_else(|| {
                let mut err = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("no address on stdout: {line:?}; stderr: {err}")
            })
            .to_string();
        Server { child, address }
    }

    /// Send one request; (status, body).
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let (status, text) = self.send("POST", path, &[], body.to_string().as_bytes());
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `n` data rows of a CSV as JSON objects, numbers sent as numbers.
fn json_rows(csv: &str, n: usize) -> Vec<serde_json::Value> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .take(n)
        .map(|line| {
            let mut row = serde_json::Map::new();
            for (k, v) in header.iter().zip(line.split(',')) {
                let value = match v.parse::<f64>() {
                    Ok(x) => serde_json::json!(x),
                    Err(_) => serde_json::json!(v),
                };
                row.insert(k.to_string(), value);
            }
            serde_json::Value::Object(row)
        })
        .collect()
}

/// `patron predict` of a CSV file on flex: its header and rows.
fn predict_csv(run: &Path, input: &Path, extra: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = input.with_extension("scored.csv");
    assert_ok(&predict_on(run, input, &out, "flex", extra));
    read_csv(&out)
}

/// Each answer object agrees with the predict row cell by cell (numbers to 1e-6).
fn same_as_predict(answer: &serde_json::Value, header: &[String], rows: &[Vec<String>]) {
    let predictions = answer["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), rows.len());
    for (p, row) in predictions.iter().zip(rows) {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        let mut sorted_header: Vec<&String> = header.iter().collect();
        sorted_header.sort();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(sorted_keys, sorted_header, "the columns predict writes");
        for (name, cell) in header.iter().zip(row) {
            let value = &p[name];
            match value {
                serde_json::Value::Number(n) => {
                    let x = n.as_f64().unwrap();
                    let y: f64 = cell.parse().unwrap();
                    assert!((x - y).abs() < 2e-6, "{name}: {x} vs {y}");
                }
                serde_json::Value::String(s) => assert_eq!(s, cell, "{name}"),
                serde_json::Value::Null => assert_eq!(cell, "", "{name}"),
                other => panic!("{name}: {other}"),
            }
        }
    }
}

#[test]
fn a_tabular_run_answers_as_predict_does_and_errors_are_json() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("bank"),
        &["train.epochs=2"],
    );
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let head: String = data.lines().take(21).map(|l| format!("{l}\n")).collect();
    let input = tmp.path().join("head.csv");
    std::fs::write(&input, &head).unwrap();
    let (header, rows) = predict_csv(&run, &input, &[]);
    let (reason_header, reason_rows) = predict_csv(&run, &input, &["--reasons", "2"]);

    let spec = format!("bank={}", run.display());
    let server = Server::start(&["--checkpoint", &spec, "--max-body-bytes", "200000"]);
    let body = serde_json::json!({ "rows": json_rows(&data, 20) });
    let (status, answer) = server.post_json("/v1/models/bank/predict", &body);
    assert_eq!(status, 200, "{answer}");
    same_as_predict(&answer, &header, &rows);
    // The same rows as CSV, and with reasons.
    let (status, text) = server.send(
        "POST",
        "/v1/models/bank/predict?reasons=2",
        &[("Content-Type", "text/csv")],
        head.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    same_as_predict(
        &serde_json::from_str(&text).unwrap(),
        &reason_header,
        &reason_rows,
    );

    // Models, health, metrics.
    let (status, text) = server.send("GET", "/v1/models", &[], b"");
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&text).unwrap();
    let bank = &models["models"][0];
    assert_eq!(
        (bank["name"].as_str(), bank["task"].as_str()),
        (Some("bank"), Some("binary"))
    );
    assert_eq!(bank["manifest_sha256"].as_str().unwrap().len(), 64);
    assert!(
        bank["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "age")
    );
    assert_eq!(server.send("GET", "/healthz", &[], b"").0, 200);
    assert_eq!(server.send("GET", "/readyz", &[], b"").0, 200);

    // Every error is JSON with its status.
    let mut missing = json_rows(&data, 1);
    missing[0].as_object_mut().unwrap().remove("age");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(&str, Vec<u8>, Headers, u16, &str)> = vec![
        (
            "/v1/models/nope/predict",
            b"{}".to_vec(),
            &[],
            404,
            "no model named \"nope\"",
        ),
        (
            "/v1/models/bank/predict",
            b"{\"rows\": [".to_vec(),
            &[],
            400,
            "not valid JSON",
        ),
        (
            "/v1/models/bank/predict",
            serde_json::json!({ "rows": missing })
                .to_string()
                .into_bytes(),
            &[],
            400,
            "age",
        ),
        (
            "/v1/models/bank/predict",
            b"age,job\n30,\xff\x00\n".to_vec(),
            &[("Content-Type", "text/csv")],
            400,
            "UTF-8",
        ),
        (
            "/v1/models/bank/predict?reasons=x",
            b"{}".to_vec(),
            &[],
            400,
            "reasons=x",
        ),
        (
            "/v1/models/bank/predict",
            b"age,job\n".to_vec(),
            &[("Content-Type", "text/csv")],
            400,
            "no rows",
        ),
        (
            "/v1/models/bank/predict",
            vec![b' '; 300_000],
            &[],
            413,
            "--max-body-bytes",
        ),
        ("/v2/nothing", Vec::new(), &[], 404, "no route"),
    ];
    for (path, body, headers, want, message) in cases {
        let (status, text) = server.send("POST", path, headers, &body);
        assert_eq!(status, want, "{path}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(message),
            "{path}: {text}"
        );
        if message == "age" {
            assert_eq!(error["column"], "age", "{text}");
        }
    }
    let (_, metrics) = server.send("GET", "/metrics", &[], b"");
    assert!(metrics.contains("patron_requests_total 9\n"), "{metrics}");
    assert!(metrics.contains("patron_rows_total 40\n"), "{metrics}");
    assert!(
        metrics.contains("patron_errors_total{kind=\"bad_request\"} 5\n"),
        "{metrics}"
    );

    // Concurrent clients each get their own rows' answers.
    let rows = json_rows(&data, 40);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (server, rows, header, expected) = (&server, &rows, &header, &answer);
            scope.spawn(move || {
                for i in 0..10 {
                    let r = (t * 10 + i) % 20;
                    let body = serde_json::json!({ "rows": [rows[r].clone()] });
                    let (status, got) = server.post_json("/v1/models/bank/predict", &body);
                    assert_eq!(status, 200, "{got}");
                    let want = &expected["predictions"][r];
                    let (a, b) = (
                        got["predictions"][0]["score"].as_f64(),
                        want["score"].as_f64(),
                    );
                    // One row and twenty take different matrix kernels: equal to 1e-6.
                    assert!((a.unwrap() - b.unwrap()).abs() < 1e-6, "{header:?}");
                    assert_eq!(got["predictions"][0]["row"], 0);
                }
            });
        }
    });
}

#[test]
fn a_token_guards_every_route_and_reload_refuses_a_damaged_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/telco_churn.toml",
        &tmp.path().join("churn"),
        &["train.epochs=1"],
    );
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server = Server::start(&[
        "--checkpoint",
        run.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/telco_customer_churn_ibm_7043.csv"),
    )
    .unwrap();
    let body = serde_json::json!({ "rows": json_rows(&data, 3) }).to_string();
    let path = "/v1/models/churn/predict";
    let auth = [("Authorization", "Bearer s3cret")];
    assert_eq!(server.send("POST", path, &[], body.as_bytes()).0, 401);
    let wrong = [("Authorization", "Bearer s3creT")];
    assert_eq!(server.send("POST", path, &wrong, body.as_bytes()).0, 401);
    assert_eq!(server.send("GET", "/v1/models", &[], b"").0, 401);
    let (status, before) = server.send("POST", path, &auth, body.as_bytes());
    assert_eq!(status, 200, "{before}");

    // A damaged run is refused on reload, and the loaded one keeps answering the same.
    let preprocess = run.join("preprocess.json");
    let saved = std::fs::read(&preprocess).unwrap();
    std::fs::write(&preprocess, &saved[..saved.len() / 2]).unwrap();
    let (status, text) = server.send("POST", "/v1/admin/reload", &auth, b"");
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("preprocess.json"), "{text}");
    assert_eq!(
        server.send("POST", path, &auth, body.as_bytes()),
        (200, before.clone())
    );
    // SIGHUP too: refused, still serving.
    // SAFETY: kill sends a signal to our own child process.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.send("POST", path, &auth, body.as_bytes()),
        (200, before.clone())
    );
    // Repaired, it reloads.
    std::fs::write(&preprocess, &saved).unwrap();
    let (status, text) = server.send("POST", "/v1/admin/reload", &auth, b"");
    assert_eq!((status, text.as_str()), (200, "{\"reloaded\":1}"));
    assert_eq!(
        server.send("POST", path, &auth, body.as_bytes()),
        (200, before)
    );
}

#[test]
fn a_text_run_answers_texts_as_predict_reads_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/feedback_sentiment_uci.toml",
        &tmp.path().join("uci"),
        &["train.epochs=1"],
    );
    let texts = [
        "great phone, love it",
        "never again",
        "it is \"ok\", I guess",
    ];
    let mut csv = String::from("text\n");
    for t in texts {
        csv.push_str(&format!("\"{}\"\n", t.replace('"', "\"\"")));
    }
    let input = tmp.path().join("texts.csv");
    std::fs::write(&input, csv).unwrap();
    let (header, rows) = predict_csv(&run, &input, &[]);
    let server = Server::start(&["--checkpoint", &format!("uci={}", run.display())]);
    let (status, answer) = server.post_json(
        "/v1/models/uci/predict",
        &serde_json::json!({ "texts": texts }),
    );
    assert_eq!(status, 200, "{answer}");
    same_as_predict(&answer, &header, &rows);
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Run by hand (`cargo test --release --test serve -- --ignored`): 8 clients send one-row
/// and 100-row requests for PATRON_SOAK_SECONDS (default 600); the server's resident
/// memory after the first minute must not grow by more than a fifth.
#[test]
#[ignore]
fn memory_stays_flat_under_a_long_load() {
    let seconds: u64 = std::env::var("PATRON_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let tmp = tempfile::tempdir().unwrap();
    let run = train_on(
        "flex",
        "configs/bank_propensity.toml",
        &tmp.path().join("bank"),
        &["train.epochs=2"],
    );
    let data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/bank_marketing_uci_bank_4521.csv"),
    )
    .unwrap();
    let rows = json_rows(&data, 100);
    let one = serde_json::json!({ "rows": [rows[0].clone()] }).to_string();
    let hundred = serde_json::json!({ "rows": rows }).to_string();
    let server = Server::start(&["--checkpoint", &format!("bank={}", run.display())]);
    let pid = server.child.id();
    let started = std::time::Instant::now();
    let stop = Duration::from_secs(seconds);
    let requests = std::sync::atomic::AtomicU64::new(0);
    let mut samples = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (server, body, requests) =
                (&server, if t == 0 { &hundred } else { &one }, &requests);
            scope.spawn(move || {
                while started.elapsed() < stop {
                    let (status, _) =
                        server.send("POST", "/v1/models/bank/predict", &[], body.as_bytes());
                    assert_eq!(status, 200);
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        while started.elapsed() < stop {
            std::thread::sleep(Duration::from_secs(10).min(stop));
            samples.push((started.elapsed().as_secs(), rss_kib(pid)));
        }
    });
    let total = requests.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{total} requests in {seconds} s; RSS (s, KiB): {samples:?}");
    let warm = samples
        .iter()
        .find(|(t, _)| *t >= 60.min(seconds / 2))
        .map_or(samples[0].1, |s| s.1);
    let last = samples.last().unwrap().1;
    assert!(last * 5 <= warm * 6, "RSS grew from {warm} to {last} KiB");
}

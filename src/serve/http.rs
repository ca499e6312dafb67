//! The HTTP side of `patron serve`, on axum over tokio: routes, limits, the bearer token,
//! Prometheus metrics, reload on SIGHUP, and graceful shutdown. Scoring runs on the
//! compute pool (rayon's, which the CPU backends use), never on the async threads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use burn::tensor::Device;

use crate::error::{PatronError, Result};
use crate::serve::{
    BadRequest, Batching, Body, MAX_REASONS, Registry, answer, encode, request_table, row_estimate,
};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port, printed at start).
    pub bind: SocketAddr,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Rows being scored or waiting, past which new requests get 503.
    pub max_queue_rows: usize,
    /// Longest a request may wait for its scores.
    pub timeout: Duration,
    /// The bearer token requests must carry (`None`: no token, no admin routes).
    pub token: Option<String>,
    /// How concurrent requests are gathered into one scoring call.
    pub batching: Batching,
}

/// Upper bounds of the request-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the rows-per-request histogram.
const ROW_BUCKETS: [f64; 8] = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0];

/// A histogram with fixed buckets, in the Prometheus text format.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of the observations, in millionths (atomics hold integers).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            out.push_str(&format!(
                "{name}_bucket{{le=\"{bound}\"}} {}\n",
                count.load(Ordering::Relaxed)
            ));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_sum {sum}\n{name}_count {count}\n"));
    }
}

/// Kinds of failed requests, as `patron_errors_total{kind}` counts them.
const ERROR_KINDS: [&str; 7] = [
    "bad_request",
    "unauthorized",
    "not_found",
    "too_large",
    "overloaded",
    "timeout",
    "internal",
];

/// The server's Prometheus metrics.
struct Metrics {
    requests: AtomicU64,
    rows: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    duration: Histogram,
    batch_rows: Histogram,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            requests: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            errors: Default::default(),
            duration: Histogram::new(&DURATION_BUCKETS),
            batch_rows: Histogram::new(&ROW_BUCKETS),
        }
    }

    fn error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            &mut out,
            "patron_requests_total",
            "Scoring requests received.",
            self.requests.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "patron_rows_total",
            "Rows scored.",
            self.rows.load(Ordering::Relaxed),
        );
        out.push_str("# HELP patron_errors_total Failed requests by kind.\n# TYPE patron_errors_total counter\n");
        for (kind, count) in ERROR_KINDS.iter().zip(&self.errors) {
            out.push_str(&format!(
                "patron_errors_total{{kind=\"{kind}\"}} {}\n",
                count.load(Ordering::Relaxed)
            ));
        }
        self.duration.render(
            "patron_request_duration_seconds",
            "Time from a scoring request's arrival to its answer.",
            &mut out,
        );
        self.batch_rows
            .render("patron_batch_rows", "Rows per scoring call.", &mut out);
        out
    }
}

/// What every handler shares.
struct Shared {
    registry: RwLock<Arc<Registry>>,
    specs: Vec<(String, PathBuf)>,
    device: Device,
    options: ServeOptions,
    metrics: Metrics,
    /// Rows being scored or waiting for the compute pool.
    queued_rows: AtomicUsize,
}

type AppState = Arc<Shared>;

/// A JSON error answer.
fn error(status: StatusCode, bad: BadRequest) -> Response {
    let mut body = serde_json::json!({ "error": bad.error });
    if let Some(row) = bad.row {
        body["row"] = row.into();
    }
    if let Some(column) = bad.column {
        body["column"] = column.into();
    }
    (status, json_headers(), body.to_string()).into_response()
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )]
}

/// The status of a library error: bad input is the client's (400), the rest ours (500).
fn status_of(e: &PatronError) -> (StatusCode, &'static str) {
    match e {
        PatronError::Config { .. } | PatronError::Data { .. } | PatronError::Usage(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, &b) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

/// Whether the request carries the configured bearer token (always, without one).
fn authorized(state: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &state.options.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    same_token(given.as_bytes(), token.as_bytes())
}

fn unauthorized(state: &Shared) -> Response {
    state.metrics.error("unauthorized");
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        BadRequest::new("missing or wrong bearer token (Authorization: Bearer TOKEN)"),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Run `work` on the compute pool and wait for it without blocking an async thread.
async fn on_compute_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, tokio::sync::oneshot::error::RecvError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(work());
    });
    rx.await
}

/// `reasons=K` from a query string (0 without it).
fn reasons_of(query: Option<&str>) -> std::result::Result<usize, BadRequest> {
    let mut reasons = 0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("reasons", k)) => {
                reasons = k
                    .parse()
                    .ok()
                    .filter(|&k| k <= MAX_REASONS)
                    .ok_or_else(|| {
                        BadRequest::new(format!(
                            "reasons={k}: give a whole number from 0 to {MAX_REASONS}"
                        ))
                    })?;
            }
            _ => {
                return Err(BadRequest::new(format!(
                    "unknown query parameter {pair:?}; the only one is reasons=K"
                )));
            }
        }
    }
    Ok(reasons)
}

async fn predict(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let started = Instant::now();
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let response = predict_inner(&state, name, query, request).await;
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn predict_inner(
    state: &AppState,
    name: String,
    query: Option<String>,
    request: Request,
) -> Response {
    if !authorized(state, request.headers()) {
        return unauthorized(state);
    }
    let registry = state
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Some(model) = registry.models.get(&name).cloned() else {
        state.metrics.error("not_found");
        let known: Vec<&str> = registry.models.keys().map(String::as_str).collect();
        return error(
            StatusCode::NOT_FOUND,
            BadRequest::new(format!(
                "no model named {name:?}; this server has {}",
                known.join(", ")
            )),
        );
    };
    let reasons = match reasons_of(query.as_deref()) {
        Ok(reasons) => reasons,
        Err(bad) => {
            state.metrics.error("bad_request");
            return error(StatusCode::BAD_REQUEST, bad);
        }
    };
    let csv = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let limit = state.options.max_body_bytes;
    let bytes: Bytes = match to_bytes(request.into_body(), limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            state.metrics.error("too_large");
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                BadRequest::new(format!(
                    "the body is larger than {limit} bytes (--max-body-bytes); send fewer rows per request"
                )),
            );
        }
    };
    // Rows are counted once the body is read: a cheap upper bound before parsing.
    let estimate = row_estimate(&bytes, csv);
    let queued = state.queued_rows.fetch_add(estimate, Ordering::SeqCst);
    // An empty queue takes any request (its size is bounded by --max-body-bytes), so
    // one larger than the queue limit is not refused forever.
    if queued > 0 && queued + estimate > state.options.max_queue_rows {
        state.queued_rows.fetch_sub(estimate, Ordering::SeqCst);
        state.metrics.error("overloaded");
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            BadRequest::new("the scoring queue is full (--max-queue-rows); retry shortly"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    type Failure = (StatusCode, &'static str, BadRequest);
    let library = |e: PatronError| -> Failure {
        let (status, kind) = status_of(&e);
        (status, kind, BadRequest::from(e))
    };
    let lost = || -> Failure {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            BadRequest::new("scoring stopped before it answered"),
        )
    };
    // Read and encode on the compute pool, score with the other waiting requests in one
    // call, then build the answer (and its reasons) on the compute pool again.
    let scoring = async {
        let read = {
            let model = model.clone();
            on_compute_pool(move || -> std::result::Result<_, Failure> {
                let body = if csv {
                    Body::Csv(&bytes)
                } else {
                    Body::Json(&bytes)
                };
                let table = request_table(&model, body)
                    .map_err(|b| (StatusCode::BAD_REQUEST, "bad_request", b))?;
                let encoded = encode(&model, &table).map_err(library)?;
                Ok((table, encoded))
            })
        };
        let (table, encoded) = read.await.map_err(|_| lost())??;
        let (encoded, logits) = model.batcher.submit(encoded).await.map_err(|_| lost())?;
        let logits = logits.map_err(|e| library(PatronError::Internal(e)))?;
        let rows = table.height();
        let value = on_compute_pool(move || answer(&model, &table, &encoded, logits, reasons))
            .await
            .map_err(|_| lost())?
            .map_err(library)?;
        Ok::<_, Failure>((value, rows))
    };
    let outcome = tokio::time::timeout(state.options.timeout, scoring).await;
    state.queued_rows.fetch_sub(estimate, Ordering::SeqCst);
    match outcome {
        Err(_) => {
            state.metrics.error("timeout");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                BadRequest::new(format!(
                    "scoring took longer than {} s; send fewer rows per request",
                    state.options.timeout.as_secs_f64()
                )),
            )
        }
        Ok(Err((status, kind, bad))) => {
            state.metrics.error(kind);
            error(status, bad)
        }
        Ok(Ok((value, rows))) => {
            state.metrics.rows.fetch_add(rows as u64, Ordering::Relaxed);
            state.metrics.batch_rows.observe(rows as f64);
            (StatusCode::OK, json_headers(), value).into_response()
        }
    }
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    let registry = state
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    (
        StatusCode::OK,
        json_headers(),
        registry.describe().to_string(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let loaded = state
        .registry
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .models
        .len();
    (StatusCode::OK, format!("ok: {loaded} models\n")).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Load the runs again, verified, and swap them in at once; on any error the old ones
/// keep serving and the error is returned.
async fn reload(state: &AppState) -> Result<usize> {
    let (specs, device) = (state.specs.clone(), state.device.clone());
    let batching = state.options.batching;
    let loaded = on_compute_pool(move || Registry::load(&specs, &device, batching))
        .await
        .map_err(|_| PatronError::Internal("reloading stopped before it finished".into()))
        .and_then(|loaded| loaded)
        .inspect_err(|e| eprintln!("reload refused, the loaded runs keep serving: {e}"))?;
    let count = loaded.models.len();
    *state.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
    Ok(count)
}

async fn admin_reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized(&state);
    }
    match reload(&state).await {
        Ok(count) => (
            StatusCode::OK,
            json_headers(),
            serde_json::json!({ "reloaded": count }).to_string(),
        )
            .into_response(),
        Err(e) => {
            let (status, kind) = status_of(&e);
            state.metrics.error(kind);
            error(status, BadRequest::from(e))
        }
    }
}

/// Answer 404 in JSON for any other path.
async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        BadRequest::new(format!(
            "no route {} {}; see GET /v1/models and POST /v1/models/NAME/predict",
            request.method(),
            request.uri().path()
        )),
    )
}

/// Serve `specs` (name, run directory) until SIGTERM or Ctrl-C, reloading on SIGHUP.
/// `listening` is called with the bound address once requests are accepted.
pub fn serve(
    specs: Vec<(String, PathBuf)>,
    device: Device,
    options: ServeOptions,
    listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    // Build the compute pool as every other command does (its stack size), before the
    // first request uses it.
    crate::backend::on_compute_pool(|| ());
    let registry = Registry::load(&specs, &device, options.batching)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| PatronError::Internal(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .map_err(|e| PatronError::Usage(format!("cannot listen on {}: {e}", options.bind)))?;
        let address = listener
            .local_addr()
            .map_err(|e| PatronError::Internal(format!("reading the bound address: {e}")))?;
        let admin = options.token.is_some();
        let state: AppState = Arc::new(Shared {
            registry: RwLock::new(Arc::new(registry)),
            specs,
            device,
            options,
            metrics: Metrics::new(),
            queued_rows: AtomicUsize::new(0),
        });
        let mut app = Router::new()
            .route("/v1/models/{name}/predict", post(predict))
            .route("/v1/models", get(models))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics));
        if admin {
            app = app.route("/v1/admin/reload", post(admin_reload));
        }
        let app = app.fallback(not_found).with_state(state.clone());
        tokio::spawn(reload_on_hangup(state));
        listening(address);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| PatronError::Internal(format!("serving: {e}")))
    })
}

/// Reload the runs on every SIGHUP.
async fn reload_on_hangup(state: AppState) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        if let Ok(count) = reload(&state).await {
            eprintln!("reloaded {count} runs");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C; in-flight requests then finish.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"s3cret!", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
        assert!(!same_token(b"S3cret", b"s3cret"));
    }

    #[test]
    fn the_query_takes_reasons_only() {
        assert_eq!(reasons_of(None), Ok(0));
        assert_eq!(reasons_of(Some("reasons=3")), Ok(3));
        assert!(reasons_of(Some("reasons=x")).is_err());
        assert!(reasons_of(Some("reasons=99")).is_err());
        assert!(reasons_of(Some("k=1")).is_err());
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::new(&ROW_BUCKETS);
        h.observe(1.0);
        h.observe(100.0);
        let mut out = String::new();
        h.render("rows", "Rows.", &mut out);
        assert!(out.contains("rows_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("rows_bucket{le=\"256\"} 2\n"), "{out}");
        assert!(out.contains("rows_bucket{le=\"+Inf\"} 2\nrows_sum 101\nrows_count 2\n"));
    }
}

//! `report.html`: one self-contained page (inline SVG, inline CSS, no scripts or fetched
//! fonts) that a marketing analyst can open offline.

use std::fmt::Write as _;

use crate::error::{PatronError, Result};
use crate::report::charts::{Axes, Series, line_chart, padded_range, palette};
use crate::run::history::EpochRow;
use crate::score::drift::{DriftReport, MAJOR_FROM, STABLE_BELOW};
use crate::score::explain::TextExplanations;
use crate::score::importance::{FeatureImportance, REPEATS};
use crate::task::CrossValidation;
use crate::task::binary::BinaryReport;
use crate::task::metrics::{ECE_BINS, deciles, pr_points, reliability, roc_points};
use crate::task::multiclass::MulticlassReport;
use crate::task::regression::{RegressionReport, by_prediction, decile_means};

/// Bootstrap resamples behind the confidence intervals (seeded, so reports reproduce).
const BOOTSTRAP_RESAMPLES: usize = 200;
const BOOTSTRAP_SEED: u64 = 42;

/// Everything one report page shows.
pub struct ReportPage<'a> {
    /// Page title.
    pub title: String,
    /// Header facts (run name, model, data, rows, backend, time, best epoch, version).
    pub facts: Vec<(String, String)>,
    /// Calibrated scores of the evaluated rows (multiclass: class probabilities,
    /// `[rows * classes]`).
    pub probs: &'a [f64],
    /// Scores before calibration.
    pub uncalibrated: &'a [f64],
    /// Class indices of the evaluated rows (0/1 for two classes).
    pub labels: &'a [f32],
    /// Per-epoch training history (empty for `evaluate`).
    pub history: &'a [EpochRow],
    /// Permutation importance on the validation split (empty for `evaluate`).
    pub importance: &'a [FeatureImportance],
    /// Text runs: phrases pushing toward each class and confident mistakes.
    pub explanations: Option<&'a TextExplanations>,
}

/// Features listed in the importance table.
const TOP_FEATURES: usize = 20;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn chart(axes: &Axes, series: &[Series]) -> Result<String> {
    line_chart(axes, series).map_err(|e| PatronError::Internal(format!("drawing a chart: {e}")))
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555;font-size:.9em}#summary td{text-align:left}";

fn page_head(page: &ReportPage) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>",
        escape(&page.title),
        escape(&page.title)
    );
    h.push_str("<section id=\"summary\"><table>");
    for (k, v) in &page.facts {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    h
}

/// Render the page of a multiclass report: metrics with bootstrap intervals, per-class
/// table and bars, the confusion heatmap, explanations and training curves.
pub fn render_multiclass(r: &MulticlassReport, page: &ReportPage) -> Result<String> {
    let mut h = page_head(page);
    let _ = writeln!(
        h,
        "<tr><th>evaluated rows</th><td>{} ({} classes)</td></tr></table></section>",
        r.n,
        r.labels.len()
    );
    h.push_str(&multiclass_metrics_section(r, page));
    h.push_str(&per_class_sections(r)?);
    h.push_str(&multiclass_segments_section(r));
    h.push_str(&cv_section(r.cv.as_ref()));
    h.push_str(&importance_section(
        page.importance,
        "drop in validation ROC AUC",
        CLASSIFICATION_IMPORTANCE,
    ));
    h.push_str(&explanations_section(page.explanations, true));
    h.push_str(&training_section(page.history, &CLASSIFICATION_CURVES)?);
    h.push_str("</body></html>\n");
    Ok(h)
}

/// The multiclass metrics with their 95 % bootstrap intervals, and the decision offsets.
fn multiclass_metrics_section(r: &MulticlassReport, page: &ReportPage) -> String {
    let k = r.labels.len();
    let mut h = String::new();
    let ci = crate::task::metrics::multiclass_bootstrap(
        page.probs,
        page.labels,
        k,
        &r.class_offsets,
        BOOTSTRAP_RESAMPLES,
        BOOTSTRAP_SEED,
    );
    h.push_str("<section id=\"metrics\"><h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>95 % interval</th></tr>");
    let m = &r.metrics;
    for (key, name, value) in [
        ("accuracy", "accuracy", m.accuracy),
        ("macro_f1", "macro F1", m.macro_f1),
        ("weighted_f1", "weighted F1", m.weighted_f1),
        ("log_loss", "log loss", m.log_loss),
    ] {
        let interval = ci
            .get(key)
            .map_or("-".to_string(), |(lo, hi)| format!("{lo:.4} to {hi:.4}"));
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{value:.4}</td><td>{interval}</td></tr>"
        );
    }
    let _ = writeln!(
        h,
        "</table><p class=\"note\">Intervals: {BOOTSTRAP_RESAMPLES} bootstrap resamples of the evaluated rows (seed {BOOTSTRAP_SEED}). Each row is predicted as the class with the largest log-probability plus its offset ({}), offsets chosen for the best macro-F1 on the validation split.</p></section>",
        r.labels
            .iter()
            .zip(&r.class_offsets)
            .map(|(l, o)| format!("{} {o:+.2}", escape(l)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    h
}

/// Precision, recall and F1 of each class (table and bars), then the confusion heatmap.
fn per_class_sections(r: &MulticlassReport) -> Result<String> {
    let mut h = String::new();
    h.push_str("<section id=\"per-class\"><h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
    let mut bars: [Vec<f64>; 3] = Default::default();
    for label in &r.labels {
        if let Some(c) = r.per_class.get(label) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                escape(label),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
            bars[0].push(c.precision);
            bars[1].push(c.recall);
            bars[2].push(c.f1);
        }
    }
    let [precision, recall, f1] = bars;
    let bars = crate::report::charts::grouped_bars(
        "Precision, recall and F1 per class",
        ("class", "score"),
        &r.labels,
        &[
            ("precision", precision, palette::MODEL),
            ("recall", recall, palette::OTHER),
            ("F1", f1, palette::THIRD),
        ],
    )
    .map_err(|e| PatronError::Internal(format!("drawing a chart: {e}")))?;
    let heat = crate::report::charts::heatmap("Confusion matrix", &r.labels, &r.confusion_matrix)
        .map_err(|e| PatronError::Internal(format!("drawing a chart: {e}")))?;
    let _ = writeln!(
        h,
        "</table><div class=\"charts\"><div id=\"class-bars\">{bars}</div></div></section>\n<section id=\"confusion\"><h2>Confusion matrix</h2><div class=\"charts\"><div id=\"heatmap\">{heat}</div></div><p class=\"note\">Rows are the true classes, columns the predicted ones; the shade is the share of the row.</p></section>"
    );
    Ok(h)
}

/// Accuracy and macro-F1 per segment value (empty without `report.segments`).
fn multiclass_segments_section(r: &MulticlassReport) -> String {
    segments_html(
        &r.segments,
        "<th>value</th><th>rows</th><th>accuracy</th><th>macro F1</th>",
        |s| {
            format!(
                "<td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td>",
                escape(&s.value),
                s.n,
                s.accuracy,
                s.macro_f1
            )
        },
        "Where accuracy or macro-F1 is low, the model is weak for that segment (a class missing from a segment counts as F1 0 there).",
    )
}

/// A cross-validated run's figures per fold with their mean and spread (empty for one
/// model).
fn cv_section(cv: Option<&CrossValidation>) -> String {
    let Some(cv) = cv else {
        return String::new();
    };
    let mut h = String::from(
        "<section id=\"cv\"><h2>Cross-validation</h2><table><tr><th>metric</th><th>mean</th><th>std</th>",
    );
    for k in 1..=cv.folds {
        let _ = write!(h, "<th>fold {k}</th>");
    }
    h.push_str("</tr>");
    for (name, f) in &cv.metrics {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td>",
            escape(name),
            f.mean,
            f.std
        );
        for v in &f.per_fold {
            let _ = write!(h, "<td>{v:.4}</td>");
        }
        h.push_str("</tr>");
    }
    let _ = writeln!(
        h,
        "</table><p class=\"note\">Each fold's model at its best epoch, on the fold it did not train on. The run scores with the ensemble of the {} fold models (their probabilities averaged; a regression's predictions); calibration and the decision threshold are fitted on every training row's out-of-fold score (oof_predictions.csv).</p></section>",
        cv.folds
    );
    h
}

/// The segments section of either page: a table per column, `header` then one `row` per
/// value, then `note` (empty without `report.segments`).
fn segments_html<S>(
    segments: &std::collections::BTreeMap<String, Vec<S>>,
    header: &str,
    row: impl Fn(&S) -> String,
    note: &str,
) -> String {
    let mut h = String::new();
    if segments.is_empty() {
        return h;
    }
    h.push_str("<section id=\"segments\"><h2>Segments</h2>");
    for (column, rows) in segments {
        let _ = write!(h, "<h3>{}</h3><table><tr>{header}</tr>", escape(column));
        for s in rows {
            let _ = write!(h, "<tr>{}</tr>", row(s));
        }
        h.push_str("</table>");
    }
    let _ = writeln!(h, "<p class=\"note\">{note}</p></section>");
    h
}

/// What a text model reads: phrases per class and the most confident mistakes.
fn explanations_section(explanations: Option<&TextExplanations>, multiclass: bool) -> String {
    let Some(e) = explanations else {
        return String::new();
    };
    let mut h = String::from(
        "<section id=\"explanations\"><h2>What the model reads</h2><div class=\"charts\">",
    );
    let unit = if multiclass {
        "log-odds against the other classes"
    } else {
        "log-odds"
    };
    for (class, phrases) in &e.top_phrases {
        let top = phrases.first().map_or(1.0, |p| p.push.max(1e-9));
        let _ = write!(
            h,
            "<div><h3>Toward <code>{}</code></h3><table><tr><th>phrase</th><th>push ({unit})</th><th>count</th><th></th></tr>",
            escape(class)
        );
        for p in phrases {
            let width = (p.push / top * 120.0).round();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:+.3}</td><td>{}</td><td style=\"text-align:left\"><span style=\"display:inline-block;height:10px;width:{width}px;background:#1f77b4\"></span></td></tr>",
                escape(&p.phrase),
                p.push,
                p.count
            );
        }
        h.push_str("</table></div>");
    }
    let _ = write!(
        h,
        "</div><p class=\"note\">Each frequent word, character or word pair of the evaluated texts is scored alone and compared with an empty text: the change in the class's {unit}.</p>"
    );
    h.push_str("<h3>Most confident mistakes</h3><table id=\"mistakes\"><tr><th>text</th><th>actual</th><th>predicted</th><th>probability</th></tr>");
    for m in &e.mistakes {
        let _ = write!(
            h,
            "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>",
            escape(&m.text),
            escape(&m.actual),
            escape(&m.predicted),
            m.probability
        );
    }
    h.push_str("</table></section>\n");
    h
}

/// Render the page for the numbers of `r`.
pub fn render(r: &BinaryReport, page: &ReportPage) -> Result<String> {
    let mut h = page_head(page);
    let _ = writeln!(
        h,
        "<tr><th>evaluated rows</th><td>{} ({} positive, class <code>{}</code>)</td></tr></table></section>",
        r.n,
        r.n_positive,
        escape(&r.positive)
    );
    h.push_str(&metrics_section(r, page));
    h.push_str(&charts_sections(r, page)?);
    h.push_str(&confusion_section(r));
    h.push_str(&segments_section(r));
    h.push_str(&cv_section(r.cv.as_ref()));
    h.push_str(&importance_section(
        page.importance,
        "drop in validation ROC AUC",
        CLASSIFICATION_IMPORTANCE,
    ));
    h.push_str(&explanations_section(page.explanations, false));
    h.push_str(&training_section(page.history, &CLASSIFICATION_CURVES)?);
    h.push_str("</body></html>\n");
    Ok(h)
}

/// The metrics with their 95 % bootstrap intervals.
fn metrics_section(r: &BinaryReport, page: &ReportPage) -> String {
    let mut h = String::new();
    let m = &r.metrics;
    let ci = crate::task::metrics::bootstrap_intervals(
        page.probs,
        page.uncalibrated,
        page.labels,
        m.threshold,
        BOOTSTRAP_RESAMPLES,
        BOOTSTRAP_SEED,
    );
    h.push_str("<section id=\"metrics\"><h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>95 % interval</th></tr>");
    let rows = [
        ("auc_roc", "ROC AUC", m.auc_roc),
        ("auc_pr", "PR AUC (average precision)", m.auc_pr),
        ("log_loss", "log loss", m.log_loss),
        ("brier", "Brier score", m.brier),
        ("accuracy", "accuracy", m.accuracy),
        ("precision", "precision", m.precision),
        ("recall", "recall", m.recall),
        ("f1", "F1", m.f1),
        ("lift_top_decile", "lift in the top 10 %", m.lift_top_decile),
        ("ece", "ECE (calibrated)", m.ece),
        (
            "ece_uncalibrated",
            "ECE (before calibration)",
            m.ece_uncalibrated,
        ),
    ];
    for (key, name, value) in rows {
        // The binned ECE is biased upward on resamples, so its percentile interval would
        // not even contain the estimate: no interval is shown for it.
        let interval = match ci.get(key) {
            Some((lo, hi)) if !key.starts_with("ece") => format!("{lo:.4} to {hi:.4}"),
            _ => "-".to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{value:.4}</td><td>{interval}</td></tr>"
        );
    }
    let _ = writeln!(
        h,
        "</table><p class=\"note\">Intervals: {BOOTSTRAP_RESAMPLES} bootstrap resamples of the evaluated rows (seed {BOOTSTRAP_SEED}). Decision threshold {:.4} on the calibrated score (<code>train.threshold</code>: fitted for the best F1 on the validation split, or the fixed cut the config sets).</p></section>",
        m.threshold
    );
    h
}

/// The ranking and calibration charts, then campaign planning (gains, lift, deciles).
fn charts_sections(r: &BinaryReport, page: &ReportPage) -> Result<String> {
    let mut h = String::new();
    let m = &r.metrics;
    // Curves.
    let unit = 0.0..1.0;
    let diagonal = || vec![(0.0, 0.0), (1.0, 1.0)];
    let roc = chart(
        &Axes {
            title: &format!("ROC curve (AUC {:.3})", m.auc_roc),
            x_label: "false positive rate",
            y_label: "true positive rate",
            x: unit.clone(),
            y: unit.clone(),
        },
        &[
            Series::new("model", roc_points(page.probs, page.labels), palette::MODEL),
            Series::new("chance", diagonal(), palette::REFERENCE),
        ],
    )?;
    let base = r.n_positive as f64 / r.n.max(1) as f64;
    let mut pr = pr_points(page.probs, page.labels);
    pr.insert(0, (0.0, pr.first().map_or(1.0, |p| p.1)));
    let pr = chart(
        &Axes {
            title: &format!("Precision-recall (AP {:.3})", m.auc_pr),
            x_label: "recall",
            y_label: "precision",
            x: unit.clone(),
            y: unit.clone(),
        },
        &[
            Series::new("model", pr, palette::MODEL),
            Series::new(
                "base rate",
                vec![(0.0, base), (1.0, base)],
                palette::REFERENCE,
            ),
        ],
    )?;
    let bins = |p: &[f64]| {
        reliability(p, page.labels, ECE_BINS)
            .into_iter()
            .map(|(x, y, _)| (x, y))
            .collect::<Vec<_>>()
    };
    let calibration = chart(
        &Axes {
            title: &format!(
                "Calibration (ECE {:.3}, before {:.3})",
                m.ece, m.ece_uncalibrated
            ),
            x_label: "mean predicted probability",
            y_label: "observed positive rate",
            x: unit.clone(),
            y: unit.clone(),
        },
        &[
            Series::new("calibrated", bins(page.probs), palette::MODEL),
            Series::new(
                "before calibration",
                bins(page.uncalibrated),
                palette::OTHER,
            ),
            Series::new("perfect", diagonal(), palette::REFERENCE),
        ],
    )?;
    let table = deciles(page.probs, page.labels);
    let mut gains = vec![(0.0, 0.0)];
    gains.extend(
        table
            .iter()
            .map(|d| (d.decile as f64 / 10.0, d.cumulative_share)),
    );
    let gains = chart(
        &Axes {
            title: "Cumulative gains",
            x_label: "share of customers contacted (by score)",
            y_label: "share of positives reached",
            x: unit.clone(),
            y: unit.clone(),
        },
        &[
            Series::new("model", gains, palette::MODEL),
            Series::new("random", diagonal(), palette::REFERENCE),
        ],
    )?;
    let lift_points: Vec<(f64, f64)> = table.iter().map(|d| (d.decile as f64, d.lift)).collect();
    let lift = chart(
        &Axes {
            title: "Lift by decile",
            x_label: "decile (1 = highest scores)",
            y_label: "lift over base rate",
            x: 0.5..10.5,
            y: padded_range(lift_points.iter().map(|p| p.1).chain([0.0, 1.0])),
        },
        &[
            Series::new("model", lift_points, palette::MODEL),
            Series::new("random", vec![(0.5, 1.0), (10.5, 1.0)], palette::REFERENCE),
        ],
    )?;
    let histogram = |positive: bool| {
        let mut counts = [0usize; 20];
        let mut total = 0usize;
        for (&p, &y) in page.probs.iter().zip(page.labels) {
            if (y > 0.5) == positive {
                counts[((p * 20.0) as usize).min(19)] += 1;
                total += 1;
            }
        }
        counts
            .iter()
            .enumerate()
            .flat_map(|(b, &c)| {
                let share = c as f64 / total.max(1) as f64;
                [(b as f64 / 20.0, share), ((b + 1) as f64 / 20.0, share)]
            })
            .collect::<Vec<_>>()
    };
    let (pos_hist, neg_hist) = (histogram(true), histogram(false));
    let scores = chart(
        &Axes {
            title: "Score distribution by class",
            x_label: "calibrated score",
            y_label: "share of the class",
            x: unit.clone(),
            y: padded_range(pos_hist.iter().chain(&neg_hist).map(|p| p.1).chain([0.0])),
        },
        &[
            Series::new(&format!("actual {}", r.positive), pos_hist, palette::MODEL),
            Series::new("actual negative", neg_hist, palette::OTHER),
        ],
    )?;
    let _ = writeln!(
        h,
        "<section id=\"curves\"><h2>Ranking and calibration</h2><div class=\"charts\"><div id=\"roc\">{roc}</div><div id=\"pr\">{pr}</div><div id=\"calibration\">{calibration}</div><div id=\"scores\">{scores}</div></div></section>\n\
         <section id=\"campaign\"><h2>Campaign planning</h2><div class=\"charts\"><div id=\"gains\">{gains}</div><div id=\"lift\">{lift}</div></div>"
    );

    // Decile table.
    h.push_str("<table id=\"deciles\"><tr><th>decile</th><th>customers</th><th>positives</th><th>response rate</th><th>lift</th><th>cumulative share of positives</th></tr>");
    for d in &table {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.2}</td><td>{:.1} %</td></tr>",
            d.decile,
            d.customers,
            d.positives,
            d.response_rate * 100.0,
            d.lift,
            d.cumulative_share * 100.0
        );
    }
    h.push_str("</table></section>\n");
    Ok(h)
}

/// The confusion matrix at the decision threshold.
fn confusion_section(r: &BinaryReport) -> String {
    let mut h = String::new();
    let m = &r.metrics;
    let [[tn, fp], [fn_, tp]] = r.confusion_matrix;
    let _ = writeln!(
        h,
        "<section id=\"confusion\"><h2>Confusion matrix at threshold {:.4}</h2><table><tr><th></th><th>predicted negative</th><th>predicted {}</th></tr>\
         <tr><th>actual negative</th><td>{tn}</td><td>{fp}</td></tr><tr><th>actual {}</th><td>{fn_}</td><td>{tp}</td></tr></table></section>",
        m.threshold,
        escape(&r.positive),
        escape(&r.positive)
    );
    h
}

/// Per-segment rates, scores and AUC (empty without `report.segments`).
fn segments_section(r: &BinaryReport) -> String {
    segments_html(
        &r.segments,
        "<th>value</th><th>rows</th><th>positives</th><th>positive rate</th><th>mean score</th><th>ROC AUC</th>",
        |s| {
            let auc = s.auc_roc.map_or("-".to_string(), |a| format!("{a:.3}"));
            format!(
                "<td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.3}</td><td>{auc}</td>",
                escape(&s.value),
                s.n,
                s.positives,
                100.0 * s.positives as f64 / s.n.max(1) as f64,
                s.mean_score
            )
        },
        "Where the mean score is far from the positive rate, or the AUC is low, the model is weak for that segment.",
    )
}

/// Training curves from the per-epoch history (empty when there is none).
/// What the training curves show besides the loss: the loss's name, a validation
/// column of `metrics.csv` and its name.
struct Curves {
    loss: &'static str,
    column: &'static str,
    name: &'static str,
}

/// What the importance of a classification run measures.
const CLASSIFICATION_IMPORTANCE: &str =
    "the fall in ROC AUC (for more than two classes, the mean one-vs-rest AUC)";

/// The curves of a classification run.
const CLASSIFICATION_CURVES: Curves = Curves {
    loss: "log loss",
    column: "valid_auc_roc",
    name: "ROC AUC",
};

fn training_section(history: &[EpochRow], curves: &Curves) -> Result<String> {
    let mut h = String::new();
    if !history.is_empty() {
        let epochs = history.len() as f64;
        let xs = 0.5..epochs + 0.5;
        let pick = |f: fn(&EpochRow) -> f64| {
            history
                .iter()
                .map(|e| (e.epoch as f64, f(e)))
                .collect::<Vec<_>>()
        };
        let (train, valid) = (pick(|e| e.train_loss), pick(|e| e.get("valid_loss")));
        let loss = chart(
            &Axes {
                title: "Loss",
                x_label: "epoch",
                y_label: curves.loss,
                x: xs.clone(),
                y: padded_range(train.iter().chain(&valid).map(|p| p.1)),
            },
            &[
                Series::new("train (weighted)", train, palette::MODEL),
                Series::new("validation", valid, palette::OTHER),
            ],
        )?;
        let auc: Vec<(f64, f64)> = history
            .iter()
            .map(|e| (e.epoch as f64, e.get(curves.column)))
            .collect();
        let title = format!("Validation {}", curves.name);
        let auc = chart(
            &Axes {
                title: &title,
                x_label: "epoch",
                y_label: curves.name,
                x: xs.clone(),
                y: padded_range(auc.iter().map(|p| p.1)),
            },
            &[Series::new("validation", auc, palette::THIRD)],
        )?;
        let lr = pick(|e| e.lr);
        let lr = chart(
            &Axes {
                title: "Learning rate",
                x_label: "epoch",
                y_label: "learning rate (end of epoch)",
                x: xs,
                y: padded_range(lr.iter().map(|p| p.1).chain([0.0])),
            },
            &[Series::new("AdamW", lr, palette::MODEL)],
        )?;
        let _ = writeln!(
            h,
            "<section id=\"training\"><h2>Training</h2><div class=\"charts\"><div>{loss}</div><div>{auc}</div><div>{lr}</div></div></section>"
        );
    }
    Ok(h)
}

/// Permutation importance: the top features with their spread over repeats.
/// `measure` heads the table column; `explained` says in the note what is measured.
fn importance_section(importance: &[FeatureImportance], measure: &str, explained: &str) -> String {
    let mut h = String::new();
    if !importance.is_empty() {
        let top = importance.iter().map(|f| f.auc_drop).fold(1e-9, f64::max);
        let _ = write!(
            h,
            "<section id=\"importance\"><h2>What drives the score</h2><table><tr><th>feature</th><th>{measure} when shuffled</th><th>spread (std)</th><th></th></tr>"
        );
        for f in importance.iter().take(TOP_FEATURES) {
            let width = (f.auc_drop.max(0.0) / top * 200.0).round();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td style=\"text-align:left\"><span style=\"display:inline-block;height:10px;width:{width}px;background:#1f77b4\"></span></td></tr>",
                escape(&f.feature),
                f.auc_drop,
                f.std
            );
        }
        let _ = writeln!(
            h,
            "</table><p class=\"note\">Permutation importance: each column's values are shuffled across the validation rows ({REPEATS} times) and {explained} is measured. Near zero or negative: the model does not rely on the column.</p></section>"
        );
    }
    h
}

/// Buckets drawn per column of the drift page (categories beyond them are in drift.json).
const DRIFT_BUCKETS: usize = 16;
/// Columns charted on the drift page, largest PSI first.
const DRIFT_CHARTS: usize = 6;

/// The drift page: what was compared (`facts`), every column's PSI, and the training and
/// new shares per bucket of the scores and of the columns that moved most.
pub fn render_drift(
    report: &DriftReport,
    title: &str,
    facts: &[(String, String)],
) -> Result<String> {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>",
        escape(title),
        escape(title)
    );
    h.push_str("<section id=\"summary\"><table>");
    for (k, v) in facts {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table></section>\n<section id=\"psi\"><h2>Population stability</h2><table><tr><th>column</th><th>PSI</th><th>reading</th><th>rows outside the training range</th></tr>");
    for d in std::iter::once(&report.score).chain(&report.features) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.name),
            d.psi,
            escape(&d.verdict),
            escape(&d.outside(report.rows))
        );
    }
    let _ = writeln!(
        h,
        "</table><p class=\"note\">PSI = sum over buckets of (new share - training share) x ln(new share / training share). Below {STABLE_BELOW}: stable; {STABLE_BELOW}-{MAJOR_FROM}: a moderate shift; above {MAJOR_FROM}: a major shift (retrain, or find out what changed upstream).</p></section>"
    );
    h.push_str("<section id=\"buckets\"><h2>Training and new data, bucket by bucket</h2><div class=\"charts\">");
    for d in std::iter::once(&report.score).chain(report.features.iter().take(DRIFT_CHARTS)) {
        let shown = d.buckets.len().min(DRIFT_BUCKETS);
        let svg = crate::report::charts::grouped_bars(
            &format!("{} (PSI {:.3})", d.name, d.psi),
            ("bucket", "share of rows"),
            &d.buckets[..shown],
            &[
                ("training", d.training[..shown].to_vec(), palette::OTHER),
                ("new", d.new[..shown].to_vec(), palette::MODEL),
            ],
        )
        .map_err(|e| PatronError::Internal(format!("drawing a chart: {e}")))?;
        let _ = write!(h, "<div>{svg}</div>");
    }
    h.push_str("</div></section>\n</body></html>\n");
    Ok(h)
}

/// Bins of the predicted-against-actual chart (equal row counts, by prediction).
const VALUE_BINS: usize = 20;

/// Render the page of a regression report: metrics, predicted against actual in bins,
/// residuals and the value-gains curve, the decile table, segments, importance and the
/// training curves.
pub fn render_regression(r: &RegressionReport, page: &ReportPage) -> Result<String> {
    let mut h = page_head(page);
    let _ = writeln!(
        h,
        "<tr><th>evaluated rows</th><td>{} (loss {}, target transform {})</td></tr></table></section>",
        r.n,
        escape(&r.loss),
        escape(&r.target_transform)
    );
    let m = &r.metrics;
    h.push_str(
        "<section id=\"metrics\"><h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>",
    );
    let share = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for (name, value) in [
        ("RMSE", format!("{:.4}", m.rmse)),
        ("MAE", format!("{:.4}", m.mae)),
        ("R²", format!("{:.4}", m.r2)),
        ("Spearman rank correlation", format!("{:.4}", m.spearman)),
        ("mean prediction", format!("{:.4}", m.mean_prediction)),
        ("mean target", format!("{:.4}", m.mean_target)),
        (
            "share of the total held by the top 10 % predicted",
            share(m.top10_share),
        ),
    ] {
        let _ = write!(h, "<tr><td>{name}</td><td>{value}</td></tr>");
    }
    h.push_str("</table></section>\n");
    // Each row's scores are its prediction, then its quantiles.
    let width = 1 + r.intervals.as_ref().map_or(0, |i| i.quantiles.len());
    let predictions: Vec<f64> = page.probs.iter().step_by(width).copied().collect();
    h.push_str(&regression_charts(&predictions, page.labels)?);
    h.push_str(&decile_table(r, &predictions, page.labels));
    if let Some(i) = &r.intervals {
        h.push_str("<section id=\"intervals\"><h2>Prediction intervals</h2><table><tr><th>quantile</th><th>share of rows at or below it</th></tr>");
        for (q, below) in i.quantiles.iter().zip(&i.below) {
            let _ = write!(h, "<tr><td>{q}</td><td>{below:.4}</td></tr>");
        }
        let _ = writeln!(
            h,
            "</table><p class=\"note\">{:.1} % of the rows fall between the lowest and the highest predicted quantile (aimed at {:.1} %); the interval is {:.4} wide on average.</p></section>",
            i.coverage * 100.0,
            (i.quantiles[i.quantiles.len() - 1] - i.quantiles[0]) * 100.0,
            i.mean_width
        );
    }
    h.push_str(&segments_html(
        &r.segments,
        "<th>value</th><th>rows</th><th>mean target</th><th>mean prediction</th><th>RMSE</th>",
        |s| {
            format!(
                "<td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>",
                escape(&s.value),
                s.n,
                s.mean_target,
                s.mean_prediction,
                s.rmse
            )
        },
        "Where the mean prediction is far from the mean target, the model is biased for that segment.",
    ));
    h.push_str(&cv_section(r.cv.as_ref()));
    h.push_str(&importance_section(
        page.importance,
        "rise in validation RMSE",
        "the rise in RMSE (in the target's units)",
    ));
    h.push_str(&training_section(
        page.history,
        &Curves {
            loss: "loss",
            column: "valid_rmse",
            name: "RMSE",
        },
    )?);
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Predicted against actual (means per bin, so it reads the same at 100k rows), the
/// residuals per bin (mean and the 10th / 90th percentiles) and the value-gains curve.
fn regression_charts(p: &[f64], y: &[f32]) -> Result<String> {
    let mut order = by_prediction(p);
    order.reverse();
    let n = order.len();
    let bins: Vec<&[usize]> = (0..VALUE_BINS)
        .map(|b| &order[b * n / VALUE_BINS..(b + 1) * n / VALUE_BINS])
        .filter(|rows| !rows.is_empty())
        .collect();
    let mean = |rows: &[usize], f: &dyn Fn(usize) -> f64| {
        rows.iter().map(|&r| f(r)).sum::<f64>() / rows.len() as f64
    };
    let actual = |r: usize| f64::from(y[r]);
    let means: Vec<(f64, f64)> = bins
        .iter()
        .map(|rows| (mean(rows, &|r| p[r]), mean(rows, &actual)))
        .collect();
    let range = padded_range(means.iter().flat_map(|&(a, b)| [a, b]));
    let diagonal = vec![(range.start, range.start), (range.end, range.end)];
    let fit = chart(
        &Axes {
            title: "Mean actual against mean predicted",
            x_label: "mean prediction (bins of equal rows)",
            y_label: "mean actual",
            x: range.clone(),
            y: range,
        },
        &[
            Series::new("model", means.clone(), palette::MODEL),
            Series::new("perfect", diagonal, palette::REFERENCE),
        ],
    )?;
    let percentile = |values: &mut Vec<f64>, q: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() - 1) as f64 * q).round() as usize]
    };
    let mut residuals = [Vec::new(), Vec::new(), Vec::new()];
    for (rows, &(x, _)) in bins.iter().zip(&means) {
        let mut r: Vec<f64> = rows.iter().map(|&i| actual(i) - p[i]).collect();
        residuals[0].push((x, percentile(&mut r, 0.1)));
        residuals[1].push((x, r.iter().sum::<f64>() / r.len() as f64));
        residuals[2].push((x, percentile(&mut r, 0.9)));
    }
    let [low, middle, high] = residuals;
    let x = padded_range(means.iter().map(|m| m.0));
    let y_range = padded_range(low.iter().chain(&high).map(|q| q.1).chain([0.0]));
    let residual = chart(
        &Axes {
            title: "Residuals (actual - predicted)",
            x_label: "mean prediction (bins of equal rows)",
            y_label: "residual",
            x: x.clone(),
            y: y_range,
        },
        &[
            Series::new("90th percentile", high, palette::OTHER),
            Series::new("mean", middle, palette::MODEL),
            Series::new("10th percentile", low, palette::THIRD),
            Series::new(
                "zero",
                vec![(x.start, 0.0), (x.end, 0.0)],
                palette::REFERENCE,
            ),
        ],
    )?;
    let mut h = format!(
        "<section id=\"fit\"><h2>Predicted against actual</h2><div class=\"charts\"><div>{fit}</div><div>{residual}</div>"
    );
    let total: f64 = y.iter().map(|&v| f64::from(v)).sum();
    if total > 0.0 {
        // Cumulative share of the total target, rows taken from the highest prediction.
        let mut gains = vec![(0.0, 0.0)];
        let mut perfect = vec![(0.0, 0.0)];
        let mut ideal: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let (mut sum, mut best) = (0.0, 0.0);
        let step = (n / 200).max(1);
        for (i, &r) in by_prediction(p).iter().enumerate() {
            sum += actual(r);
            best += ideal[i];
            if (i + 1) % step == 0 || i + 1 == n {
                let x = (i + 1) as f64 / n as f64;
                gains.push((x, sum / total));
                perfect.push((x, best / total));
            }
        }
        let gains = chart(
            &Axes {
                title: "Value gains",
                x_label: "share of rows, highest prediction first",
                y_label: "share of the total target",
                x: 0.0..1.0,
                y: padded_range(gains.iter().chain(&perfect).map(|g| g.1).chain([0.0, 1.0])),
            },
            &[
                Series::new("model", gains, palette::MODEL),
                Series::new("perfect order", perfect, palette::THIRD),
                Series::new("random", vec![(0.0, 0.0), (1.0, 1.0)], palette::REFERENCE),
            ],
        )?;
        let _ = write!(h, "<div>{gains}</div>");
    }
    h.push_str("</div><p class=\"note\">Rows are binned by prediction into bins of equal size; each point is a bin's means. On the diagonal, predictions are right on average (calibrated). The value-gains curve is what a campaign budget is planned with: the share of the total target reached by contacting the top-scored rows first.</p></section>\n");
    Ok(h)
}

/// Mean prediction, mean target and share of the total per tenth of the rows by
/// prediction.
fn decile_table(r: &RegressionReport, predictions: &[f64], targets: &[f32]) -> String {
    let means = decile_means(predictions, targets);
    let mut h = String::from(
        "<section id=\"deciles\"><h2>By decile of prediction</h2><table><tr><th>decile (highest first)</th><th>mean prediction</th><th>mean target</th><th>share of the total</th></tr>",
    );
    for (d, (predicted, actual)) in means.iter().enumerate() {
        let share = r
            .decile_share
            .as_ref()
            .and_then(|s| s.get(d))
            .map_or("-".to_string(), |s| format!("{s:.4}"));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{predicted:.4}</td><td>{actual:.4}</td><td>{share}</td></tr>",
            d + 1
        );
    }
    h.push_str("</table></section>\n");
    h
}

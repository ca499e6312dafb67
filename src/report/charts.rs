//! SVG charts for `report.html`, drawn with plotters' SVG backend (no font files needed:
//! text is emitted as SVG text and laid out by the browser).

use plotters::prelude::*;

/// One line of a chart: legend name, points, colour.
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// (x, y) points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Line colour.
    pub color: RGBColor,
}

impl Series {
    /// A named series.
    pub fn new(name: &str, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Series {
            name: name.to_string(),
            points,
            color,
        }
    }
}

/// Colours used across the report.
pub mod palette {
    use plotters::style::RGBColor;
    /// Model curves and the positive class.
    pub const MODEL: RGBColor = RGBColor(31, 119, 180);
    /// The negative class and secondary curves.
    pub const OTHER: RGBColor = RGBColor(255, 127, 14);
    /// Reference lines (chance, perfect calibration).
    pub const REFERENCE: RGBColor = RGBColor(150, 150, 150);
    /// A third series.
    pub const THIRD: RGBColor = RGBColor(44, 160, 44);
}

/// Axis labels and ranges of a chart.
pub struct Axes<'a> {
    /// Chart title.
    pub title: &'a str,
    /// X axis label (with unit).
    pub x_label: &'a str,
    /// Y axis label (with unit).
    pub y_label: &'a str,
    /// X range.
    pub x: std::ops::Range<f64>,
    /// Y range.
    pub y: std::ops::Range<f64>,
}

/// A line chart with a legend, as an `<svg>` element.
pub fn line_chart(axes: &Axes, series: &[Series]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (460, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(axes.x.clone(), axes.y.clone())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(axes.x_label)
            .y_desc(axes.y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for s in series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The legend box of a chart, the same in every chart of the report.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| e.to_string())
}

/// The range of values padded by 5 %, or `0..1` when empty or flat.
pub fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || hi - lo < 1e-12 {
        let base = if lo.is_finite() { lo } else { 0.0 };
        return base - 0.5..base + 0.5;
    }
    let pad = (hi - lo) * 0.05;
    lo - pad..hi + pad
}

/// A confusion-matrix heatmap (`matrix[true][predicted]`), rows shaded by their share so
/// classes of different sizes read alike, with the count in each cell.
pub fn heatmap(title: &str, labels: &[String], matrix: &[Vec<u64>]) -> Result<String, String> {
    let k = labels.len().max(1);
    let mut svg = String::new();
    {
        let size = (180 + 70 * k as u32).min(900);
        let root = SVGBackend::with_string(&mut svg, (size + 40, size)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        // Segmented axes put each class name under the middle of its cell.
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(90)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        // Row 0 (the first class) is drawn at the top.
        let name = |v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) if *i < k => {
                labels[if flip { k - 1 - i } else { *i }].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&|v| name(v, false))
            .y_label_formatter(&|v| name(v, true))
            .x_desc("predicted class")
            .y_desc("true class")
            .draw()
            .map_err(|e| e.to_string())?;
        for (t, row) in matrix.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total as f64;
                let shade = (255.0 - 200.0 * share) as u8;
                let y = k - 1 - t;
                chart
                    .draw_series([Rectangle::new(
                        [
                            (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                        ],
                        RGBColor(shade, shade, 255).filled(),
                    )])
                    .map_err(|e| e.to_string())?;
                let color = if share > 0.6 { WHITE } else { BLACK };
                chart
                    .draw_series([Text::new(
                        format!("{count}"),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                        ("sans-serif", 14).into_font().color(&color),
                    )])
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Grouped bars: for each category (named on the x axis by `x_label`), one bar per series
/// (values in 0..1).
pub fn grouped_bars(
    title: &str,
    (x_label, y_label): (&str, &str),
    categories: &[String],
    series: &[(&str, Vec<f64>, RGBColor)],
) -> Result<String, String> {
    let groups = categories.len().max(1);
    let per = series.len().max(1);
    let slots = groups * (per + 1);
    let mut svg = String::new();
    {
        let width = (200 + 40 * slots as u32).clamp(460, 960);
        let root = SVGBackend::with_string(&mut svg, (width, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(56)
            .build_cartesian_2d(0..slots, 0.0..1.05)
            .map_err(|e| e.to_string())?;
        let label = |slot: &usize| {
            // The category name sits under the middle of its group.
            if slot % (per + 1) == per / 2 {
                categories
                    .get(slot / (per + 1))
                    .cloned()
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(slots)
            .x_label_formatter(&label)
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (j, (name, values, color)) in series.iter().enumerate() {
            let color = *color;
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    let x = g * (per + 1) + j;
                    Rectangle::new([(x, 0.0), (x + 1, v.clamp(0.0, 1.0))], color.filled())
                }))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

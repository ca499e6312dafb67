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
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
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

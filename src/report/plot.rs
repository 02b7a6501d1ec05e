//! The plot of an experiment's metrics per epoch: MRR and Recall at the cut-off, one line per model, baselines flat.

use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// One model's metrics after each epoch (means over its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSeries {
    pub label: String,
    /// `(epoch, recall, mrr)`.
    pub points: Vec<(u32, f64, f64)>,
    /// Epochs that begin a new phase of the model's plan (alternating or residual training), marked on the
    /// epoch axis in the model's colour.
    pub phase_starts: Vec<u32>,
}

/// The plotting library could not draw the plot.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PlotError(#[from] DrawingAreaErrorKind<std::io::Error>);

/// A baseline drawn as a dotted or dashed level: `(label, recall, mrr)`.
pub type Level = (String, f64, f64);

/// Pixels per legend entry; the legend column lists every line, so the plot grows with their number.
const LEGEND_ROW: u32 = 18;
const LEGEND_WIDTH: u32 = 260;

/// Okabe and Ito's colour-blind-safe palette, less its yellow, which is too pale on white. Models take it in
/// this order and baselines from the end, so that with a handful of models the two families share no colour.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
];

/// A baseline's stroke: dotted, dashed, long-dashed, in the order the baselines come. Every dash of a
/// baseline is shorter than any dash a model gets, so the two families never share a pattern.
const BASELINE_DASHES: [Dash; 3] = [Dash::Dashed { on: 2, off: 4 }, Dash::Dashed { on: 7, off: 4 }, Dash::Dashed { on: 12, off: 4 }];

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dash {
    Solid,
    /// Dashes `on` pixels long with gaps of `off` pixels.
    Dashed {
        on: u32,
        off: u32,
    },
}

/// The colour and stroke of one line, the same in both panels and the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LineStyle {
    colour: RGBColor,
    dash: Dash,
}

/// The styles of `models` model lines followed by `baselines` baseline levels. Models are solid while the
/// palette lasts, then go round it again with ever longer dashes; baselines are dotted or dashed. No two lines
/// share a style as long as there are fewer than 21 baselines (7 colours against 3 patterns).
fn line_styles(models: usize, baselines: usize) -> Vec<LineStyle> {
    let model = |k: usize| {
        let round = (k / PALETTE.len()) as u32;
        let dash = if round == 0 { Dash::Solid } else { Dash::Dashed { on: 12 + 6 * round, off: 3 } };
        LineStyle { colour: PALETTE[k % PALETTE.len()], dash }
    };
    let baseline =
        |k: usize| LineStyle { colour: PALETTE[PALETTE.len() - 1 - k % PALETTE.len()], dash: BASELINE_DASHES[k % BASELINE_DASHES.len()] };
    (0..models).map(model).chain((0..baselines).map(baseline)).collect()
}

/// Two panels (MRR left, Recall right) and a legend column, as an SVG document. Fails only on a plotting-library
/// error.
pub fn epochs_svg(series: &[EpochSeries], levels: &[Level], cutoff: u64, title: &str) -> Result<String, PlotError> {
    let mut svg = String::new();
    let entries = (series.len() + levels.len()) as u32;
    let styles = line_styles(series.len(), levels.len());
    let height = (80 + entries * LEGEND_ROW).max(520);
    {
        let root = SVGBackend::with_string(&mut svg, (1100 + LEGEND_WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let (plots, legend) = root.split_horizontally(1100);
        let (left, right) = plots.split_horizontally(550);
        let last_epoch = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).max().unwrap_or(1).max(2);
        for (area, name, pick) in [(&left, "MRR", 2usize), (&right, "Recall", 1usize)] {
            let value = |point: &(u32, f64, f64)| if pick == 1 { point.1 } else { point.2 };
            let level_value = |level: &Level| if pick == 1 { level.1 } else { level.2 };
            let all: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(value)).chain(levels.iter().map(level_value)).collect();
            let top = all.iter().copied().fold(0.0f64, f64::max);
            let bottom = all.iter().copied().fold(top, f64::min);
            let pad = ((top - bottom) * 0.08).max(0.005);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .caption(format!("{name}@{cutoff} per epoch"), ("sans-serif", 16))
                .build_cartesian_2d(1u32..last_epoch, (bottom - pad).max(0.0)..(top + pad))?;
            chart.configure_mesh().x_desc("epoch").y_desc(format!("{name}@{cutoff}")).y_label_formatter(&|v| format!("{v:.3}")).draw()?;
            let model_lines: Vec<Vec<(u32, f64)>> =
                series.iter().map(|line| line.points.iter().map(|p| (p.0, value(p))).collect()).collect();
            // A marker on every evaluated epoch: a model with one epoch has no line to draw, only its point.
            for (points, style) in model_lines.iter().zip(&styles) {
                chart.draw_series(points.iter().map(|&point| Circle::new(point, 3, style.colour.filled())))?;
            }
            // Where a model's plan moves to its next phase, a thin dotted line across the panel.
            let (low, high) = ((bottom - pad).max(0.0), top + pad);
            for (line, style) in series.iter().zip(&styles) {
                for &epoch in &line.phase_starts {
                    let marker = vec![(epoch, low), (epoch, high)];
                    chart.draw_series(DashedLineSeries::new(marker, 2, 4, style.colour.mix(0.6).stroke_width(1)))?;
                }
            }
            let model_lines = model_lines.into_iter();
            let level_lines = levels.iter().map(|level| vec![(1u32, level_value(level)), (last_epoch, level_value(level))]);
            for (points, style) in model_lines.chain(level_lines).zip(&styles) {
                let stroke = style.colour.stroke_width(2);
                match style.dash {
                    Dash::Solid => chart.draw_series(LineSeries::new(points, stroke))?,
                    Dash::Dashed { on, off } => chart.draw_series(DashedLineSeries::new(points, on, off, stroke))?,
                };
            }
        }
        // The legend has its own column: with the paper's 17 models it would cover the lines inside a panel.
        let labels = series.iter().map(|s| s.label.as_str()).chain(levels.iter().map(|l| l.0.as_str()));
        for (k, (label, style)) in labels.zip(&styles).enumerate() {
            let y = 60 + k as i32 * LEGEND_ROW as i32;
            let sample = [(6, y), (38, y)];
            match style.dash {
                Dash::Solid => legend.draw(&PathElement::new(sample, style.colour.stroke_width(2)))?,
                Dash::Dashed { on, off } => legend.draw(&DashedPathElement::new(sample, on, off, style.colour.stroke_width(2)))?,
            }
            legend.draw(&Text::new(label.to_string(), (46, y - 7), ("sans-serif", 13)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_and_baseline_is_drawn_and_labelled() {
        let series = vec![
            EpochSeries { label: "id_only".into(), points: vec![(1, 0.55, 0.20), (2, 0.60, 0.24), (3, 0.61, 0.25)], phase_starts: vec![] },
            EpochSeries { label: "parallel_alt".into(), points: vec![(1, 0.50, 0.18), (2, 0.62, 0.26)], phase_starts: vec![] },
        ];
        let svg = epochs_svg(&series, &[("item_knn".into(), 0.49, 0.22)], 20, "yoochoose-cat").expect("plots");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in ["id_only", "parallel_alt", "item_knn", "MRR@20 per epoch", "Recall@20 per epoch", "yoochoose-cat"] {
            assert!(svg.contains(label), "the plot lacks `{label}`");
        }
        // Two panels, each with two model lines and one dashed level.
        assert!(svg.matches("<polyline").count() >= 4, "{}", svg.matches("<polyline").count());
        for style in line_styles(2, 1) {
            let RGBColor(r, g, b) = style.colour;
            let hex = format!("#{r:02X}{g:02X}{b:02X}");
            assert!(svg.contains(&hex), "no line is drawn in {hex}");
        }
    }

    #[test]
    fn a_model_with_a_single_epoch_is_drawn_as_markers() {
        let series = vec![EpochSeries { label: "one_epoch".into(), points: vec![(1, 0.55, 0.20)], phase_starts: vec![] }];
        let svg = epochs_svg(&series, &[], 20, "single").expect("plots");
        // One marker in each panel, in the model's colour.
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        let RGBColor(r, g, b) = line_styles(1, 0)[0].colour;
        assert!(svg.contains(&format!("#{r:02X}{g:02X}{b:02X}")));
    }

    #[test]
    fn phase_changes_are_marked_on_the_epoch_axis() {
        let points = vec![(1, 0.5, 0.2), (2, 0.55, 0.22), (3, 0.6, 0.25), (4, 0.62, 0.26)];
        let plain = epochs_svg(&[EpochSeries { label: "a".into(), points: points.clone(), phase_starts: vec![] }], &[], 20, "t").unwrap();
        let marked = epochs_svg(&[EpochSeries { label: "a".into(), points, phase_starts: vec![3] }], &[], 20, "t").unwrap();
        // A dashed line in each panel: more line segments than without the phase change.
        assert!(marked.matches("<polyline").count() > plain.matches("<polyline").count(), "no phase marker drawn");
    }

    #[test]
    fn no_two_lines_share_a_colour_and_a_dash() {
        // Up to well past the paper's 17 models, with every number of baselines prnn can list and more.
        for models in 0..=40 {
            for baselines in 0..=20 {
                let styles = line_styles(models, baselines);
                assert_eq!(styles.len(), models + baselines);
                let distinct: std::collections::HashSet<LineStyle> = styles.iter().copied().collect();
                assert_eq!(distinct.len(), styles.len(), "{models} models and {baselines} baselines: {styles:?}");
            }
        }
    }

    #[test]
    fn models_are_solid_and_baselines_dotted_or_dashed_each_its_own_way() {
        let styles = line_styles(4, 3);
        let (models, baselines) = styles.split_at(4);
        assert!(models.iter().all(|s| s.dash == Dash::Solid), "{models:?}");
        assert!(baselines.iter().all(|s| s.dash != Dash::Solid), "{baselines:?}");
        let patterns: std::collections::HashSet<Dash> = baselines.iter().map(|s| s.dash).collect();
        let colours: std::collections::HashSet<RGBColor> = styles.iter().map(|s| s.colour).collect();
        assert_eq!((patterns.len(), colours.len()), (3, 7), "{styles:?}");
    }
}

//! The plot of an experiment's metrics per epoch: MRR and Recall at the cut-off, one line per model, baselines flat.

use plotters::prelude::*;

/// One model's metrics after each epoch (means over its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSeries {
    pub label: String,
    /// `(epoch, recall, mrr)`.
    pub points: Vec<(u32, f64, f64)>,
}

/// The plotting library could not draw the plot.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PlotError(#[from] DrawingAreaErrorKind<std::io::Error>);

/// A baseline drawn as a dashed level: `(label, recall, mrr)`.
pub type Level = (String, f64, f64);

/// Pixels per legend entry; the legend column lists every line, so the plot grows with their number.
const LEGEND_ROW: u32 = 18;
const LEGEND_WIDTH: u32 = 260;

/// Two panels (MRR left, Recall right) and a legend column, as an SVG document. Fails only on a plotting-library
/// error.
pub fn epochs_svg(series: &[EpochSeries], levels: &[Level], cutoff: u64, title: &str) -> Result<String, PlotError> {
    let mut svg = String::new();
    let entries = (series.len() + levels.len()) as u32;
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
            for (k, line) in series.iter().enumerate() {
                let colour = Palette99::pick(k).to_rgba();
                chart.draw_series(LineSeries::new(line.points.iter().map(|p| (p.0, value(p))), colour.stroke_width(2)))?;
            }
            for (k, level) in levels.iter().enumerate() {
                let colour = Palette99::pick(series.len() + k).to_rgba();
                let y = level_value(level);
                chart.draw_series(DashedLineSeries::new([(1u32, y), (last_epoch, y)], 6, 4, colour.stroke_width(1)))?;
            }
        }
        // The legend has its own column: with the paper's 17 models it would cover the lines inside a panel.
        let labels = series.iter().map(|s| (s.label.as_str(), 2)).chain(levels.iter().map(|l| (l.0.as_str(), 1)));
        for (k, (label, width)) in labels.enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let y = 60 + k as i32 * LEGEND_ROW as i32;
            let line = if width == 2 { vec![(8, y), (34, y)] } else { vec![(8, y), (16, y)] };
            legend.draw(&PathElement::new(line, colour.stroke_width(width)))?;
            if width == 1 {
                legend.draw(&PathElement::new(vec![(24, y), (34, y)], colour.stroke_width(1)))?;
            }
            legend.draw(&Text::new(label.to_string(), (42, y - 7), ("sans-serif", 13)))?;
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
            EpochSeries { label: "id_only".into(), points: vec![(1, 0.55, 0.20), (2, 0.60, 0.24), (3, 0.61, 0.25)] },
            EpochSeries { label: "parallel_alt".into(), points: vec![(1, 0.50, 0.18), (2, 0.62, 0.26)] },
        ];
        let svg = epochs_svg(&series, &[("item_knn".into(), 0.49, 0.22)], 20, "yoochoose-cat").expect("plots");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in ["id_only", "parallel_alt", "item_knn", "MRR@20 per epoch", "Recall@20 per epoch", "yoochoose-cat"] {
            assert!(svg.contains(label), "the plot lacks `{label}`");
        }
        // Two panels, each with two model lines and one dashed level.
        assert!(svg.matches("<polyline").count() >= 4, "{}", svg.matches("<polyline").count());
    }
}

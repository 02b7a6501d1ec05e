//! The plot of an experiment's metrics per epoch: a panel per metric and cut-off (MRR and Recall at the table's
//! cut-off unless `[experiment]` asks for others), one line per model, baselines flat.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::config::RankingMetric;

/// What the plot shows: a column of panels per metric, a row per cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct Panels {
    pub metrics: Vec<RankingMetric>,
    pub cutoffs: Vec<u64>,
}

impl Panels {
    /// The `(metric, cut-off)` of each panel, row by row: the order of the values in [`EpochSeries`] and [`Level`].
    pub fn each(&self) -> Vec<(RankingMetric, u64)> {
        self.cutoffs.iter().flat_map(|&cutoff| self.metrics.iter().map(move |&metric| (metric, cutoff))).collect()
    }
}

/// One model's metrics after each epoch (means over its seeds).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSeries {
    pub label: String,
    /// `(epoch, values)`, a value per panel in [`Panels::each`]'s order: None where the epoch's evaluation lacks
    /// it (NDCG in runs evaluated before prnn reported it).
    pub points: Vec<(u32, Vec<Option<f64>>)>,
    /// Epochs that begin a new phase of the model's plan (alternating or residual training), marked on the
    /// epoch axis in the model's colour.
    pub phase_starts: Vec<u32>,
}

/// A baseline drawn as a dotted or dashed level, a value per panel as in [`EpochSeries`].
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// The plotting library could not draw the plot.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PlotError(#[from] DrawingAreaErrorKind<std::io::Error>);

const PANEL_WIDTH: u32 = 550;
const PANEL_HEIGHT: u32 = 480;
/// Pixels per legend entry; the legend column lists every line, so the plot grows with their number.
const LEGEND_ROW: u32 = 18;
const LEGEND_WIDTH: u32 = 260;
/// The shortest legend sample; longer dash patterns get longer samples (see [`sample_width`]).
const SAMPLE_WIDTH: i32 = 32;
const MARKER_RADIUS: i32 = 3;

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

/// The phase markers' stroke: thin dots, apart from every line's.
const PHASE_DASH: Dash = Dash::Dashed { on: 2, off: 4 };

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

/// The colour and stroke of one line, the same in every panel and the legend.
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

/// The `(start, end)` offsets of the dashes of `dash` along `length` pixels: whole dashes only, as many as fit,
/// centred, so that a stroke never ends in a sliver of a dash that reads as a tick. `odd` keeps the count odd,
/// for a sample with a marker at its centre that must sit on a dash, not on a gap. A length shorter than one
/// dash is drawn solid.
fn whole_dashes(dash: Dash, length: i32, odd: bool) -> Vec<(i32, i32)> {
    let Dash::Dashed { on, off } = dash else { return vec![(0, length)] };
    let (on, off) = (on as i32, off as i32);
    if length < on {
        return vec![(0, length)];
    }
    let mut count = (length + off) / (on + off);
    if odd && count % 2 == 0 {
        count -= 1;
    }
    let start = (length - (count * (on + off) - off)) / 2;
    (0..count).map(|k| (start + k * (on + off), start + k * (on + off) + on)).collect()
}

/// The legend samples' width: long enough for every style to show its pattern in whole dashes, three for a
/// model (its marker sits on the middle one) and two for a baseline.
fn sample_width(styles: &[LineStyle], models: usize) -> i32 {
    let needed = |(k, style): (usize, &LineStyle)| match style.dash {
        Dash::Solid => 0,
        Dash::Dashed { on, off } if k < models => 3 * on as i32 + 2 * off as i32,
        Dash::Dashed { on, off } => 2 * on as i32 + off as i32,
    };
    styles.iter().enumerate().map(needed).max().unwrap_or(0).max(SAMPLE_WIDTH)
}

/// Draws a horizontal or vertical stroke from `from` to `to`, in pixels of `area`, in whole dashes.
fn draw_stroke(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    from: (i32, i32),
    to: (i32, i32),
    dash: Dash,
    style: ShapeStyle,
    odd: bool,
) -> Result<(), PlotError> {
    let (dx, dy) = ((to.0 - from.0).signum(), (to.1 - from.1).signum());
    let length = (to.0 - from.0).abs() + (to.1 - from.1).abs();
    let at = |offset: i32| (from.0 + dx * offset, from.1 + dy * offset);
    for (start, end) in whole_dashes(dash, length, odd) {
        area.draw(&PathElement::new([at(start), at(end)], style))?;
    }
    Ok(())
}

/// A panel per metric and cut-off of `panels` and a legend column, as an SVG document. Fails only on a
/// plotting-library error.
pub fn epochs_svg(panels: &Panels, series: &[EpochSeries], levels: &[Level], title: &str) -> Result<String, PlotError> {
    let mut svg = String::new();
    let entries = (series.len() + levels.len()) as u32;
    let styles = line_styles(series.len(), levels.len());
    let sample = sample_width(&styles, series.len());
    let (columns, rows) = (panels.metrics.len().max(1) as u32, panels.cutoffs.len().max(1) as u32);
    let legend_width = LEGEND_WIDTH + (sample - SAMPLE_WIDTH) as u32;
    let height = (40 + rows * PANEL_HEIGHT).max(80 + entries * LEGEND_ROW);
    {
        let root = SVGBackend::with_string(&mut svg, (columns * PANEL_WIDTH + legend_width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let (plots, legend) = root.split_horizontally(columns * PANEL_WIDTH);
        let areas = plots.split_evenly((rows as usize, columns as usize));
        let last_epoch = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).max().unwrap_or(1).max(2);
        for (k, (area, (metric, cutoff))) in areas.iter().zip(panels.each()).enumerate() {
            let name = format!("{}@{cutoff}", metric.label());
            let model_lines: Vec<Vec<(u32, f64)>> =
                series.iter().map(|line| line.points.iter().filter_map(|(epoch, values)| Some((*epoch, values[k]?))).collect()).collect();
            let level_values: Vec<Option<f64>> = levels.iter().map(|level| level.values[k]).collect();
            let all: Vec<f64> = model_lines.iter().flatten().map(|p| p.1).chain(level_values.iter().flatten().copied()).collect();
            let top = all.iter().copied().fold(0.0f64, f64::max);
            let bottom = all.iter().copied().fold(top, f64::min);
            let pad = ((top - bottom) * 0.08).max(0.005);
            let (low, high) = ((bottom - pad).max(0.0), top + pad);
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .caption(format!("{name} per epoch"), ("sans-serif", 16))
                .build_cartesian_2d(1u32..last_epoch, low..high)?;
            chart.configure_mesh().x_desc("epoch").y_desc(name).y_label_formatter(&|v| format!("{v:.3}")).draw()?;
            // A marker on every evaluated epoch: a model with one epoch has no line to draw, only its point.
            for (points, style) in model_lines.iter().zip(&styles) {
                chart.draw_series(points.iter().map(|&point| Circle::new(point, MARKER_RADIUS, style.colour.filled())))?;
            }
            // Strokes placed in pixels, so that each can end on a whole dash.
            let screen = chart.plotting_area().use_screen_coord();
            // Where a model's plan moves to its next phase, a thin dotted line across the panel.
            for (line, style) in series.iter().zip(&styles) {
                for &epoch in &line.phase_starts {
                    let (from, to) = (chart.backend_coord(&(epoch, high)), chart.backend_coord(&(epoch, low)));
                    draw_stroke(&screen, from, to, PHASE_DASH, style.colour.mix(0.6).stroke_width(1), false)?;
                }
            }
            for (points, style) in model_lines.into_iter().zip(&styles) {
                let stroke = style.colour.stroke_width(2);
                match style.dash {
                    Dash::Solid => chart.draw_series(LineSeries::new(points, stroke))?,
                    Dash::Dashed { on, off } => chart.draw_series(DashedLineSeries::new(points, on, off, stroke))?,
                };
            }
            for (value, style) in level_values.iter().zip(&styles[series.len()..]) {
                let Some(value) = *value else { continue };
                let (from, to) = (chart.backend_coord(&(1, value)), chart.backend_coord(&(last_epoch, value)));
                draw_stroke(&screen, from, to, style.dash, style.colour.stroke_width(2), false)?;
            }
        }
        // The legend has its own column: with the paper's 17 models it would cover the lines inside a panel.
        let labels = series.iter().map(|s| s.label.as_str()).chain(levels.iter().map(|l| l.label.as_str()));
        for (k, (label, style)) in labels.zip(&styles).enumerate() {
            let y = 60 + k as i32 * LEGEND_ROW as i32;
            let is_model = k < series.len();
            draw_stroke(&legend, (6, y), (6 + sample, y), style.dash, style.colour.stroke_width(2), is_model)?;
            if is_model {
                legend.draw(&Circle::new((6 + sample / 2, y), MARKER_RADIUS, style.colour.filled()))?;
            }
            legend.draw(&Text::new(label.to_string(), (sample + 14, y - 7), ("sans-serif", 13)))?;
        }
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Panels {
        Panels { metrics: vec![RankingMetric::Mrr, RankingMetric::Recall], cutoffs: vec![20] }
    }

    /// A series with `(epoch, recall, mrr)` points, for the two panels of [`today`].
    fn series(label: &str, points: &[(u32, f64, f64)], phase_starts: Vec<u32>) -> EpochSeries {
        let points = points.iter().map(|&(epoch, recall, mrr)| (epoch, vec![Some(mrr), Some(recall)])).collect();
        EpochSeries { label: label.into(), points, phase_starts }
    }

    fn level(label: &str, recall: f64, mrr: f64) -> Level {
        Level { label: label.into(), values: vec![Some(mrr), Some(recall)] }
    }

    fn hex(colour: RGBColor) -> String {
        let RGBColor(r, g, b) = colour;
        format!("#{r:02X}{g:02X}{b:02X}")
    }

    /// The polylines of `svg` stroked in `colour`, as their points.
    fn polylines(svg: &str, colour: RGBColor) -> Vec<Vec<(i32, i32)>> {
        let stroke = format!("stroke=\"{}\"", hex(colour));
        svg.lines()
            .filter(|line| line.starts_with("<polyline") && line.contains(&stroke))
            .map(|line| {
                let points = line.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
                points
                    .split_whitespace()
                    .map(|point| {
                        let (x, y) = point.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    fn length(points: &[(i32, i32)]) -> i32 {
        points.windows(2).map(|w| (w[1].0 - w[0].0).abs() + (w[1].1 - w[0].1).abs()).sum()
    }

    #[test]
    fn every_model_and_baseline_is_drawn_and_labelled() {
        let series = vec![
            series("id_only", &[(1, 0.55, 0.20), (2, 0.60, 0.24), (3, 0.61, 0.25)], vec![]),
            series("parallel_alt", &[(1, 0.50, 0.18), (2, 0.62, 0.26)], vec![]),
        ];
        let svg = epochs_svg(&today(), &series, &[level("item_knn", 0.49, 0.22)], "yoochoose-cat").expect("plots");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in ["id_only", "parallel_alt", "item_knn", "MRR@20 per epoch", "Recall@20 per epoch", "yoochoose-cat"] {
            assert!(svg.contains(label), "the plot lacks `{label}`");
        }
        // Two panels, each with two model lines and one dashed level.
        assert!(svg.matches("<polyline").count() >= 4, "{}", svg.matches("<polyline").count());
        for style in line_styles(2, 1) {
            assert!(svg.contains(&hex(style.colour)), "no line is drawn in {}", hex(style.colour));
        }
    }

    #[test]
    fn a_model_with_a_single_epoch_is_drawn_as_markers() {
        let svg = epochs_svg(&today(), &[series("one_epoch", &[(1, 0.55, 0.20)], vec![])], &[], "single").expect("plots");
        // One marker in each panel, and the legend's, all in the model's colour.
        let marker = format!("fill=\"{}\"", hex(line_styles(1, 0)[0].colour));
        let circles: Vec<&str> = svg.lines().filter(|line| line.starts_with("<circle")).collect();
        assert_eq!(circles.len(), 3, "{svg}");
        assert!(circles.iter().all(|circle| circle.contains(&marker)), "{circles:?}");
    }

    #[test]
    fn phase_changes_are_marked_on_the_epoch_axis() {
        let points = [(1, 0.5, 0.2), (2, 0.55, 0.22), (3, 0.6, 0.25), (4, 0.62, 0.26)];
        let plain = epochs_svg(&today(), &[series("a", &points, vec![])], &[], "t").unwrap();
        let marked = epochs_svg(&today(), &[series("a", &points, vec![3])], &[], "t").unwrap();
        // A dotted line in each panel: more line segments than without the phase change.
        assert!(marked.matches("<polyline").count() > plain.matches("<polyline").count(), "no phase marker drawn");
    }

    #[test]
    fn the_chosen_metrics_and_cutoffs_get_a_panel_each() {
        let panels = Panels { metrics: vec![RankingMetric::Ndcg, RankingMetric::HitRate], cutoffs: vec![5, 20] };
        // Values in the order of `Panels::each`: NDCG@5, HitRate@5, NDCG@20, HitRate@20; the first epoch predates NDCG.
        let ids = EpochSeries {
            label: "ids".into(),
            points: vec![(1, vec![None, Some(0.3), None, Some(0.5)]), (2, vec![Some(0.2), Some(0.35), Some(0.3), Some(0.55)])],
            phase_starts: vec![],
        };
        let knn = Level { label: "item_knn".into(), values: vec![Some(0.18), Some(0.32), Some(0.27), Some(0.5)] };
        let svg = epochs_svg(&panels, &[ids], &[knn], "chosen").unwrap();
        // The panels' captions, axis names and legend, where they are: tick labels left out.
        let texts: Vec<String> = svg
            .split("<text ")
            .skip(1)
            .filter_map(|text| {
                let x = text.split("x=\"").nth(1)?.split('"').next()?;
                let y = text.split("y=\"").nth(1)?.split('"').next()?;
                let content = text.split('>').nth(1)?.split('<').next()?.trim();
                (content.parse::<f64>().is_err()).then(|| format!("({x}, {y}) {content}"))
            })
            .collect();
        let circles = svg.matches("<circle").count();
        insta::assert_snapshot!(format!("{}\n{circles} markers", texts.join("\n")));
        assert!(!svg.contains("MRR@") && !svg.contains("Recall@"), "only the chosen metrics are drawn");
    }

    #[test]
    fn dashes_are_whole_and_centred() {
        assert_eq!(whole_dashes(Dash::Solid, 32, true), [(0, 32)]);
        // 32 pixels hold six dots of 2 with gaps of 4, exactly; two dashes of 12, leaving 2 pixels either side.
        assert_eq!(whole_dashes(Dash::Dashed { on: 2, off: 4 }, 32, false), [(0, 2), (6, 8), (12, 14), (18, 20), (24, 26), (30, 32)]);
        assert_eq!(whole_dashes(Dash::Dashed { on: 12, off: 4 }, 32, false), [(2, 14), (18, 30)]);
        // Odd: three dashes of 18 where four would fit, so a marker at the centre sits on the middle one.
        assert_eq!(whole_dashes(Dash::Dashed { on: 18, off: 3 }, 84, true), [(12, 30), (33, 51), (54, 72)]);
        assert_eq!(whole_dashes(Dash::Dashed { on: 18, off: 3 }, 10, false), [(0, 10)]);
    }

    #[test]
    fn legend_samples_and_levels_end_on_whole_dashes() {
        // Nine models (the eighth and ninth dashed) and three baselines, one of each pattern.
        let models: Vec<EpochSeries> =
            (0..9).map(|k| series(&format!("m{k}"), &[(1, 0.5, 0.2 + 0.01 * k as f64), (2, 0.55, 0.25)], vec![])).collect();
        let levels = [level("item_knn", 0.49, 0.21), level("sknn", 0.52, 0.23), level("popularity", 0.1, 0.05)];
        let svg = epochs_svg(&today(), &models, &levels, "t").unwrap();
        let styles = line_styles(9, 3);
        let sample = sample_width(&styles, 9);
        assert_eq!(sample, 3 * 18 + 2 * 3, "three dashes of the longest model pattern");
        let legend_left = 2 * PANEL_WIDTH as i32;
        for (k, style) in styles.iter().enumerate() {
            let Dash::Dashed { on, .. } = style.dash else { continue };
            // Black and sky blue are shared by a model and a baseline: tell them apart by their dash's length.
            let strokes: Vec<Vec<(i32, i32)>> =
                polylines(&svg, style.colour).into_iter().filter(|line| line.len() == 2 && length(line) <= on as i32).collect();
            let (in_legend, in_panels): (Vec<_>, Vec<_>) = strokes.iter().partition(|line| line[0].0 >= legend_left);
            assert!(in_legend.len() >= 2 && in_legend.iter().all(|line| length(line) == on as i32), "style {k}: {in_legend:?}");
            assert!(in_legend.iter().all(|line| line[0].0 >= legend_left + 6 && line[1].0 <= legend_left + 6 + sample), "{in_legend:?}");
            if k >= 9 {
                // A baseline's level in each panel: whole dashes only, no sliver at its ends.
                assert!(in_panels.len() > 20 && in_panels.iter().all(|line| length(line) == on as i32), "style {k}: {in_panels:?}");
            }
        }
        // Each model's legend marker sits at the middle of its sample.
        let middle = format!("cx=\"{}\"", legend_left + 6 + sample / 2);
        assert_eq!(svg.lines().filter(|line| line.starts_with("<circle") && line.contains(&middle)).count(), 9);
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

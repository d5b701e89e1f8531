//! `curves.png`: per-objective training losses against the step.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;
use plotters::style::FontStyle;

use vlp_train::MetricsRecord;

/// Fonts tried for labels, in order; `VLP_PLOT_FONT` names another TTF file.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font for plot labels; false when none is found (the
/// plot is then drawn without text).
pub(crate) fn register_font() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let candidates = std::env::var("VLP_PLOT_FONT")
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(|s| s.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// A curve: legend label, `(step, loss)` points, colour (the total in
/// black, the objectives in plotters' `Palette99`).
type Series = (String, Vec<(f32, f32)>, RGBAColor);

/// Draws the total loss and every objective's loss from `records` into a PNG at `path`.
pub fn loss_curves(records: &[MetricsRecord], path: &Path) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let with_text = register_font();
    let draw_error = |err: &dyn std::fmt::Display| anyhow!("cannot draw {}: {err}", path.display());
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let last_step = records.last().map_or(1, |r| r.step) as f32;
    let names: Vec<String> = records[0]
        .objectives
        .keys()
        .filter_map(|key| key.strip_suffix("_loss").map(str::to_string))
        .collect();
    let mut series: Vec<Series> = vec![(
        "total".into(),
        records.iter().map(|r| (r.step as f32, r.loss)).collect(),
        BLACK.to_rgba(),
    )];
    for (i, name) in names.iter().enumerate() {
        series.push((
            name.to_uppercase(),
            records
                .iter()
                .filter_map(|r| r.objective_loss(name).map(|loss| (r.step as f32, loss)))
                .collect(),
            Palette99::pick(i).to_rgba(),
        ));
    }
    let max_loss = series
        .iter()
        .flat_map(|(_, points, _)| points.iter().map(|&(_, loss)| loss))
        .filter(|loss| loss.is_finite())
        .fold(0.0f32, f32::max)
        * 1.05;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if with_text {
        builder
            .caption("vlp pre-training losses", ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(55);
    }
    let mut chart = builder
        .build_cartesian_2d(0f32..last_step, 0f32..max_loss.max(1e-3))
        .map_err(|e| draw_error(&e))?;
    let mut mesh = chart.configure_mesh();
    if with_text {
        mesh.x_desc("step").y_desc("loss");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| draw_error(&e))?;
    for (name, points, colour) in series {
        let line = chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| draw_error(&e))?;
        if with_text {
            line.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
    }
    if with_text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw_error(&e))?;
    }
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}

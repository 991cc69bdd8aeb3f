//! The timeline chart: success rate, p99 latency and breaker state over time, unprotected
//! beside protected, drawn with plotters' SVG backend.

use std::path::Path;

use plotters::prelude::*;

use super::figures::percentile;
use super::{Outcome, Run, Suite};

/// One point of the timeline.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// Seconds from the start of the run (the middle of the bucket).
    pub t: f64,
    /// Usable answers among the calls answered in the bucket, in percent.
    pub success: Option<f64>,
    /// p99 latency of those calls, in milliseconds.
    pub p99: Option<f64>,
}

/// The timeline of `run`, in buckets of `bucket` seconds (by the time each call was answered).
#[must_use]
pub fn timeline(run: &Run, bucket: f64) -> Vec<Point> {
    let end = run.windows.last().map_or(0.0, |w| w.end) + 1.5;
    let n = (end / bucket).ceil() as usize;
    let mut buckets: Vec<Vec<(bool, f64)>> = vec![Vec::new(); n];
    for call in &run.calls {
        let i = (call.end() / bucket) as usize;
        if let Some(b) = buckets.get_mut(i) {
            let usable = matches!(call.outcome, Outcome::Real | Outcome::Degraded);
            b.push((usable, call.latency));
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, calls)| {
            let t = (i as f64 + 0.5) * bucket;
            if calls.is_empty() {
                return Point {
                    t,
                    success: None,
                    p99: None,
                };
            }
            let ok = calls.iter().filter(|c| c.0).count();
            let mut latencies: Vec<f64> = calls.iter().map(|c| c.1).collect();
            latencies.sort_by(f64::total_cmp);
            Point {
                t,
                success: Some(ok as f64 / calls.len() as f64 * 100.0),
                p99: percentile(&latencies, 0.99).map(|s| s * 1000.0),
            }
        })
        .collect()
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// One line of a panel: its points, colour and legend.
type Series<'a> = (Vec<(f64, f64)>, RGBColor, &'a str);

/// `points` cut where no call completed for more than one bucket, so the line breaks there
/// instead of being drawn straight across a stretch with no figures. Only the first piece
/// carries the legend.
fn segments(points: Vec<(f64, f64)>, bucket: f64, color: RGBColor, label: &str) -> Vec<Series<'_>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    for point in points {
        match pieces.last_mut() {
            Some(piece)
                if piece
                    .last()
                    .is_some_and(|last| point.0 - last.0 <= bucket * 1.5) =>
            {
                piece.push(point);
            }
            _ => pieces.push(vec![point]),
        }
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| (piece, color, if i == 0 { label } else { "" }))
        .collect()
}

fn panel(
    area: &Panel<'_>,
    run: &Run,
    caption: &str,
    x_max: f64,
    y_max: f64,
    y_desc: &str,
    series: &[Series<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .light_line_style(WHITE)
        .draw()?;
    // The fault windows, shaded.
    chart.draw_series(run.windows.iter().map(|w| {
        Rectangle::new(
            [(w.fault_start, 0.0), (w.fault_end, y_max)],
            RGBColor(250, 200, 200).mix(0.5).filled(),
        )
    }))?;
    for (points, color, label) in series {
        let line = chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if !label.is_empty() {
            line.label(*label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
    }
    if series
        .iter()
        .filter(|(_, _, label)| !label.is_empty())
        .count()
        > 1
    {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// Draws the chart of `suite` into the SVG file `path`.
///
/// # Errors
/// If the file cannot be written.
pub fn render_svg(suite: &Suite, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let bucket = suite.settings.bucket.as_secs_f64();
    let runs = [&suite.unprotected, &suite.protected];
    let x_max = runs
        .iter()
        .map(|r| r.windows.last().map_or(1.0, |w| w.end + 1.5))
        .fold(1.0, f64::max);
    let deadline_ms = suite.settings.deadline.as_secs_f64() * 1000.0;
    let root = SVGBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let cells = root.split_evenly((3, 2));
    for (column, run) in runs.iter().enumerate() {
        let name = if run.protected {
            "protected"
        } else {
            "unprotected"
        };
        let points = timeline(run, bucket);
        let success: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| p.success.map(|s| (p.t, s)))
            .collect();
        let p99: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| p.p99.map(|l| (p.t, l.min(deadline_ms * 1.2))))
            .collect();
        panel(
            &cells[column],
            run,
            &format!("Success rate, {name} (faults shaded)"),
            x_max,
            105.0,
            "% usable",
            &segments(success, bucket, RGBColor(30, 120, 60), "success"),
        )?;
        panel(
            &cells[2 + column],
            run,
            &format!("p99 latency, {name}"),
            x_max,
            deadline_ms * 1.25,
            "ms",
            &segments(p99, bucket, RGBColor(200, 90, 20), "p99"),
        )?;
        let llm: Vec<(f64, f64)> = run
            .samples
            .iter()
            .map(|s| (s.t, f64::from(s.llm)))
            .collect();
        let tool: Vec<(f64, f64)> = run
            .samples
            .iter()
            .map(|s| (s.t, f64::from(s.tool) + 0.05))
            .collect();
        panel(
            &cells[4 + column],
            run,
            &if run.protected {
                "Breaker state (0 closed, 1 half-open, 2 open)".to_owned()
            } else {
                "Breaker state: no breaker without protection".to_owned()
            },
            x_max,
            2.3,
            "state",
            &[
                (llm, RGBColor(40, 70, 200), "llm"),
                (tool, RGBColor(160, 40, 160), "tool"),
            ],
        )?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_without_figures_breaks_the_line() {
        let points = vec![(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (5.0, 0.0), (5.5, 0.0)];
        let pieces = segments(points, 0.5, RGBColor(0, 0, 0), "success");
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].0.len(), 3);
        assert_eq!(pieces[1].0, vec![(5.0, 0.0), (5.5, 0.0)]);
        assert_eq!((pieces[0].2, pieces[1].2), ("success", ""));
    }
}

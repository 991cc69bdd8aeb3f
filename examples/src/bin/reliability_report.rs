//! Runs the chaos experiment suite against an agent gateway, without and then with the
//! family's protection stack, and writes `reliability-engineering-report.md` and
//! `reliability-timeline.svg`.
//!
//! ```text
//! cargo run --release -p examples --bin reliability-report -- [--seed N] [--out DIR] [--quick]
//! ```

use std::path::PathBuf;

use examples::reliability::{self, Progress, Settings, chart, report};
use indicatif::{ProgressBar, ProgressStyle};

const REPORT: &str = "reliability-engineering-report.md";
const CHART: &str = "reliability-timeline.svg";

fn usage() -> ! {
    eprintln!("usage: reliability-report [--seed N] [--out DIR] [--quick]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut seed = 42;
    let mut out = PathBuf::from(".");
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--out" => out = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--quick" => quick = true,
            _ => usage(),
        }
    }
    let settings = if quick {
        Settings::quick(seed)
    } else {
        Settings::demo(seed)
    };
    std::fs::create_dir_all(&out)?;

    let style =
        ProgressStyle::with_template("{prefix:<44} [{bar:30}] {msg}")?.progress_chars("=> ");
    let mut bar: Option<ProgressBar> = None;
    let mut on_progress = |event: Progress<'_>| match event {
        Progress::Started {
            protected,
            index,
            experiment,
            total,
        } => {
            if index == 0 {
                println!(
                    "{} run: {} agents at {} requests/s each",
                    if protected {
                        "protected"
                    } else {
                        "unprotected"
                    },
                    settings.agents,
                    settings.rate_per_agent
                );
            }
            let b = ProgressBar::new(total.as_millis() as u64).with_style(style.clone());
            b.set_prefix(format!("{}. {}", index + 1, experiment.name));
            bar = Some(b);
        }
        Progress::Tick {
            elapsed,
            answered,
            usable,
        } => {
            if let Some(b) = &bar {
                b.set_position(elapsed.as_millis() as u64);
                let rate = if answered == 0 {
                    0.0
                } else {
                    usable as f64 / answered as f64 * 100.0
                };
                b.set_message(format!("{answered} calls, {rate:.0} % usable"));
            }
        }
        Progress::Finished => {
            if let Some(b) = bar.take() {
                b.finish();
            }
        }
    };
    let started = std::time::Instant::now();
    let suite = reliability::run_suite(&settings, &mut on_progress).await?;

    let report_path = out.join(REPORT);
    let chart_path = out.join(CHART);
    std::fs::write(&report_path, report::render(&suite, CHART))?;
    chart::render_svg(&suite, &chart_path).map_err(|e| e.to_string())?;

    let digest = report::Digest::new(&suite);
    println!();
    let rows = report::before_after(&suite, &digest);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let line = |r: [&str; 4]| {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {:<w3$}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(["metric", "unprotected", "protected", "change"]);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
    println!(
        "\nwrote {} and {} in {:.0} s",
        report_path.display(),
        chart_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

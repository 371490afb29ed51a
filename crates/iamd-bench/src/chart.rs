//! The SVG chart of a run: the latency by percentile, and the throughput
//! of each second.

use plotters::prelude::*;

use super::Report;

/// Two charts side by side, as SVG text.
pub fn svg(report: &Report, title: &str) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(500);
        // Latency by percentile, on a log-like axis of "nines".
        let nines = |p: f64| -(1.0 - p / 100.0).max(1e-5).log10();
        let points: Vec<(f64, f64)> = report
            .distribution
            .iter()
            .map(|(p, us)| (nines(*p), us / 1000.0))
            .collect();
        let max_ms = points.iter().map(|(_, y)| *y).fold(0.001, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&left)
            .caption(
                format!("{title}: latency (ms) by percentile"),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..5.0, 0.0..max_ms)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|x: &f64| match x.round() as i32 {
                0 => "0".into(),
                1 => "90".into(),
                2 => "99".into(),
                3 => "99.9".into(),
                4 => "99.99".into(),
                _ => "max".into(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(|e| e.to_string())?;
        // Throughput of each second.
        let max_rps = report.timeline.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
        let seconds = report.timeline.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&right)
            .caption("requests per second", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..seconds, 0.0..max_rps)
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().draw().map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                report
                    .timeline
                    .iter()
                    .enumerate()
                    .map(|(s, n)| (s as f64 + 0.5, *n as f64)),
                &RED,
            ))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

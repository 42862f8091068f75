//! Small SVG line and point plots (latency distributions, RSS against sessions), written by hand
//! so that the files stay a few kilobytes and need no plotting library.

use std::fmt::Write as _;

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw markers instead of a line.
    pub markers: bool,
}

#[derive(Debug, Clone)]
pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<Series>,
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn nice(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Plot {
    pub fn render(&self) -> String {
        let all: Vec<(f64, f64)> = self.series.iter().flat_map(|s| s.points.iter().copied()).collect();
        let fx = |x: f64| if self.log_x { x.max(1e-3).log10() } else { x };
        let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(fx(p.0)), b.max(fx(p.0))));
        let y1 = all.iter().fold(0.0f64, |m, p| m.max(p.1)) * 1.05;
        if !x0.is_finite() || x0 >= x1 {
            (x0, x1) = (x0.min(0.0), x0.max(0.0) + 1.0);
        }
        let y1 = if y1 > 0.0 { y1 } else { 1.0 };
        let sx = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let sy = |y: f64| H - BOTTOM - y / y1 * (H - TOP - BOTTOM);
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        self.axes(&mut out, (x0, x1), y1, &sx, &sy);
        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            if s.markers {
                for (x, y) in &s.points {
                    let _ = write!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, sx(*x), sy(*y));
                }
            } else {
                let points: Vec<String> = s.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
                let _ =
                    write!(out, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, points.join(" "));
            }
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" fill="{colour}">{}</text>"#,
                LEFT + 10.0,
                TOP + 14.0 + 16.0 * i as f64,
                escape(&s.name)
            );
        }
        out.push_str("</svg>\n");
        out
    }

    fn axes(&self, out: &mut String, (x0, x1): (f64, f64), y1: f64, sx: &dyn Fn(f64) -> f64, sy: &dyn Fn(f64) -> f64) {
        let (bottom, right) = (H - BOTTOM, W - RIGHT);
        let _ = write!(out, r#"<path d="M{LEFT} {TOP} V{bottom} H{right}" stroke="black" fill="none"/>"#);
        for i in 0..=5 {
            let y = y1 * f64::from(i) / 5.0;
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{right}" y1="{0:.1}" y2="{0:.1}" stroke="#ddd"/><text x="{1}" y="{2:.1}" text-anchor="end">{3}</text>"##,
                sy(y),
                LEFT - 6.0,
                sy(y) + 4.0,
                nice(y)
            );
        }
        for i in 0..=5 {
            let t = x0 + (x1 - x0) * f64::from(i) / 5.0;
            let x = if self.log_x { 10f64.powf(t) } else { t };
            let _ = write!(out, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, sx(x), bottom + 18.0, nice(x));
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (LEFT + right) / 2.0,
            H - 12.0,
            escape(&self.x_label),
            (TOP + bottom) / 2.0,
            (TOP + bottom) / 2.0,
            escape(&self.y_label)
        );
    }
}

/// The cumulative latency distribution of a run.
pub fn latency_cdf(title: &str, series: Vec<(String, Vec<(f64, f64)>)>) -> String {
    Plot {
        title: title.to_string(),
        x_label: "latency (ms, log scale)".into(),
        y_label: "fraction of samples ≤ latency".into(),
        log_x: true,
        series: series.into_iter().map(|(name, points)| Series { name, points, markers: false }).collect(),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_small_well_formed_document() {
        let svg = latency_cdf("a < b", vec![("x".into(), vec![(0.5, 0.1), (2.0, 0.5), (40.0, 1.0)])]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b") && svg.contains("<polyline"));
        assert!(svg.len() < 5000);
        presence_gateway::cwa::xml::parse(&svg, presence_gateway::cwa::xml::XmlLimits::default()).unwrap();
    }
}

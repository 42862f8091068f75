//! `summarize`: reads the JSON files of repeated runs and prints, per scenario, the median of every
//! figure with its spread (min–max and the spread relative to the median) as a Markdown table,
//! plus the checks summed over the runs.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn show(v: f64) -> String {
    if v == v.round() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Groups runs by scenario (in the order first seen) and renders the tables.
pub fn summarize(files: &[PathBuf]) -> Result<String> {
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let run: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let scenario = run["scenario"].as_str().unwrap_or("?").to_string();
        match runs.iter_mut().find(|(s, _)| *s == scenario) {
            Some((_, list)) => list.push(run),
            None => runs.push((scenario, vec![run])),
        }
    }
    let mut out = String::new();
    for (scenario, list) in &runs {
        out += &table(scenario, list);
    }
    Ok(out)
}

fn table(scenario: &str, runs: &[Value]) -> String {
    let mut figures: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (name, value) in run["figures"].as_object().into_iter().flatten() {
            if let Some(v) = value.as_f64() {
                if !values.contains_key(name) {
                    figures.push(name.clone());
                }
                values.entry(name.clone()).or_default().push(v);
            }
        }
    }
    let mut out =
        format!("\n### {scenario} ({} runs)\n\n| figure | median | min – max | spread |\n|---|---:|---:|---:|\n", runs.len());
    for name in figures {
        let list = values.get_mut(&name).expect("collected");
        let (lo, hi) = list.iter().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        let m = median(list);
        let spread = if m != 0.0 { format!("{:.0} %", (hi - lo) / m.abs() * 100.0) } else { "–".into() };
        out += &format!("| {name} | {} | {} – {} | {spread} |\n", show(m), show(lo), show(hi));
    }
    let sum = |key: &str| runs.iter().map(|r| r["checks"][key].as_u64().unwrap_or(0)).sum::<u64>();
    out += &format!(
        "\nChecks over all runs: {} lost, {} duplicated, {} errors.\n",
        sum("lost_events"),
        sum("duplicated_events"),
        sum("errors")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        let dir = std::env::temp_dir().join(format!("bench-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<PathBuf> = [10.0, 30.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = dir.join(format!("{i}.json"));
                let doc =
                    serde_json::json!({"scenario": "s2-fanout", "figures": {"latency_p99_ms": v}, "checks": {"lost_events": 0}});
                std::fs::write(&path, doc.to_string()).unwrap();
                path
            })
            .collect();
        let text = summarize(&files).unwrap();
        assert!(text.contains("| latency_p99_ms | 20 | 10 – 30 | 100 % |"), "{text}");
        assert!(text.contains("s2-fanout (3 runs)"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! The process's own figures in the Prometheus names every dashboard knows — CPU seconds, resident
//! memory, open and allowed descriptors, start time — read from `/proc/self` when scraped (a few
//! small files and one directory listing; nothing here depends on the number of sessions).
//! Rendered as text beside the recorder's output, because the recorder's counters are integers.

use std::fmt::Write;

/// `/proc` reports CPU times in clock ticks of `USER_HZ`, which Linux fixes at 100.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says now; `None` for what cannot be read (another OS, a restricted `/proc`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

pub fn read() -> ProcessFigures {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name (which may hold spaces), counted from `state` (field 3).
    let fields: Vec<&str> =
        stat.as_deref().and_then(|s| s.rsplit_once(')')).map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let cpu_seconds = field(14).zip(field(15)).map(|(user, system)| (user + system) / TICKS_PER_SECOND);
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())));
    let start_time_seconds = boot_time.zip(field(22)).map(|(boot, ticks)| boot + ticks / TICKS_PER_SECOND);
    let resident_bytes = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    ProcessFigures { cpu_seconds, resident_bytes, open_fds, max_fds, start_time_seconds }
}

/// The figures in the Prometheus text format.
pub fn render(figures: &ProcessFigures) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    };
    metric("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds", figures.cpu_seconds);
    metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes", figures.resident_bytes.map(|v| v as f64));
    metric("process_open_fds", "gauge", "Open file descriptors (connections included)", figures.open_fds.map(|v| v as f64));
    metric("process_max_fds", "gauge", "The most file descriptors the process may open", figures.max_fds.map(|v| v as f64));
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds",
        figures.start_time_seconds,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_figures_and_they_render() {
        let figures = read();
        assert!(figures.cpu_seconds.is_some_and(|v| v >= 0.0), "{figures:?}");
        assert!(figures.resident_bytes.is_some_and(|v| v > 1_000_000), "{figures:?}");
        assert!(figures.open_fds.zip(figures.max_fds).is_some_and(|(open, max)| open >= 3 && open <= max), "{figures:?}");
        assert!(figures.start_time_seconds.is_some_and(|v| v > 1.6e9), "{figures:?}");
        let text = render(&ProcessFigures { cpu_seconds: Some(1.5), open_fds: Some(7), ..ProcessFigures::default() });
        assert_eq!(
            text,
            "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n\
             # HELP process_open_fds Open file descriptors (connections included)\n\
             # TYPE process_open_fds gauge\nprocess_open_fds 7\n"
        );
    }
}

//! The results: a markdown table (one row per metric) and notes.

use std::time::Duration;

/// One row of the results table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) metric: String,
    pub(crate) gateway: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) goal: String,
    /// `None`: the metric has no goal.
    pub(crate) met: Option<bool>,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    pub(crate) fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub(crate) fn note(&mut self, note: String) {
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    pub(crate) fn failed(&mut self, scenario: &str, error: &str) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            metric: "FAILED".to_owned(),
            gateway: error.replace('|', "\\|").replace('\n', " "),
            baseline: String::new(),
            ratio: String::new(),
            goal: String::new(),
            met: Some(false),
        });
    }

    pub(crate) fn markdown(&self) -> String {
        let header = [
            "scenario",
            "metric",
            "gateway",
            "baseline",
            "ratio / added",
            "goal",
            "met?",
        ];
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.scenario.clone(),
                    r.metric.clone(),
                    r.gateway.clone(),
                    r.baseline.clone(),
                    r.ratio.clone(),
                    r.goal.clone(),
                    match r.met {
                        Some(true) => "yes".to_owned(),
                        Some(false) => "**no**".to_owned(),
                        None => "-".to_owned(),
                    },
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cols: &[String]| -> String {
            let padded: Vec<String> = cols
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = String::new();
        out.push_str(&line(&header.map(str::to_owned)));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        for row in &cells {
            out.push_str(&line(row));
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n\n");
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }
}

/// Summary of a set of durations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) mean: Duration,
    pub(crate) max: Duration,
}

impl Stats {
    /// `None` for an empty set.
    pub(crate) fn of(samples: &[Duration]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        let count = u32::try_from(sorted.len()).ok()?;
        Some(Stats {
            p50: percentile(&sorted, 50.0)?,
            p99: percentile(&sorted, 99.0)?,
            mean: total / count,
            max: *sorted.last()?,
        })
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// Milliseconds with two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Signed difference `a - b` in milliseconds.
pub(crate) fn added_ms(a: Duration, b: Duration) -> String {
    format!("{:+.2} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

/// Bytes as MB (10^6 bytes) with one decimal.
pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

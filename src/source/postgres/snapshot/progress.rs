//! Snapshot progress for operators: a progress bar with rows/s and ETA when
//! stderr is a terminal, otherwise one structured log line per table every
//! [`LOG_EVERY`] (table, chunks, rows, rows/s, ETA) plus one when it ends.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Interval between progress log lines: frequent enough to see a copy move,
/// rare enough not to flood logs during an hours-long snapshot.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct TableProgress {
    estimate: u64,
    rows: u64,
    chunks: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// Reports the progress of one snapshot run.
#[derive(Debug)]
pub struct ProgressReporter {
    source: String,
    kind: &'static str,
    tables: HashMap<String, TableProgress>,
    last_log: Instant,
    _bars: Option<MultiProgress>,
}

impl ProgressReporter {
    /// `estimates`: `(table, estimated rows)` for each table to copy.
    pub fn new(source: &str, kind: &'static str, estimates: Vec<(String, u64)>) -> Self {
        let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
        let style = ProgressStyle::with_template(
            "{prefix:>24} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let now = Instant::now();
        let tables = estimates
            .into_iter()
            .map(|(table, estimate)| {
                let bar = bars.as_ref().map(|m| {
                    let bar = m.add(ProgressBar::new(estimate.max(1)));
                    bar.set_style(style.clone());
                    bar.set_prefix(table.clone());
                    bar
                });
                (
                    table,
                    TableProgress {
                        estimate,
                        rows: 0,
                        chunks: 0,
                        started: now,
                        bar,
                    },
                )
            })
            .collect();
        ProgressReporter {
            source: source.to_string(),
            kind,
            tables,
            last_log: now,
            _bars: bars,
        }
    }

    /// Adds a table discovered later (incremental snapshots).
    pub fn add_table(&mut self, table: &str, estimate: u64) {
        self.tables
            .entry(table.to_string())
            .or_insert_with(|| TableProgress {
                estimate,
                rows: 0,
                chunks: 0,
                started: Instant::now(),
                bar: None,
            });
    }

    /// One chunk of `table` with `rows` rows is written.
    pub fn chunk_done(&mut self, table: &str, rows: u64) {
        let Some(t) = self.tables.get_mut(table) else {
            return;
        };
        t.rows += rows;
        t.chunks += 1;
        if t.rows > t.estimate {
            t.estimate = t.rows;
            if let Some(bar) = &t.bar {
                bar.set_length(t.estimate);
            }
        }
        if let Some(bar) = &t.bar {
            bar.set_position(t.rows);
            return;
        }
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let elapsed = t.started.elapsed().as_secs_f64().max(0.001);
            let rate = t.rows as f64 / elapsed;
            let eta = if rate > 0.0 {
                (t.estimate.saturating_sub(t.rows)) as f64 / rate
            } else {
                0.0
            };
            tracing::info!(
                source = %self.source,
                kind = self.kind,
                table,
                chunks = t.chunks,
                rows = t.rows,
                estimated_rows = t.estimate,
                rows_per_sec = rate as u64,
                eta_s = eta as u64,
                "snapshot progress"
            );
        }
    }

    /// The table's snapshot ended (completed or skipped).
    pub fn table_finished(&mut self, table: &str) {
        if let Some(t) = self.tables.remove(table) {
            let elapsed = t.started.elapsed().as_secs_f64().max(0.001);
            if let Some(bar) = &t.bar {
                bar.finish();
            }
            tracing::info!(
                source = %self.source,
                kind = self.kind,
                table,
                chunks = t.chunks,
                rows = t.rows,
                rows_per_sec = (t.rows as f64 / elapsed) as u64,
                elapsed_ms = (elapsed * 1000.0) as u64,
                "snapshot of table finished"
            );
        }
    }

    /// Ends every bar still shown.
    pub fn finish(&mut self) {
        let tables: Vec<String> = self.tables.keys().cloned().collect();
        for table in tables {
            self.table_finished(&table);
        }
    }
}

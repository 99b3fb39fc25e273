//! Prometheus metrics: counters the gRPC edge updates, plus the engine's own figures rendered by
//! the driver at scrape time (hints, streaming, phi per peer, read repairs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency bucket bounds in seconds (Prometheus `le`).
const BUCKETS: [f64; 14] =
    [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Labels of a client request: operation, consistency level, outcome.
type RequestKey = (&'static str, String, &'static str);

/// Every metric of a node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Internode messages sent.
    pub messages_sent: Counter,
    /// Internode messages received.
    pub messages_received: Counter,
    /// Internode messages dropped (peer unreachable or queue full).
    pub messages_dropped: Counter,
    /// Internode bytes sent.
    pub bytes_sent: Counter,
    /// Connections or messages refused (another cluster).
    pub refused: Counter,
    /// Storage syncs (group commits).
    pub syncs: Counter,
    /// Inputs made durable by those syncs.
    pub synced_inputs: Counter,
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

impl Metrics {
    /// Records one client request.
    pub fn request(&self, op: &'static str, cl: &str, outcome: &'static str, took: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((op, cl.to_string(), outcome))
            .or_default() += 1;
        self.latency
            .lock()
            .expect("metrics lock")
            .entry((op, cl.to_string()))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The edge's metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "ringside_messages_sent_total",
            "Internode messages sent.",
            self.messages_sent.get(),
        );
        counter(
            &mut out,
            "ringside_messages_received_total",
            "Internode messages received.",
            self.messages_received.get(),
        );
        counter(
            &mut out,
            "ringside_messages_dropped_total",
            "Internode messages dropped (peer unreachable or queue full).",
            self.messages_dropped.get(),
        );
        counter(
            &mut out,
            "ringside_internode_bytes_sent_total",
            "Internode bytes sent.",
            self.bytes_sent.get(),
        );
        counter(
            &mut out,
            "ringside_refused_total",
            "Peers refused (another cluster).",
            self.refused.get(),
        );
        counter(
            &mut out,
            "ringside_storage_syncs_total",
            "Storage fsyncs (group commits).",
            self.syncs.get(),
        );
        counter(
            &mut out,
            "ringside_storage_synced_inputs_total",
            "Inputs made durable by those fsyncs.",
            self.synced_inputs.get(),
        );
        out.push_str("# HELP ringside_requests_total Client requests by operation, consistency level and outcome.\n# TYPE ringside_requests_total counter\n");
        for ((op, cl, outcome), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "ringside_requests_total{{op=\"{op}\",cl=\"{cl}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP ringside_request_duration_seconds Client request latency at the coordinator.\n# TYPE ringside_request_duration_seconds histogram\n");
        for ((op, cl), h) in self.latency.lock().expect("metrics lock").iter() {
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ringside_request_duration_seconds_bucket{{op=\"{op}\",cl=\"{cl}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ringside_request_duration_seconds_bucket{{op=\"{op}\",cl=\"{cl}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ringside_request_duration_seconds_sum{{op=\"{op}\",cl=\"{cl}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ringside_request_duration_seconds_count{{op=\"{op}\",cl=\"{cl}\"}} {}",
                h.count
            );
        }
        out
    }
}

/// Appends one counter with its help line.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// Appends one gauge with its help line.
pub fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_with_cumulative_buckets() {
        let m = Metrics::default();
        m.request("put", "QUORUM", "ok", Duration::from_micros(700));
        m.request("put", "QUORUM", "ok", Duration::from_millis(30));
        let text = m.render();
        assert!(
            text.contains("ringside_requests_total{op=\"put\",cl=\"QUORUM\",outcome=\"ok\"} 2")
        );
        assert!(text.contains("le=\"0.001\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }
}

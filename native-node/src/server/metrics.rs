//! Prometheus metrics: the counters the gRPC edge, the transport and the driver update
//! ([`Metrics`]), and the engine's own figures (hints, streaming, phi per peer, read repairs)
//! that the driver gathers at scrape time ([`EngineFigures`]). All the text rendering is here;
//! the driver only hands over numbers.

use ringside_core::id::NodeId;
use ringside_core::node::NodeStats;
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

/// The engine's figures at one scrape. The driver gathers them, because it alone owns the
/// engine; they are rendered on the scraping task so that formatting does not hold up a batch.
#[derive(Debug, Default, Clone)]
pub struct EngineFigures {
    /// The engine's own counters.
    pub stats: NodeStats,
    /// Hints stored on disk, by target.
    pub hints_queued: BTreeMap<NodeId, usize>,
    /// Failure detector phi of every other member.
    pub phi: Vec<(NodeId, f64)>,
    /// Bytes of data stored.
    pub load_bytes: u64,
    /// Keys stored.
    pub keys: u64,
}

impl EngineFigures {
    /// The engine's metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let s = &self.stats;
        let mut out = String::new();
        let c = |out: &mut String, name: &str, help: &str, v: u64| counter(out, name, help, v);
        c(
            &mut out,
            "ringside_writes_coordinated_total",
            "Writes coordinated by this node.",
            s.writes,
        );
        c(&mut out, "ringside_reads_coordinated_total", "Reads coordinated by this node.", s.reads);
        c(
            &mut out,
            "ringside_read_repairs_total",
            "Stale replicas repaired after a read (anomalies seen by read repair).",
            s.read_repairs,
        );
        c(
            &mut out,
            "ringside_hints_stored_total",
            "Hints stored for unreachable replicas.",
            s.hints_stored,
        );
        c(
            &mut out,
            "ringside_hints_delivered_total",
            "Hints delivered to their replica.",
            s.hints_delivered,
        );
        c(
            &mut out,
            "ringside_hints_expired_total",
            "Hints dropped after the grace period.",
            s.hints_expired,
        );
        c(
            &mut out,
            "ringside_unavailable_total",
            "Requests refused up front: too few live replicas.",
            s.unavailable,
        );
        c(&mut out, "ringside_timeouts_total", "Requests that timed out.", s.timeouts);
        c(
            &mut out,
            "ringside_extra_acks_total",
            "Acknowledgements demanded beyond the level for pending replicas.",
            s.extra_acks,
        );
        c(
            &mut out,
            "ringside_stream_bytes_received_total",
            "Bytes received by streaming.",
            s.bytes_streamed_in,
        );
        c(
            &mut out,
            "ringside_stream_keys_received_total",
            "Keys received by streaming.",
            s.keys_streamed_in,
        );
        c(
            &mut out,
            "ringside_stream_bytes_sent_total",
            "Bytes sent by streaming.",
            s.bytes_streamed_out,
        );
        c(
            &mut out,
            "ringside_messages_refused_total",
            "Internode messages refused by the engine (unknown peer or other cluster).",
            s.refused,
        );
        out.push_str("# HELP ringside_hints_queued Hints stored on disk, by target.\n# TYPE ringside_hints_queued gauge\n");
        for (target, n) in &self.hints_queued {
            let _ = writeln!(out, "ringside_hints_queued{{target=\"{}\"}} {n}", target.0);
        }
        out.push_str("# HELP ringside_phi Failure detector phi, by peer (convicted above 8).\n# TYPE ringside_phi gauge\n");
        for (peer, phi) in &self.phi {
            let phi = if phi.is_finite() { *phi } else { 1e9 };
            let _ = writeln!(out, "ringside_phi{{peer=\"{}\"}} {phi:.3}", peer.0);
        }
        gauge(&mut out, "ringside_load_bytes", "Bytes of data stored.", self.load_bytes as f64);
        gauge(&mut out, "ringside_keys", "Keys stored.", self.keys as f64);
        out
    }
}

/// Appends one counter with its help line.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// Appends one gauge with its help line.
fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
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

    #[test]
    fn renders_the_engines_figures_with_a_finite_phi() {
        let figures = EngineFigures {
            hints_queued: BTreeMap::from([(NodeId(3), 5)]),
            phi: vec![(NodeId(2), 0.25), (NodeId(3), f64::INFINITY)],
            load_bytes: 1024,
            keys: 7,
            ..EngineFigures::default()
        };
        let text = figures.render();
        assert!(text.contains("ringside_writes_coordinated_total 0\n"));
        assert!(text.contains("ringside_hints_queued{target=\"3\"} 5\n"));
        assert!(text.contains("ringside_phi{peer=\"2\"} 0.250\n"));
        assert!(text.contains("ringside_phi{peer=\"3\"} 1000000000.000\n"));
        assert!(text.contains("ringside_load_bytes 1024\n"));
        assert!(text.contains("ringside_keys 7\n"));
    }
}

//! The join-strategy comparison: one scenario, one seed, one workload and one fault schedule, run
//! once per [`JoinStrategy`]; each run becomes a [`Lane`] of counters and an anomaly time series.
//! `ringside sim compare` prints the table; the explorer draws the same lanes side by side.

use crate::checker::AnomalyKind;
use crate::membership::JoinStrategy;
use crate::scenario::{Playback, Prepared, RunOptions, ScenarioReport, TimelineEvent};
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Anomalies that completed within one second of simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyPoint {
    /// The second (0-based: `[second, second + 1)`).
    pub second: u64,
    /// Stale reads.
    pub stale_reads: u64,
    /// Lost acknowledged writes (reported at the write's acknowledgement).
    pub lost_writes: u64,
    /// Unavailable errors and timeouts.
    pub errors: u64,
}

/// Running totals of a lane at the end of one second of simulated time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneSample {
    /// The second (the sample is taken at `second + 1`).
    pub second: u64,
    /// Acknowledgements demanded beyond the level so far.
    pub extra_acks: u64,
    /// Bytes streamed so far.
    pub bytes_streamed: u64,
    /// Joins started so far.
    pub joins_started: u64,
    /// Joins completed so far.
    pub joins_completed: u64,
}

/// One strategy's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lane {
    /// The strategy.
    pub strategy: JoinStrategy,
    /// Reads that missed an acknowledged write (R + W > RF).
    pub stale_reads: u64,
    /// Acknowledged writes the final state does not cover.
    pub lost_writes: u64,
    /// Requests refused up front.
    pub unavailable: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Acknowledgements demanded beyond the level because of pending replicas.
    pub extra_acks: u64,
    /// Bytes streamed (joins, decommissions, repairs).
    pub bytes_streamed: u64,
    /// Seconds from the first join's start to NORMAL; `None` when no join completed.
    pub time_to_normal: Option<f64>,
    /// Keys left on nodes that no longer replicate them.
    pub ghost_keys: u64,
    /// Joins and decommissions that failed, with the reason.
    pub failures: Vec<String>,
    /// Anomalies per second of simulated time (only seconds with at least one).
    pub timeline: Vec<AnomalyPoint>,
    /// Running totals at every second of the timeline (the explorer's shared cursor reads
    /// them).
    pub samples: Vec<LaneSample>,
    /// Trace hash of the run.
    pub trace_hash: String,
    /// The command that replays this lane alone.
    pub replay: String,
}

impl Lane {
    /// Builds a lane from a scenario report.
    pub fn from_report(strategy: JoinStrategy, r: &ScenarioReport) -> Lane {
        let count = |k| r.anomalies.get(&k).copied().unwrap_or(0) as u64;
        let mut timeline: Vec<AnomalyPoint> = Vec::new();
        for a in &r.check.anomalies {
            let second = a.time.as_micros() / 1_000_000;
            let point = match timeline.iter_mut().find(|p| p.second == second) {
                Some(p) => p,
                None => {
                    timeline.push(AnomalyPoint { second, ..AnomalyPoint::default() });
                    timeline.last_mut().expect("just pushed")
                }
            };
            match a.kind {
                AnomalyKind::StaleRead => point.stale_reads += 1,
                AnomalyKind::LostWrite => point.lost_writes += 1,
                AnomalyKind::Unavailable | AnomalyKind::Timeout => point.errors += 1,
                _ => {}
            }
        }
        timeline.sort_by_key(|p| p.second);
        Lane {
            strategy,
            stale_reads: count(AnomalyKind::StaleRead),
            lost_writes: count(AnomalyKind::LostWrite),
            unavailable: count(AnomalyKind::Unavailable),
            timeouts: count(AnomalyKind::Timeout),
            extra_acks: r.extra_acks,
            bytes_streamed: r.bytes_streamed,
            time_to_normal: r.time_to_normal.values().copied().reduce(f64::max),
            ghost_keys: r.ghost_keys,
            failures: r.movement_failures.clone(),
            timeline,
            samples: Vec::new(),
            trace_hash: r.trace_hash.clone(),
            replay: format!("{} --strategy {strategy}", r.replay),
        }
    }
}

/// Every lane of one comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// Seed shared by every lane.
    pub seed: u64,
    /// One lane per strategy, in the order asked.
    pub lanes: Vec<Lane>,
}

impl Comparison {
    /// The lane of `strategy`, if it was run.
    pub fn lane(&self, strategy: JoinStrategy) -> Option<&Lane> {
        self.lanes.iter().find(|l| l.strategy == strategy)
    }
}

/// Runs `p` once per strategy with the same seed and returns the lanes.
pub fn compare(p: &Prepared, strategies: &[JoinStrategy], options: &RunOptions) -> Comparison {
    compare_with(p, strategies, options, &[])
}

/// [`compare`] with `extra` timeline events in every lane (the explorer's interventions), and
/// running totals sampled every second.
pub fn compare_with(
    p: &Prepared,
    strategies: &[JoinStrategy],
    options: &RunOptions,
    extra: &[TimelineEvent],
) -> Comparison {
    let seed = options.seed.unwrap_or(p.scenario.seed);
    let lanes = strategies
        .iter()
        .map(|s| {
            let options = RunOptions { strategy: Some(*s), keep_trace: false, ..options.clone() };
            let mut playback = Playback::new(p, &options);
            for (id, e) in extra.iter().enumerate() {
                playback.insert(id as u64, e.clone());
            }
            let mut samples = Vec::new();
            let seconds = p.scenario.duration.as_secs();
            for second in 0..seconds {
                playback.advance_to(Instant::ZERO + Duration::from_secs(second + 1));
                let sim = playback.sim();
                samples.push(LaneSample {
                    second,
                    extra_acks: sim.extra_acks(),
                    bytes_streamed: sim.stats().bytes_streamed,
                    joins_started: sim.stats().join_started.len() as u64,
                    joins_completed: sim.stats().join_completed.len() as u64,
                });
            }
            let (report, _) = playback.finish(p, &options);
            Lane { samples, ..Lane::from_report(*s, &report) }
        })
        .collect();
    Comparison { scenario: p.scenario.name.clone(), seed, lanes }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {} (seed {}), same workload and faults in every lane",
            self.scenario, self.seed
        )?;
        writeln!(
            f,
            "{:<20} {:>6} {:>6} {:>6} {:>8} {:>7} {:>12} {:>10} {:>6}",
            "strategy",
            "stale",
            "lost",
            "unavail",
            "timeouts",
            "+acks",
            "streamed",
            "to NORMAL",
            "ghost"
        )?;
        for l in &self.lanes {
            let normal = match l.time_to_normal {
                Some(t) => format!("{t:.1}s"),
                None if l.failures.is_empty() => "-".into(),
                None => "failed".into(),
            };
            writeln!(
                f,
                "{:<20} {:>6} {:>6} {:>7} {:>8} {:>7} {:>12} {:>10} {:>6}",
                l.strategy.name(),
                l.stale_reads,
                l.lost_writes,
                l.unavailable,
                l.timeouts,
                l.extra_acks,
                human_bytes(l.bytes_streamed),
                normal,
                l.ghost_keys
            )?;
        }
        for l in &self.lanes {
            for failure in &l.failures {
                writeln!(f, "{}: {failure}", l.strategy)?;
            }
        }
        writeln!(
            f,
            "stale: reads that missed an acknowledged write (R + W > RF); lost: acknowledged writes missing at the end;"
        )?;
        writeln!(
            f,
            "+acks: acknowledgements demanded beyond the level by pending replicas; ghost: keys left on old owners until cleanup."
        )
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Event, parse, prepare};

    const TEXT: &str = r#"
name = "tiny-join"
seed = 3
duration = "40s"
[cluster]
nodes = ["A", "B", "C"]
rf = 3
num_tokens = 4
[node]
stream_mib_per_sec = 0.002
[workload]
clients = 2
keys = 20
read_cl = "QUORUM"
write_cl = "QUORUM"
think_time = "50ms"
start = "1s"
stop = "35s"
[[events]]
at = "5s"
add_node = { name = "D" }
"#;

    #[test]
    fn every_lane_runs_the_same_seed_and_the_strategies_differ() {
        let p = prepare(parse(TEXT).unwrap(), TEXT).unwrap();
        let c = compare(&p, &JoinStrategy::ALL, &RunOptions::default());
        assert_eq!(c.lanes.len(), 6);
        assert_eq!(c.seed, 3);
        let staged = c.lane(JoinStrategy::Staged).unwrap();
        assert_eq!((staged.stale_reads, staged.lost_writes), (0, 0), "{c}");
        assert!(staged.time_to_normal.is_some(), "{c}");
        assert!(staged.extra_acks > 0, "staged demands extra acks while D is pending: {c}");
        assert!(c.lane(JoinStrategy::StreamThenCutover).unwrap().extra_acks == 0, "{c}");
        // Lanes differ: the strategies really behave differently on the same input.
        let hashes: std::collections::BTreeSet<&str> =
            c.lanes.iter().map(|l| l.trace_hash.as_str()).collect();
        assert_eq!(hashes.len(), 6, "{c}");
        let text = c.to_string();
        assert!(text.contains("dual-write-cutover") && text.contains("to NORMAL"), "{text}");
        // Running totals: one per second, never decreasing, ending at the lane's totals.
        for l in &c.lanes {
            assert_eq!(l.samples.len(), 40);
            assert!(l.samples.windows(2).all(|w| w[0].bytes_streamed <= w[1].bytes_streamed));
            assert!(l.samples.last().unwrap().bytes_streamed <= l.bytes_streamed);
        }
        assert!(staged.samples[4].bytes_streamed == 0 && staged.samples[39].joins_completed == 1);
    }

    #[test]
    fn interventions_reach_every_lane() {
        let p = prepare(parse(TEXT).unwrap(), TEXT).unwrap();
        let crash = TimelineEvent::new(Duration::from_secs(2), Event::Crash("B".into()));
        let plain = compare(&p, &[JoinStrategy::Staged], &RunOptions::default());
        let c = compare_with(&p, &[JoinStrategy::Staged], &RunOptions::default(), &[crash]);
        assert_ne!(c.lanes[0].trace_hash, plain.lanes[0].trace_hash);
        // B is down when D joins and is the source of some of D's ranges: the staged join
        // refuses to stream from another replica.
        assert!(!c.lanes[0].failures.is_empty(), "{c}");
    }

    #[test]
    fn bytes_are_printed_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}

//! The join-strategy comparison: one scenario, one seed, one workload and one fault schedule, run
//! once per [`JoinStrategy`]; each run becomes a [`Lane`] of counters and an anomaly time series.
//! `ringside sim compare` prints the table; the explorer draws the same lanes side by side.
//!
//! The explorer shows a run's anomalies in three places — the lanes ([`Lane::at`]), the history
//! pane and the timeline's markers — and they count with one rule, [`counted_at`]: an anomaly
//! counts at the completion it concerns, and the final phase's are apart, "after the run"
//! ([`AnomalyLog`]).

use crate::checker::{Anomaly, AnomalyKind};
use crate::id::NodeId;
use crate::membership::JoinStrategy;
use crate::scenario::{Playback, Prepared, RunOptions, ScenarioReport, TimelineEvent};
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How many anomalies of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyCounts {
    /// Stale reads.
    pub stale_reads: u64,
    /// Lost acknowledged writes.
    pub lost_writes: u64,
    /// Writes last-write-wins dropped unread (LWW only).
    pub lost_updates: u64,
    /// Requests refused up front (too few live replicas).
    pub unavailable: u64,
    /// Requests that timed out.
    pub timeouts: u64,
}

impl AnomalyCounts {
    fn add(&mut self, kind: AnomalyKind) {
        match kind {
            AnomalyKind::StaleRead => self.stale_reads += 1,
            AnomalyKind::LostWrite => self.lost_writes += 1,
            AnomalyKind::LostUpdate => self.lost_updates += 1,
            AnomalyKind::Unavailable => self.unavailable += 1,
            AnomalyKind::Timeout => self.timeouts += 1,
        }
    }

    /// The count of `kind`.
    pub fn of(&self, kind: AnomalyKind) -> u64 {
        match kind {
            AnomalyKind::StaleRead => self.stale_reads,
            AnomalyKind::LostWrite => self.lost_writes,
            AnomalyKind::LostUpdate => self.lost_updates,
            AnomalyKind::Unavailable => self.unavailable,
            AnomalyKind::Timeout => self.timeouts,
        }
    }

    /// Acknowledged writes lost: lost writes and (under last-write-wins) lost updates, which the
    /// explorer shows together as "lost".
    pub fn lost(&self) -> u64 {
        self.lost_writes + self.lost_updates
    }

    /// Every anomaly, whatever its kind.
    pub fn total(&self) -> u64 {
        AnomalyKind::ALL.iter().map(|k| self.of(*k)).sum()
    }
}

/// When an anomaly counts on the explorer's timeline (see [`counted_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedAt {
    /// At this instant of the run: from a cursor at this time on.
    During(Instant),
    /// In the final phase after the run (settle, repair reads, final reads), which the timeline
    /// does not reach: never at a cursor.
    AfterRun,
}

/// The one counting rule the explorer's strategy lanes, history pane and timeline markers share.
///
/// An anomaly counts at the time of the completion it concerns ([`Anomaly::time`]: the stale
/// read's answer, the lost write's acknowledgement, the refusal, the timeout), so a cursor at `t`
/// has counted exactly the anomalies flagged on operations completed by `t`. A completion after
/// `end` (the scenario's duration) belongs to the final phase: it is reported apart, "after the
/// run", and counted at no cursor, the one at the end included.
pub fn counted_at(anomaly: &Anomaly, end: Instant) -> CountedAt {
    if anomaly.time <= end { CountedAt::During(anomaly.time) } else { CountedAt::AfterRun }
}

/// A run's anomalies as the explorer counts them ([`counted_at`]): when each counts, and those
/// of the final phase apart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyLog {
    /// The end of the run (time zero plus the scenario's duration).
    pub end: Instant,
    /// The anomalies counted during the run: when and what, in time order.
    pub during: Vec<(Instant, AnomalyKind)>,
    /// The anomalies of the final phase.
    pub after_run: AnomalyCounts,
}

impl AnomalyLog {
    /// Sorts the checker's `anomalies` of a run that ended at `end`.
    pub fn new(anomalies: &[Anomaly], end: Instant) -> AnomalyLog {
        let mut log = AnomalyLog { end, ..AnomalyLog::default() };
        for a in anomalies {
            match counted_at(a, end) {
                CountedAt::During(at) => log.during.push((at, a.kind)),
                CountedAt::AfterRun => log.after_run.add(a.kind),
            }
        }
        log.during.sort();
        log
    }

    /// What a cursor at `t` has counted.
    pub fn at(&self, t: Instant) -> AnomalyCounts {
        let n = self.during.partition_point(|(at, _)| *at <= t);
        let mut counts = AnomalyCounts::default();
        for (_, kind) in &self.during[..n] {
            counts.add(*kind);
        }
        counts
    }

    /// What the cursor at the end of the run shows: every anomaly but the final phase's.
    pub fn whole_run(&self) -> AnomalyCounts {
        self.at(self.end)
    }

    /// Anomalies per second of the run: element `s` holds those counted in `[s, s + 1)` (the
    /// last one also those at the very end, when the run lasts whole seconds).
    pub fn per_second(&self) -> Vec<AnomalyCounts> {
        let seconds = self.end.as_micros().div_ceil(1_000_000).max(1);
        let mut out = vec![AnomalyCounts::default(); seconds as usize];
        for (at, kind) in &self.during {
            let s = (at.as_micros() / 1_000_000).min(seconds - 1);
            out[s as usize].add(*kind);
        }
        out
    }
}

/// One join of a lane: when it started and when the joiner became NORMAL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSpan {
    /// The joiner.
    pub node: String,
    /// When it was asked to join.
    pub started: Instant,
    /// When it became NORMAL, if it did (possibly in the final phase, after the run).
    pub normal: Option<Instant>,
    /// Whether its movement failed.
    pub failed: bool,
}

/// A lane's joins as seen at a cursor ([`Lane::at`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ToNormal {
    /// No join has started yet.
    NotStarted,
    /// A join started and is not NORMAL yet.
    Joining,
    /// Every join started so far is NORMAL; the slowest took this long.
    Normal(Duration),
    /// At the end of the run a join is still not NORMAL; it became NORMAL in the final phase,
    /// this long after it started.
    AfterRun(Duration),
    /// At the end of the run a join is not NORMAL and its movement failed.
    Failed,
    /// At the end of the run a join is not NORMAL, and did not become NORMAL after it either.
    Unfinished,
}

/// A lane's counters at a cursor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneAt {
    /// Anomalies counted so far ([`counted_at`]).
    pub anomalies: AnomalyCounts,
    /// Acknowledgements demanded beyond the level, at the last whole second.
    pub extra_acks: u64,
    /// Bytes streamed, at the last whole second.
    pub bytes_streamed: u64,
    /// The joins.
    pub to_normal: ToNormal,
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
    /// Reads that missed an acknowledged write (R + W > RF), in the whole run, final phase
    /// included (as `ringside sim compare` prints them; the explorer counts at a cursor with
    /// [`Lane::at`]).
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
    /// The anomalies as the explorer counts them at its cursor.
    pub anomalies: AnomalyLog,
    /// The joins, when each started and became NORMAL.
    pub joins: Vec<JoinSpan>,
    /// Running totals at every second of the timeline (the explorer's shared cursor reads
    /// them).
    pub samples: Vec<LaneSample>,
    /// Trace hash of the run.
    pub trace_hash: String,
    /// The command that replays this lane alone.
    pub replay: String,
}

impl Lane {
    /// Builds a lane from a scenario report of a run that ended at `end` (its final phase
    /// after it); the joins and samples are left empty.
    pub fn from_report(strategy: JoinStrategy, r: &ScenarioReport, end: Instant) -> Lane {
        let count = |k| r.anomalies.get(&k).copied().unwrap_or(0) as u64;
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
            anomalies: AnomalyLog::new(&r.check.anomalies, end),
            joins: Vec::new(),
            samples: Vec::new(),
            trace_hash: r.trace_hash.clone(),
            replay: format!("{} --strategy {strategy}", r.replay),
        }
    }

    /// The lane's counters at cursor `t`: the explorer shows these beside the history's, which
    /// count with the same [`AnomalyLog::at`].
    pub fn at(&self, t: Instant) -> LaneAt {
        // Streaming and acknowledgements are sampled at whole seconds: the last sample at or
        // before the cursor (the one at the end for a cursor past it, never the final phase).
        let second = t.min(self.anomalies.end).as_micros() / 1_000_000;
        let sample = second.checked_sub(1).and_then(|s| self.samples.get(s as usize));
        let (extra_acks, bytes_streamed) =
            sample.map_or((0, 0), |s| (s.extra_acks, s.bytes_streamed));
        LaneAt {
            anomalies: self.anomalies.at(t),
            extra_acks,
            bytes_streamed,
            to_normal: self.to_normal_at(t),
        }
    }

    /// The joins as a cursor at `t` sees them: only what happened by `t`, and by the end of the
    /// run for a cursor past it.
    fn to_normal_at(&self, t: Instant) -> ToNormal {
        let end = self.anomalies.end;
        let t = t.min(end);
        let started: Vec<&JoinSpan> = self.joins.iter().filter(|j| j.started <= t).collect();
        if started.is_empty() {
            return ToNormal::NotStarted;
        }
        let took = |j: &JoinSpan| j.normal.map(|n| n.saturating_duration_since(j.started));
        let waiting: Vec<&JoinSpan> =
            started.iter().copied().filter(|j| j.normal.is_none_or(|n| n > t)).collect();
        if waiting.is_empty() {
            return ToNormal::Normal(
                started.iter().filter_map(|j| took(j)).max().unwrap_or_default(),
            );
        }
        if t < end {
            ToNormal::Joining
        } else if waiting.iter().any(|j| j.failed && j.normal.is_none()) {
            ToNormal::Failed
        } else if waiting.iter().all(|j| j.normal.is_some()) {
            ToNormal::AfterRun(waiting.iter().filter_map(|j| took(j)).max().unwrap_or_default())
        } else {
            ToNormal::Unfinished
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
            let end = Instant::ZERO + p.scenario.duration;
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
            let (report, sim) = playback.finish(p, &options);
            let stats = sim.stats();
            let failed: Vec<NodeId> = stats.movement_failures.iter().map(|(n, _)| *n).collect();
            let joins = stats
                .join_started
                .iter()
                .map(|(node, started)| JoinSpan {
                    node: sim.name(*node).to_string(),
                    started: *started,
                    normal: stats.join_completed.get(node).copied(),
                    failed: failed.contains(node),
                })
                .collect();
            Lane { samples, joins, ..Lane::from_report(*s, &report, end) }
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

    /// The explorer's three views of one run must give the same numbers at every cursor: the
    /// lane of the animated strategy, the history pane (which counts the checked full run) and
    /// the markers, and the end of the timeline must not show what only happens after it.
    #[test]
    fn lanes_and_history_count_alike_at_every_cursor_and_the_final_phase_apart() {
        // `join-immediate` cut at 32 s: E's join (22 s) outlasts the run, and the clients, which
        // stop at 55 s, go on reading stale in the final phase.
        let preset = crate::presets::preset("join-immediate").unwrap().text;
        // Everything from the inspection after the join on is dropped.
        let label = preset.find("label = \"after the join\"").unwrap();
        let cut = preset[..label].rfind("[[events]]").unwrap();
        let text = preset[..cut].replace(r#"duration = "60s""#, r#"duration = "32s""#);
        let p = prepare(parse(&text).unwrap(), &text).unwrap();
        let strategy = JoinStrategy::Immediate;
        let options = RunOptions { strategy: Some(strategy), ..RunOptions::default() };
        let c = compare(&p, &[strategy], &options);
        let lane = &c.lanes[0];
        let (report, _) = crate::scenario::run(&p, &options);
        let end = Instant::ZERO + p.scenario.duration;
        let history = AnomalyLog::new(&report.check.anomalies, end);
        assert!(
            history.at(end).stale_reads > 0 && history.after_run.stale_reads > 0,
            "the run must read stale both before and after its end: {history:?}"
        );
        let mut wrong = Vec::new();
        for ms in (0..=end.as_millis()).step_by(100) {
            let t = Instant::from_millis(ms);
            let completed = |k: AnomalyKind| {
                report.check.anomalies.iter().filter(|a| a.kind == k && a.time <= t).count() as u64
            };
            let (lane_at, history_at) = (lane.at(t).anomalies, history.at(t));
            if lane_at != history_at || history_at.stale_reads != completed(AnomalyKind::StaleRead)
            {
                wrong.push(format!(
                    "at {t:?}: lane {} stale, history {}, completed {}",
                    lane_at.stale_reads,
                    history_at.stale_reads,
                    completed(AnomalyKind::StaleRead)
                ));
            }
        }
        // The end of the timeline: the lane, the history's "whole run" and the cursor at the end
        // agree; the final phase is apart, and with it the checker's counts are whole.
        let whole = history.whole_run();
        if lane.at(end).anomalies != whole || history.at(end) != whole {
            wrong.push(format!(
                "at the end: lane {:?}, whole run {whole:?}, cursor {:?}",
                lane.at(end).anomalies,
                history.at(end)
            ));
        }
        for k in AnomalyKind::ALL {
            assert_eq!(
                history.at(end).of(k) + history.after_run.of(k),
                report.check.count(k) as u64,
                "{k}"
            );
        }
        // E becomes NORMAL only in the final phase: at the end of the run it is not NORMAL yet,
        // and no cursor shows a time to NORMAL longer than the run has lasted since the join.
        let join = &lane.joins[0];
        assert!(join.normal.is_some_and(|n| n > end), "{:?}", lane.joins);
        for ms in (0..=end.as_millis()).step_by(500) {
            let t = Instant::from_millis(ms);
            if let ToNormal::Normal(d) = lane.at(t).to_normal
                && d > t.saturating_duration_since(join.started)
            {
                wrong.push(format!(
                    "at {t:?}: to NORMAL {d:?}, but {} started at {:?}",
                    join.node, join.started
                ));
            }
        }
        let took = join.normal.unwrap().saturating_duration_since(join.started);
        if lane.at(end).to_normal != ToNormal::AfterRun(took) {
            wrong.push(format!(
                "at the end: to NORMAL {:?}, expected after the run ({took:?})",
                lane.at(end).to_normal
            ));
        }
        assert!(wrong.is_empty(), "{} disagreements:\n{}", wrong.len(), wrong.join("\n"));
    }

    #[test]
    fn anomalies_count_at_their_completion_and_the_final_phase_apart() {
        let anomaly = |kind, ms| Anomaly {
            kind,
            key: "k".into(),
            op_index: 0,
            time: Instant::from_millis(ms),
            related: Vec::new(),
            explanation: String::new(),
        };
        let end = Instant::from_secs(10);
        let log = AnomalyLog::new(
            &[
                anomaly(AnomalyKind::Timeout, 10_001),
                anomaly(AnomalyKind::StaleRead, 2_500),
                anomaly(AnomalyKind::StaleRead, 1_200),
                anomaly(AnomalyKind::LostWrite, 10_000),
            ],
            end,
        );
        assert_eq!(log.at(Instant::from_millis(1_199)).total(), 0);
        assert_eq!(log.at(Instant::from_millis(1_200)).stale_reads, 1);
        assert_eq!(log.at(Instant::from_millis(2_499)).stale_reads, 1, "not ahead of the cursor");
        assert_eq!(log.at(Instant::from_millis(2_500)).stale_reads, 2);
        let whole = AnomalyCounts { stale_reads: 2, lost_writes: 1, ..AnomalyCounts::default() };
        assert_eq!((log.whole_run(), log.at(Instant::from_secs(99))), (whole, whole));
        assert_eq!(log.after_run, AnomalyCounts { timeouts: 1, ..AnomalyCounts::default() });
        assert_eq!(counted_at(&anomaly(AnomalyKind::Timeout, 10_001), end), CountedAt::AfterRun);
        let per_second = log.per_second();
        assert_eq!(per_second.len(), 10);
        assert_eq!((per_second[1].stale_reads, per_second[2].stale_reads), (1, 1));
        assert_eq!(per_second[9].lost_writes, 1, "the very end falls in the last second");
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

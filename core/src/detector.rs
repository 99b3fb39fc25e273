//! Phi-accrual failure detection, as Cassandra's `FailureDetector` implements it.
//!
//! For each peer the detector keeps a window of the last [`WINDOW`] heartbeat inter-arrival
//! times. Intervals longer than [`MAX_INTERVAL`] are ignored (a node coming back from a pause must
//! not drag the mean up), and the first arrival seeds the window with [`INITIAL_INTERVAL`] so a
//! peer heard from once is not convicted by a tiny initial mean. Then
//!
//! ```text
//! phi = (now - last_arrival) / mean_interval / ln(10)
//! ```
//!
//! and the peer is convicted when `phi > threshold` (default 8, i.e. silent for about 18.4× the
//! mean interval). Only division is used in the decision, with `ln(10)` as a constant, so the
//! outcome is bit-identical on every platform.
//!
//! Local pause guard (Cassandra `MAX_LOCAL_PAUSE_IN_MS`): if this node itself did not run the
//! detector for more than [`MAX_LOCAL_PAUSE`], silence is our fault, not the peers': the arrival
//! times are reset to now instead of convicting anyone.
//!
//! Up/down is a local opinion and is never sent to other nodes.

use crate::id::NodeId;
use crate::time::Instant;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Samples kept per peer.
pub const WINDOW: usize = 1000;
/// Longer intervals are not recorded.
pub const MAX_INTERVAL: Duration = Duration::from_secs(2);
/// The interval seeded at the first arrival.
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(2);
/// A longer gap between two interpretations is treated as a local pause.
pub const MAX_LOCAL_PAUSE: Duration = Duration::from_secs(5);
/// Default conviction threshold.
pub const DEFAULT_PHI_THRESHOLD: f64 = 8.0;

#[derive(Clone, Debug)]
struct ArrivalWindow {
    intervals: VecDeque<u64>,
    sum: u64,
    last: Instant,
}

impl ArrivalWindow {
    fn new(now: Instant) -> Self {
        let mut w = ArrivalWindow { intervals: VecDeque::new(), sum: 0, last: now };
        w.push(INITIAL_INTERVAL.as_micros() as u64);
        w
    }

    fn push(&mut self, interval: u64) {
        if self.intervals.len() == WINDOW {
            self.sum -= self.intervals.pop_front().expect("full window");
        }
        self.intervals.push_back(interval);
        self.sum += interval;
    }

    fn mean(&self) -> f64 {
        self.sum as f64 / self.intervals.len() as f64
    }
}

/// Per-peer phi-accrual detector.
#[derive(Clone, Debug)]
pub struct PhiDetector {
    threshold: f64,
    peers: BTreeMap<NodeId, ArrivalWindow>,
    down: BTreeMap<NodeId, Instant>,
    last_interpret: Option<Instant>,
}

/// A change of a peer's up/down status, as seen by this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The peer was convicted at this time.
    Down(NodeId),
    /// The peer was heard from again.
    Up(NodeId),
}

impl PhiDetector {
    /// A detector with conviction threshold `threshold`.
    pub fn new(threshold: f64) -> Self {
        PhiDetector {
            threshold,
            peers: BTreeMap::new(),
            down: BTreeMap::new(),
            last_interpret: None,
        }
    }

    /// Records a heartbeat from `peer`. Returns `Some(Up)` if the peer was down.
    pub fn report(&mut self, now: Instant, peer: NodeId) -> Option<Liveness> {
        match self.peers.get_mut(&peer) {
            Some(w) => {
                let interval = now.as_micros().saturating_sub(w.last.as_micros());
                if interval <= MAX_INTERVAL.as_micros() as u64 {
                    w.push(interval);
                }
                w.last = now;
            }
            None => {
                self.peers.insert(peer, ArrivalWindow::new(now));
            }
        }
        self.down.remove(&peer).map(|_| Liveness::Up(peer))
    }

    /// Phi of `peer` at `now` (0 for a peer never heard from).
    pub fn phi(&self, now: Instant, peer: NodeId) -> f64 {
        match self.peers.get(&peer) {
            Some(w) => {
                let silence = now.as_micros().saturating_sub(w.last.as_micros()) as f64;
                silence / w.mean() / std::f64::consts::LN_10
            }
            None => 0.0,
        }
    }

    /// Convicts peers whose phi exceeds the threshold. Call periodically (every gossip round).
    pub fn interpret(&mut self, now: Instant) -> Vec<Liveness> {
        let paused = self
            .last_interpret
            .is_some_and(|last| now.saturating_duration_since(last) > MAX_LOCAL_PAUSE);
        self.last_interpret = Some(now);
        if paused {
            for w in self.peers.values_mut() {
                w.last = now;
            }
            return Vec::new();
        }
        let mut changes = Vec::new();
        for (peer, _) in self.peers.iter() {
            if !self.down.contains_key(peer) && self.phi(now, *peer) > self.threshold {
                changes.push(Liveness::Down(*peer));
            }
        }
        for c in &changes {
            if let Liveness::Down(p) = c {
                self.down.insert(*p, now);
            }
        }
        changes
    }

    /// Starts judging `peer` as if it had just been heard from at `now` (a member presumed alive
    /// at startup): silence from then on convicts it as usual. No-op for a peer already heard.
    pub fn seed(&mut self, now: Instant, peer: NodeId) {
        self.peers.entry(peer).or_insert_with(|| ArrivalWindow::new(now));
    }

    /// Whether `peer` is currently considered alive. Peers never heard from are presumed alive
    /// (as at startup, before the first round).
    pub fn is_alive(&self, peer: NodeId) -> bool {
        !self.down.contains_key(&peer)
    }

    /// Whether `peer` was ever reported.
    pub fn heard_from(&self, peer: NodeId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// When `peer` was convicted, if it is down.
    pub fn down_since(&self, peer: NodeId) -> Option<Instant> {
        self.down.get(&peer).copied()
    }

    /// Forgets a peer entirely (it left the cluster).
    pub fn remove(&mut self, peer: NodeId) {
        self.peers.remove(&peer);
        self.down.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: NodeId = NodeId(7);

    #[test]
    fn phi_matches_hand_computed_values() {
        let mut d = PhiDetector::new(DEFAULT_PHI_THRESHOLD);
        d.report(Instant::ZERO, P);
        // Window = [2 s]; after 1 s of silence phi = 1 / 2 / ln 10 = 0.2171...
        let phi = d.phi(Instant::from_secs(1), P);
        assert!((phi - 0.217_147_240_951_625_5).abs() < 1e-12, "{phi}");
        // Heartbeats every second: window = [2, 1, 1, 1] s, mean 1.25 s.
        for s in 1..=3 {
            d.report(Instant::from_secs(s), P);
        }
        let phi = d.phi(Instant::from_secs(3) + Duration::from_millis(2500), P);
        assert!((phi - 2.5 / 1.25 / std::f64::consts::LN_10).abs() < 1e-12);
    }

    #[test]
    fn convicts_after_about_eighteen_mean_intervals() {
        let mut d = PhiDetector::new(DEFAULT_PHI_THRESHOLD);
        for s in 0..=1000 {
            d.report(Instant::from_secs(s), P);
            d.interpret(Instant::from_secs(s));
        }
        // Mean ≈ 1 s: still alive at +18 s, convicted at +19 s (8 × ln 10 ≈ 18.42).
        let mut t = 1000;
        while t < 1018 {
            t += 1;
            assert!(d.interpret(Instant::from_secs(t)).is_empty(), "convicted early at {t}");
        }
        assert_eq!(d.interpret(Instant::from_secs(1019)), vec![Liveness::Down(P)]);
        assert!(!d.is_alive(P));
        assert_eq!(d.report(Instant::from_secs(1020), P), Some(Liveness::Up(P)));
        assert!(d.is_alive(P));
    }

    #[test]
    fn long_intervals_are_ignored() {
        let mut d = PhiDetector::new(DEFAULT_PHI_THRESHOLD);
        d.report(Instant::ZERO, P);
        d.report(Instant::from_secs(60), P);
        // The 60 s gap was not recorded: mean is still the 2 s seed.
        let phi = d.phi(Instant::from_secs(62), P);
        assert!((phi - 1.0 / std::f64::consts::LN_10).abs() < 1e-12);
    }

    #[test]
    fn local_pause_does_not_convict() {
        let mut d = PhiDetector::new(DEFAULT_PHI_THRESHOLD);
        for s in 0..10 {
            d.report(Instant::from_secs(s), P);
            d.interpret(Instant::from_secs(s));
        }
        // We were paused for 60 s: nobody is convicted, windows restart from now.
        assert!(d.interpret(Instant::from_secs(70)).is_empty());
        assert!(d.is_alive(P));
        assert!(d.phi(Instant::from_secs(70), P) < 1e-9);
    }
}

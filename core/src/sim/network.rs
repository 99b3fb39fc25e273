//! The simulated network: latency, loss and partitions, plus the adversarial-timing nemeses —
//! a long-tailed (Pareto) latency, per-message reordering and holds that delay every message of
//! a link (or of some kinds on it) until a release time. All draws are integer arithmetic on the
//! simulation's seeded generator (no `ln`/`exp`, ARCHITECTURE.md's determinism invariant), so
//! they are identical natively and in wasm. Every nemesis is off by default and draws nothing
//! when off, so runs that do not ask for one keep their traces.

use crate::id::NodeId;
use crate::message::MessageKind;
use crate::time::Instant;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One-way latency: `min + uniform(0, jitter)`, plus `uniform(0, tail)` with probability
/// `tail_probability` (a slow packet, a GC pause on the receiver).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyModel {
    /// Smallest one-way delay.
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// Uniform extra delay.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Probability of a tail delay, 0..=1.
    pub tail_probability: f64,
    /// Largest tail delay.
    #[serde(with = "humantime_serde")]
    pub tail: Duration,
    /// Scale `s` of a Pareto tail (shape 1) added to every message: `P(extra > x) = s / (s + x)`,
    /// so 1 ms gives 1 % of messages more than 99 ms late and 0.1 % about a second late — the
    /// long tail real networks and GC'd receivers show. Zero (the default) switches it off.
    #[serde(with = "humantime_serde")]
    pub pareto_scale: Duration,
    /// Largest Pareto extra delay (the tail is cut here so a run still ends).
    #[serde(with = "humantime_serde")]
    pub pareto_cap: Duration,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            min: Duration::from_micros(500),
            jitter: Duration::from_micros(1_500),
            tail_probability: 0.01,
            tail: Duration::from_millis(20),
            pareto_scale: Duration::ZERO,
            pareto_cap: Duration::from_secs(5),
        }
    }
}

/// Network behaviour of a simulation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Latency of every link.
    pub latency: LatencyModel,
    /// Probability that a message is lost, 0..=1.
    pub loss: f64,
    /// Probability that a message is reordered, 0..=1: it gets an extra uniform delay of up to
    /// `reorder_delay` and does not wait for (nor hold back) the messages sent before it on its
    /// link, as if it went over another connection.
    pub reorder: f64,
    /// Largest extra delay of a reordered message.
    #[serde(with = "humantime_serde")]
    pub reorder_delay: Duration,
}

/// A nemesis that holds messages instead of dropping them: every message from `from` to `to`
/// (both ways when `both_directions`), of the listed kinds or of every kind, that would arrive
/// before `until` arrives at `until` instead, in its original order. Messages already in flight
/// when the hold starts are held too, like the contents of a stalled TCP connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The node that sent it.
    pub from: NodeId,
    /// The node it is addressed to.
    pub to: NodeId,
    /// Hold the reverse direction as well.
    pub both_directions: bool,
    /// Only messages of these kinds (`None`: all).
    pub kinds: Option<Vec<MessageKind>>,
    /// Release time.
    pub until: Instant,
}

impl Hold {
    fn matches(&self, from: NodeId, to: NodeId, kind: MessageKind) -> bool {
        let link = (self.from == from && self.to == to)
            || (self.both_directions && self.from == to && self.to == from);
        link && self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

/// How a message travels: its delay, and whether it keeps its place in its link's FIFO order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampled {
    /// One-way delay in µs.
    pub latency: u64,
    /// `false` for a reordered message.
    pub fifo: bool,
}
/// Converts a probability to a threshold on a `u32` draw (exact, platform independent).
pub fn probability_threshold(p: f64) -> u64 {
    let p = p.clamp(0.0, 1.0);
    (p * 4_294_967_296.0) as u64
}

/// Draws `true` with probability `p` (as a threshold from [`probability_threshold`]).
pub fn draw(rng: &mut ChaCha8Rng, threshold: u64) -> bool {
    threshold > 0 && u64::from(rng.next_u32()) < threshold
}

/// An extra delay drawn from a Pareto distribution of shape 1 and scale `scale` µs, shifted to
/// start at zero and cut at `cap` µs: with `u` uniform in `1..=2^32`, `scale * 2^32 / u - scale`.
/// Integer division only, so identical on every platform; draws nothing when `scale` is zero.
pub fn pareto_extra(rng: &mut ChaCha8Rng, scale: u64, cap: u64) -> u64 {
    if scale == 0 {
        return 0;
    }
    let u = u128::from(rng.next_u32()) + 1;
    let x = (u128::from(scale) << 32) / u;
    (x - u128::from(scale)).min(u128::from(cap)) as u64
}

/// Live network state.
#[derive(Clone, Debug)]
pub struct Network {
    config: NetworkConfig,
    loss_threshold: u64,
    tail_threshold: u64,
    reorder_threshold: u64,
    /// Active holds, in the order they were placed.
    holds: Vec<Hold>,
    /// Partition group of each node; nodes in different groups cannot talk. Empty = healed.
    groups: BTreeMap<NodeId, usize>,
}

impl Network {
    /// A healed network.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            loss_threshold: probability_threshold(config.loss),
            tail_threshold: probability_threshold(config.latency.tail_probability),
            reorder_threshold: probability_threshold(config.reorder),
            holds: Vec::new(),
            config,
            groups: BTreeMap::new(),
        }
    }

    /// The latency, loss and partition settings in force.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Changes the loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss;
        self.loss_threshold = probability_threshold(loss);
    }

    /// Samples a one-way delay in µs.
    pub fn sample_latency(&self, rng: &mut ChaCha8Rng) -> u64 {
        let l = &self.config.latency;
        let mut d = l.min.as_micros() as u64;
        let jitter = l.jitter.as_micros() as u64;
        if jitter > 0 {
            d += rng.random_range(0..=jitter);
        }
        if draw(rng, self.tail_threshold) {
            let tail = l.tail.as_micros() as u64;
            if tail > 0 {
                d += rng.random_range(0..=tail);
            }
        }
        d += pareto_extra(rng, l.pareto_scale.as_micros() as u64, l.pareto_cap.as_micros() as u64);
        d.max(1)
    }

    /// Samples how one message travels: [`Network::sample_latency`] plus, for a reordered
    /// message, its extra delay.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Sampled {
        let mut latency = self.sample_latency(rng);
        let mut fifo = true;
        if draw(rng, self.reorder_threshold) {
            fifo = false;
            let max = self.config.reorder_delay.as_micros() as u64;
            if max > 0 {
                latency += rng.random_range(0..=max);
            }
        }
        Sampled { latency, fifo }
    }

    /// Changes the reordering probability and delay.
    pub fn set_reorder(&mut self, probability: f64, delay: Duration) {
        self.config.reorder = probability;
        self.config.reorder_delay = delay;
        self.reorder_threshold = probability_threshold(probability);
    }

    /// Changes the Pareto tail (zero scale switches it off).
    pub fn set_pareto(&mut self, scale: Duration, cap: Duration) {
        self.config.latency.pareto_scale = scale;
        self.config.latency.pareto_cap = cap;
    }

    /// Places a hold (see [`Hold`]).
    pub fn hold(&mut self, hold: Hold) {
        self.holds.push(hold);
    }

    /// Releases every hold now: held messages arrive at their release time all the same (they
    /// are already scheduled), but nothing more is held.
    pub fn release_holds(&mut self) {
        self.holds.clear();
    }

    /// Active holds.
    pub fn holds(&self) -> &[Hold] {
        &self.holds
    }

    /// When a message from `from` to `to` of `kind`, due `now`, may arrive at the earliest:
    /// the latest release among the holds on it still in force, or `None` when none holds it.
    /// Expired holds are forgotten.
    pub fn held_until(
        &mut self,
        from: NodeId,
        to: NodeId,
        kind: MessageKind,
        now: Instant,
    ) -> Option<Instant> {
        if self.holds.is_empty() {
            return None;
        }
        self.holds.retain(|h| h.until > now);
        self.holds.iter().filter(|h| h.matches(from, to, kind)).map(|h| h.until).max()
    }
    /// Whether this message is randomly lost.
    pub fn lose(&self, rng: &mut ChaCha8Rng) -> bool {
        draw(rng, self.loss_threshold)
    }

    /// Splits the network: each listed group is isolated from the others; unlisted nodes form one
    /// more group together.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.groups.clear();
        for (i, g) in groups.iter().enumerate() {
            for n in g {
                self.groups.insert(*n, i + 1);
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.groups.clear();
    }

    /// Whether `a` and `b` can exchange messages.
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        if self.groups.is_empty() {
            return true;
        }
        self.groups.get(&a).copied().unwrap_or(0) == self.groups.get(&b).copied().unwrap_or(0)
    }

    /// Whether any partition is in force.
    pub fn is_partitioned(&self) -> bool {
        !self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pareto_extra_has_a_long_tail_and_respects_its_cap() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let draws: Vec<u64> =
            (0..100_000).map(|_| pareto_extra(&mut rng, 1_000, 2_000_000)).collect();
        let over = |x: u64| draws.iter().filter(|d| **d > x).count();
        // P(extra > x) = s / (s + x): about half above 1 ms, 1 % above 99 ms, 0.1 % above 999 ms.
        assert!((45_000..55_000).contains(&over(1_000)), "{}", over(1_000));
        assert!((700..1_300).contains(&over(99_000)), "{}", over(99_000));
        assert!((50..150).contains(&over(999_000)), "{}", over(999_000));
        assert!(draws.iter().all(|d| *d <= 2_000_000));
        let mut off = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(pareto_extra(&mut off, 0, 5), 0);
        assert_eq!(off, ChaCha8Rng::seed_from_u64(3), "a disabled tail draws nothing");
    }

    #[test]
    fn holds_match_their_link_direction_and_kinds_and_expire() {
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        let mut net = Network::new(NetworkConfig::default());
        let t = Instant::from_secs(5);
        net.hold(Hold { from: a, to: b, both_directions: false, kinds: None, until: t });
        net.hold(Hold {
            from: a,
            to: c,
            both_directions: true,
            kinds: Some(vec![MessageKind::Mutation]),
            until: Instant::from_secs(7),
        });
        let now = Instant::from_secs(1);
        assert_eq!(net.held_until(a, b, MessageKind::Gossip, now), Some(t));
        assert_eq!(net.held_until(b, a, MessageKind::Gossip, now), None);
        assert_eq!(net.held_until(c, a, MessageKind::Mutation, now), Some(Instant::from_secs(7)));
        assert_eq!(net.held_until(a, c, MessageKind::Ack, now), None);
        assert_eq!(net.held_until(a, b, MessageKind::Gossip, t), None, "released at `until`");
        assert_eq!(net.holds().len(), 1);
    }
}

//! The simulated network: latency, loss and partitions. All draws are integer arithmetic on the
//! simulation's seeded generator, so they are identical on every platform.

use crate::id::NodeId;
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
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            min: Duration::from_micros(500),
            jitter: Duration::from_micros(1_500),
            tail_probability: 0.01,
            tail: Duration::from_millis(20),
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

/// Live network state.
#[derive(Clone, Debug)]
pub struct Network {
    config: NetworkConfig,
    loss_threshold: u64,
    tail_threshold: u64,
    /// Partition group of each node; nodes in different groups cannot talk. Empty = healed.
    groups: BTreeMap<NodeId, usize>,
}

impl Network {
    /// A healed network.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            loss_threshold: probability_threshold(config.loss),
            tail_threshold: probability_threshold(config.latency.tail_probability),
            config,
            groups: BTreeMap::new(),
        }
    }

    /// Configuration.
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
        d.max(1)
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

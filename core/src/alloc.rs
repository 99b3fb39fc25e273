//! TEMPORARY stand-in.
#![allow(missing_docs)]
use crate::id::NodeId;
use crate::ring::{Ring, RingError};
use serde::{Deserialize, Serialize};
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation { Random, #[default] Balanced }
pub fn build_ring<R: rand::Rng>(nodes: &[NodeId], num_tokens: usize, rf: usize, _a: Allocation, rng: &mut R) -> Result<Ring, RingError> {
    let mut v = Vec::new();
    for n in nodes { for _ in 0..num_tokens { v.push((rng.next_u64(), *n)); } }
    Ring::new(v, rf)
}

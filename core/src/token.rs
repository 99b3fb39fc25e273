//! TEMPORARY minimal stand-in (replaced by the full module).
#![allow(missing_docs)]
use serde::{Deserialize, Serialize};
pub type Token = u64;
pub fn token_for(key: &[u8]) -> Token {
    xxhash_rust::xxh3::xxh3_64(key)
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenRange {
    pub start: Token,
    pub end: Token,
}
impl TokenRange {
    pub fn contains(&self, t: Token) -> bool {
        if self.start < self.end { t > self.start && t <= self.end } else { t > self.start || t <= self.end }
    }
}

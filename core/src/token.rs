//! Tokens: positions on the hash ring, and arcs of the ring.
//!
//! A key's token is the 64-bit XXH3 hash (seed 0) of its bytes. XXH3 is pure, portable Rust in
//! `xxhash-rust`, so the same key lands on the same token on x86_64, aarch64 and wasm32; the test
//! vectors below pin the function so that any change of hash (which would silently move every key
//! to other replicas) breaks a test.
//!
//! The ring is the whole `u64` space read clockwise, wrapping from `u64::MAX` back to `0`. A vnode
//! with token `t` owns the half-open arc `(previous token, t]`, which is what [`TokenRange`]
//! describes.

use serde::{Deserialize, Serialize};

/// A position on the ring.
pub type Token = u64;

/// Number of tokens on the whole ring (2^64), as the unit of [`TokenRange::width`].
pub const RING_SIZE: u128 = 1 << 64;

/// The token of a key: XXH3-64 of its bytes with seed 0.
pub fn token_for(key: &[u8]) -> Token {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The half-open ring arc `(start, end]`, read clockwise.
///
/// When `start >= end` the arc wraps past `u64::MAX` to `0`. `start == end` is the whole ring: that
/// is the single range of a ring with one token, whose vnode owns everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenRange {
    /// Exclusive start (the previous vnode's token).
    pub start: Token,
    /// Inclusive end (the owning vnode's token).
    pub end: Token,
}

impl TokenRange {
    /// The arc `(start, end]`.
    pub fn new(start: Token, end: Token) -> Self {
        TokenRange { start, end }
    }

    /// Whether `t` lies on the arc.
    pub fn contains(&self, t: Token) -> bool {
        if self.start < self.end {
            self.start < t && t <= self.end
        } else {
            // Wrapping arc, or the whole ring when start == end: everything except (end, start].
            t > self.start || t <= self.end
        }
    }

    /// Number of tokens on the arc, from 1 up to 2^64 for the whole ring.
    pub fn width(&self) -> u128 {
        if self.start == self.end {
            RING_SIZE
        } else {
            // Modular distance clockwise from start to end; correct for wrapping arcs too.
            u128::from(self.end.wrapping_sub(self.start))
        }
    }

    /// The share of the ring covered by the arc, in `(0, 1]`.
    pub fn fraction(&self) -> f64 {
        fraction_of_ring(self.width())
    }

    /// Whether the arc is the whole ring.
    pub fn is_whole_ring(&self) -> bool {
        self.start == self.end
    }

    /// Whether the two arcs share a token. Two arcs that meet always share the clockwise end of
    /// their intersection, which is the end of one of them.
    pub fn overlaps(&self, other: &TokenRange) -> bool {
        self.contains(other.end) || other.contains(self.end)
    }
}

impl std::fmt::Display for TokenRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}]", self.start, self.end)
    }
}

/// Converts an exact token count into a share of the ring.
///
/// Division by a power of two is exact in binary floating point, so the only rounding is the one
/// of `width as f64`, which is identical on every IEEE 754 target.
pub(crate) fn fraction_of_ring(width: u128) -> f64 {
    width as f64 / RING_SIZE as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hard-coded once from xxhash-rust 0.8 (`xxh3_64`, seed 0). Never update these to make a test
    /// pass: a different value means every stored key would move to other replicas.
    #[test]
    fn token_for_is_pinned() {
        let kib: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        let vectors: [(&[u8], Token); 5] = [
            (b"", 0x2d06_8005_38d3_94c2),
            (b"a", 0xe6c6_32b6_1e96_4e1f),
            (b"user:100", 0x50ad_4090_31c3_15ac),
            (b"The quick brown fox jumps over the lazy dog", 0xce7d_19a5_418f_b365),
            (&kib, 0xe5d7_8baf_a45b_2aa5),
        ];
        for (key, expected) in vectors {
            assert_eq!(token_for(key), expected, "key of {} bytes", key.len());
        }
    }

    #[test]
    fn plain_range_is_half_open() {
        let r = TokenRange::new(100, 200);
        assert!(!r.contains(100));
        assert!(r.contains(101));
        assert!(r.contains(200));
        assert!(!r.contains(201));
        assert!(!r.contains(0));
        assert!(!r.contains(u64::MAX));
        assert_eq!(r.width(), 100);
        assert_eq!(r.fraction(), 100.0 / 2f64.powi(64));
    }

    #[test]
    fn wrapping_range_crosses_zero() {
        let r = TokenRange::new(u64::MAX - 9, 5);
        assert!(!r.contains(u64::MAX - 9));
        assert!(r.contains(u64::MAX - 8));
        assert!(r.contains(u64::MAX));
        assert!(r.contains(0));
        assert!(r.contains(5));
        assert!(!r.contains(6));
        assert!(!r.contains(1 << 63));
        // u64::MAX-8 ..= u64::MAX is 9 tokens, 0..=5 is 6 more.
        assert_eq!(r.width(), 15);
    }

    #[test]
    fn equal_bounds_are_the_whole_ring() {
        for t in [0, 7, u64::MAX] {
            let r = TokenRange::new(t, t);
            assert!(r.is_whole_ring());
            assert_eq!(r.width(), RING_SIZE);
            assert_eq!(r.fraction(), 1.0);
            for probe in [0, 1, t, t.wrapping_add(1), 1 << 63, u64::MAX] {
                assert!(r.contains(probe));
            }
        }
    }

    #[test]
    fn zero_start_and_max_end() {
        // (0, MAX] is everything but token 0; (MAX, 0] is token 0 alone.
        let most = TokenRange::new(0, u64::MAX);
        assert_eq!(most.width(), RING_SIZE - 1);
        assert!(!most.contains(0));
        let zero = TokenRange::new(u64::MAX, 0);
        assert_eq!(zero.width(), 1);
        assert!(zero.contains(0));
        assert!(!zero.contains(u64::MAX));
    }

    #[test]
    fn serde_uses_field_names() {
        let r = TokenRange::new(1, 2);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"start":1,"end":2}"#);
        assert_eq!(serde_json::from_str::<TokenRange>(&json).unwrap(), r);
        assert_eq!(r.to_string(), "(1, 2]");
    }

    proptest! {
        /// The width is exactly the number of tokens `contains` accepts: checked by splitting the
        /// ring at an arbitrary point, which partitions it into two complementary arcs.
        #[test]
        fn complementary_arcs_partition_the_ring(a: u64, b: u64, t: u64) {
            prop_assume!(a != b);
            let left = TokenRange::new(a, b);
            let right = TokenRange::new(b, a);
            prop_assert_eq!(left.width() + right.width(), RING_SIZE);
            prop_assert!(left.contains(t) != right.contains(t));
        }

        /// A token is in an arc iff its clockwise distance from the start is in 1..=width.
        #[test]
        fn contains_matches_clockwise_distance(a: u64, b: u64, t: u64) {
            let r = TokenRange::new(a, b);
            let distance = u128::from(t.wrapping_sub(a));
            let expected = if distance == 0 { r.is_whole_ring() } else { distance <= r.width() };
            prop_assert_eq!(r.contains(t), expected);
        }

        /// Two arcs overlap exactly when some token lies in both: a token in both implies it,
        /// and an overlap always has a token in both (the end it names). Small offsets make
        /// near-misses and shared ends common.
        #[test]
        fn overlaps_means_a_shared_token(a: u64, b: u64, c in 0u64..8, d in 0u64..8, t: u64) {
            let (x, y) = (TokenRange::new(a, b), TokenRange::new(b.wrapping_sub(c), a.wrapping_add(d)));
            for r in [(x, y), (y, x)] {
                if r.0.contains(t) && r.1.contains(t) {
                    prop_assert!(r.0.overlaps(&r.1));
                }
                let witness = [r.0.end, r.1.end].into_iter().find(|e| r.0.contains(*e) && r.1.contains(*e));
                prop_assert_eq!(r.0.overlaps(&r.1), witness.is_some());
            }
            // Adjacent arcs share no token.
            prop_assume!(a != b);
            prop_assert!(!TokenRange::new(a, b).overlaps(&TokenRange::new(b, a)));
        }
    }
}

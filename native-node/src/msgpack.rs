//! Decoding MessagePack that someone else sent (peer messages, client contexts) with a bounded
//! nesting depth.
//!
//! serde decodes nested arrays and maps by recursion, and some shapes of input reach that
//! recursion whatever the target type: an internally tagged enum (the engine's `Message`)
//! buffers its whole map before it knows the variant, and an unknown field is skipped by
//! decoding it. rmp-serde's own default limit (1,024 levels) is far beyond what the 2 MiB stack
//! of a tokio worker survives in a debug build, and a stack overflow aborts the whole process,
//! so one request could kill the node. Every real message of the engine nests fewer than ten
//! levels; [`MAX_DEPTH`] leaves ample room above that while keeping the worst case a few dozen
//! stack frames.

use serde::de::DeserializeOwned;

/// The deepest nesting of arrays, maps and extensions accepted in data from the network.
pub const MAX_DEPTH: usize = 64;

/// Why bytes from the network did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input nests arrays or maps deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {max} levels of arrays and maps")]
    TooDeep {
        /// The deepest nesting accepted.
        max: usize,
    },
    /// The input is not MessagePack of the expected shape.
    #[error(transparent)]
    Malformed(rmp_serde::decode::Error),
}

/// Decodes `bytes` as a `T`, refusing nesting deeper than [`MAX_DEPTH`] before it gets deep
/// enough to exhaust the stack.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde counts down from this value and fails when the count reaches zero on entering a
    // container, so `MAX_DEPTH + 1` admits exactly `MAX_DEPTH` nested levels.
    de.set_max_depth(MAX_DEPTH + 1);
    T::deserialize(&mut de).map_err(|e| match e {
        rmp_serde::decode::Error::DepthLimitExceeded => DecodeError::TooDeep { max: MAX_DEPTH },
        other => DecodeError::Malformed(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    /// `depth` nested one-element arrays around a nil.
    fn nested(depth: usize) -> Vec<u8> {
        let mut b = vec![0x91u8; depth];
        b.push(0xc0);
        b
    }

    #[test]
    fn the_limit_is_exact() {
        assert!(from_slice::<IgnoredAny>(&nested(MAX_DEPTH)).is_ok());
        let e = from_slice::<IgnoredAny>(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(e, DecodeError::TooDeep { max: MAX_DEPTH }), "{e:?}");
        assert_eq!(e.to_string(), "nested deeper than 64 levels of arrays and maps");
    }

    /// Hostile depth is refused in little stack: a thread with 256 KiB (an eighth of a tokio
    /// worker's) decodes 100,000 levels, which overflowed a 2 MiB stack before the limit.
    #[test]
    fn deep_input_is_refused_in_a_small_stack() {
        let deep = nested(100_000);
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || from_slice::<IgnoredAny>(&deep).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, Err("nested deeper than 64 levels of arrays and maps".into()));
    }

    #[test]
    fn malformed_input_keeps_the_decoder_message() {
        let e = from_slice::<(u8, u8)>(b"\x93garbage").unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e:?}");
    }
}

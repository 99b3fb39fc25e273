//! Code generated from `proto/ringside/v1/*.proto`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Package `ringside.v1`.
pub mod v1 {
    tonic::include_proto!("ringside.v1");
}

/// The encoded file descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ringside_descriptor");

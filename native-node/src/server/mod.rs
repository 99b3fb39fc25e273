//! The node side of `ringside`: everything that runs while `ringside node` is up.
//!
//! [`node`] starts a node and wires the rest together. The [`driver`] thread alone owns the
//! engine and group-commits its outputs; [`inbox`] is what the edges hand it and what it
//! answers, and the [`Peers`](inbox::Peers) its transmits leave through, so that the driver and
//! the [`transport`] (internode streams, address book) do not import each other. [`service`]
//! holds the client and operator gRPC services, [`storage`] the durable `Storage` on disk,
//! [`http`] and [`metrics`] the Prometheus endpoint, and [`clock`] the real clock in engine
//! time.

pub mod clock;
pub mod driver;
pub mod http;
pub mod inbox;
pub mod metrics;
pub mod node;
pub mod service;
pub mod storage;
pub mod transport;

//! `ringside`: the Ringside node and operator CLI.
//!
//! `ringside node` runs a node; `ringside cluster up` starts a local cluster; `status`,
//! `progress`, `put`, `get`, `delete`, `join`, `abort`, `decommission`, `repair` and `cleanup`
//! talk to a running node; `sim` runs scenarios in the deterministic simulator. The parsing and
//! the commands live in the library's [`ringside_node::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ringside_node::cli::main()
}

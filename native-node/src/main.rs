//! `ringside`: the Ringside operator CLI.
//!
//! Today it runs scenarios in the deterministic simulator (`ringside sim …`); the native node and
//! its cluster commands build on the same engine.

mod sim_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Ringside: a Dynamo/Cassandra-style replicated key-value store you can watch.
#[derive(Parser, Debug)]
#[command(name = "ringside", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios in the deterministic simulator.
    #[command(subcommand)]
    Sim(sim_cmd::SimCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(cmd) => sim_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

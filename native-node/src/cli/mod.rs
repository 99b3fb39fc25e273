//! The command-line side of `ringside`: the parsing of its command line and every command
//! that is not the node itself. [`client`] talks to a running node (`status`, `progress`,
//! `put`, `get`, `delete`, `join`, `abort`, `decommission`, `repair`, `cleanup`), [`cluster`]
//! starts a local cluster of node processes, [`loadgen`] is `bench`, and [`sim`] runs
//! scenarios in the deterministic simulator. `ringside node` hands over to
//! [`crate::server::node::run`].

pub mod client;
pub mod cluster;
pub mod course;
pub mod loadgen;
pub mod sim;

use crate::config::Settings;
use clap::{Args, Parser, Subcommand};
use client::ClientCommand;
use cluster::UpArgs;
use ringside_core::alloc::Allocation;
use ringside_core::membership::JoinStrategy;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Ringside: a Dynamo/Cassandra-style replicated key-value store you can watch.
#[derive(Parser, Debug)]
#[command(name = "ringside", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node (settings from --config, overridden by flags).
    Node(Box<NodeArgs>),
    /// Local clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    #[command(flatten)]
    Client(ClientCommand),
    /// Run scenarios in the deterministic simulator.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Course exercises: predict what the cluster does, then see what the engine did.
    #[command(subcommand)]
    Course(course::CourseCommand),
    /// Load generator: Ringside's or etcd's KV API at a fixed concurrency or rate.
    Bench(Box<crate::cli::loadgen::BenchArgs>),
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Start a local cluster of separate node processes on loopback; Ctrl-C stops it.
    Up(UpArgs),
}

/// Flags of `ringside node`; each overrides the same key of the config file.
#[derive(Args, Debug)]
struct NodeArgs {
    /// TOML config file (keys as in `ringside node --print-config`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective settings as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// gRPC address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Address advertised to peers (defaults to --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Prometheus address (empty string disables).
    #[arg(long)]
    metrics: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cluster name.
    #[arg(long)]
    cluster_name: Option<String>,
    /// Host id (random and kept in the data directory when absent).
    #[arg(long)]
    host_id: Option<u32>,
    /// Seed addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Initial cluster members as id=host:port, comma-separated.
    #[arg(long, value_delimiter = ',')]
    initial_cluster: Option<Vec<String>>,
    /// Replication factor of the initial cluster.
    #[arg(long)]
    rf: Option<usize>,
    /// Vnodes per node.
    #[arg(long)]
    num_tokens: Option<usize>,
    /// Token allocation (balanced, random).
    #[arg(long)]
    allocation: Option<Allocation>,
    /// Join strategy.
    #[arg(long)]
    strategy: Option<JoinStrategy>,
    /// Streaming throttle in MiB/s (0: unthrottled).
    #[arg(long)]
    stream_throughput_mib: Option<f64>,
    /// No hints for a replica down longer than this (e.g. 3h).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_hint_window: Option<Duration>,
    /// The rack this node is in (replicas are spread over racks), e.g. `rack1`.
    #[arg(long)]
    rack: Option<String>,
    /// Join as soon as the node is up (resumes an interrupted join).
    #[arg(long)]
    join: bool,
}

impl NodeArgs {
    fn settings(self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { s.$field = v; } )* };
        }
        set!(listen, advertise, metrics, data_dir, cluster_name, host_id, seeds, initial_cluster);
        set!(rf, num_tokens, allocation, strategy, stream_throughput_mib, max_hint_window, rack);
        s.join |= self.join;
        Ok(s)
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RINGSIDE_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,h2=warn,tower=warn,hyper=warn,fjall=warn,lsm_tree=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Parses the command line and runs the command; the exit code says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(cmd) => sim::run(cmd),
        Command::Course(cmd) => course::run(cmd),
        Command::Node(args) => {
            let print = args.print_config;
            match args.settings() {
                Ok(s) if print => {
                    print!("{}", toml::to_string(&s).expect("settings encode"));
                    Ok(ExitCode::SUCCESS)
                }
                Ok(s) => {
                    init_logging();
                    node_runtime()
                        .and_then(|rt| rt.block_on(crate::server::node::run(s)))
                        .map(|()| ExitCode::SUCCESS)
                }
                Err(e) => Err(e),
            }
        }
        Command::Cluster(ClusterCommand::Up(args)) => {
            runtime().and_then(|rt| rt.block_on(cluster::up(args))).map(|()| ExitCode::SUCCESS)
        }
        Command::Client(cmd) => {
            runtime().and_then(|rt| rt.block_on(client::run(cmd))).map(|()| ExitCode::SUCCESS)
        }
        Command::Bench(args) => runtime()
            .and_then(|rt| rt.block_on(crate::cli::loadgen::run(*args)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A node's runtime: one thread for gRPC and peer streams, beside the driver thread that owns the
/// engine. More worker threads only add cross-thread wake-ups: the work that matters is serial in
/// the driver, and a small machine often runs several nodes.
fn node_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let threads =
        std::env::var("RINGSIDE_IO_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

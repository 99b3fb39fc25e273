//! `ringside cluster up`: a local cluster of separate node processes on loopback.

use crate::cli::client;
use crate::config::Settings;
use crate::proto::v1 as pb;
use anyhow::{Context, bail};
use clap::Args;
use ringside_core::membership::JoinStrategy;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `ringside cluster up`.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Where the nodes keep their data (one directory per node, kept after stopping).
    #[arg(long, default_value = "ringside-data/cluster")]
    pub data_dir: PathBuf,
    /// gRPC port of the first node; node N listens on base + N - 1.
    #[arg(long, default_value_t = 7401)]
    pub base_port: u16,
    /// Prometheus port of the first node; 0 disables metrics.
    #[arg(long, default_value_t = 9401)]
    pub metrics_base_port: u16,
    /// Replication factor.
    #[arg(long, default_value_t = 3)]
    pub rf: usize,
    /// Join strategy.
    #[arg(long, default_value = "staged")]
    pub strategy: JoinStrategy,
    /// Cluster name.
    #[arg(long, default_value = "ringside")]
    pub cluster_name: String,
    /// Streaming throttle in MiB/s (0: unthrottled).
    #[arg(long, default_value_t = 24.0)]
    pub stream_throughput_mib: f64,
}

/// A running local cluster: its node processes.
pub struct LocalCluster {
    /// Node processes, host id 1 first.
    pub children: Vec<(u32, Child)>,
    /// gRPC addresses.
    pub addresses: Vec<String>,
    /// Data directories.
    pub dirs: Vec<PathBuf>,
}

/// Writes each node's config and starts the processes; waits until every node answers.
pub fn start(args: &UpArgs, binary: &Path) -> anyhow::Result<LocalCluster> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if (args.nodes as usize) < args.rf {
        eprintln!(
            "note: {} nodes with RF={}: QUORUM needs {} of them",
            args.nodes,
            args.rf,
            args.rf / 2 + 1
        );
    }
    let addresses: Vec<String> =
        (0..args.nodes).map(|i| format!("127.0.0.1:{}", args.base_port + i as u16)).collect();
    let initial: Vec<String> =
        addresses.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect();
    let mut cluster =
        LocalCluster { children: Vec::new(), addresses: addresses.clone(), dirs: Vec::new() };
    for (i, address) in addresses.iter().enumerate() {
        let id = i as u32 + 1;
        let dir = args.data_dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let dir = dir.canonicalize().unwrap_or(dir);
        let settings = Settings {
            listen: address.clone(),
            metrics: if args.metrics_base_port == 0 {
                String::new()
            } else {
                format!("127.0.0.1:{}", args.metrics_base_port + i as u16)
            },
            data_dir: dir.join("data"),
            cluster_name: args.cluster_name.clone(),
            host_id: id,
            initial_cluster: initial.clone(),
            rf: args.rf,
            strategy: args.strategy,
            stream_throughput_mib: args.stream_throughput_mib,
            ..Settings::default()
        };
        let config = dir.join("ringside.toml");
        std::fs::write(&config, toml::to_string(&settings).expect("settings encode"))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log = std::fs::File::create(dir.join("node.log"))
            .with_context(|| format!("cannot create {}", dir.join("node.log").display()))?;
        let child = Command::new(binary)
            .arg("node")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        cluster.children.push((id, child));
        cluster.dirs.push(dir);
    }
    Ok(cluster)
}

/// Waits until every node answers `status` (or one of them exits).
pub async fn wait_ready(cluster: &mut LocalCluster, patience: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    for (i, address) in cluster.addresses.clone().iter().enumerate() {
        loop {
            if let Some(status) = cluster.children[i].1.try_wait()? {
                bail!(
                    "node {} exited ({status}); see {}",
                    i + 1,
                    cluster.dirs[i].join("node.log").display()
                );
            }
            if let Ok(channel) = client::channel(address).await {
                let mut admin = pb::admin_client::AdminClient::new(channel);
                if admin.status(pb::StatusRequest {}).await.is_ok() {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not answer at {address} within {patience:?}; see {}",
                    i + 1,
                    cluster.dirs[i].join("node.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

impl LocalCluster {
    /// Stops every node gracefully (SIGTERM), then forcibly after a grace period.
    pub fn stop(&mut self) {
        ringside_procs::terminate_all(
            self.children.iter_mut().map(|(_, child)| child),
            Duration::from_secs(10),
        );
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ringside cluster up`: starts the cluster, prints where everything is, and stops it all on
/// Ctrl-C.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let binary = std::env::current_exe().context("cannot find the ringside binary")?;
    let mut cluster = start(&args, &binary)?;
    wait_ready(&mut cluster, Duration::from_secs(60)).await?;
    println!(
        "ringside cluster '{}' is up: {} nodes, RF={}, strategy {}",
        args.cluster_name, args.nodes, args.rf, args.strategy
    );
    for (i, address) in cluster.addresses.iter().enumerate() {
        let metrics = if args.metrics_base_port == 0 {
            String::new()
        } else {
            format!("  metrics http://127.0.0.1:{}/metrics", args.metrics_base_port + i as u16)
        };
        println!("  node {}  grpc {address}{metrics}  data {}", i + 1, cluster.dirs[i].display());
    }
    println!("try: ringside status --node {}", cluster.addresses[0]);
    println!("Ctrl-C stops every node; the data stays in {}", args.data_dir.display());
    wait_for_stop(&mut cluster).await;
    println!("stopping {} nodes…", cluster.children.len());
    cluster.stop();
    println!("stopped; data kept in {}", args.data_dir.display());
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM, reporting nodes that exit on their own.
pub async fn wait_for_stop(cluster: &mut LocalCluster) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let mut reported = vec![false; cluster.children.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, (id, child)) in cluster.children.iter_mut().enumerate() {
                    if !reported[i]
                        && let Ok(Some(status)) = child.try_wait() {
                            reported[i] = true;
                            eprintln!("node {id} exited ({status}); see {}", cluster.dirs[i].join("node.log").display());
                        }
                }
            }
        }
    }
}

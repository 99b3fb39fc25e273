//! Runs one node: storage, engine, driver thread, gRPC services (client, admin, internode,
//! health, reflection) and the Prometheus endpoint, until Ctrl-C or SIGTERM.

use crate::config::Settings;
use crate::proto::{self, v1 as pb};
use crate::server::clock::Clock;
use crate::server::driver::Driver;
use crate::server::inbox::{self, AdminCommand, Input, Peers};
use crate::server::metrics::Metrics;
use crate::server::service::{AdminService, KvService};
use crate::server::storage::DiskStorage;
use crate::server::transport::{self, Identity, InternodeService, Transport};
use anyhow::{Context, bail};
use ringside_core::alloc::agreed_ring;
use ringside_core::id::NodeId;
use ringside_core::membership::ClusterView;
use ringside_core::node::{JoinRequest, Node};
use ringside_core::storage::Storage;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const HOST_ID_KEY: &str = "native-host-id";

/// The view of the initial cluster, identical on every member: tokens allocated from a seed
/// derived from the cluster name and the member list.
pub fn initial_view(settings: &Settings) -> anyhow::Result<Option<ClusterView>> {
    let members = settings.initial_members()?;
    if members.is_empty() {
        return Ok(None);
    }
    let ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    let agreement = format!("{}|{}", settings.cluster_name, settings.initial_cluster.join(","));
    let ring = agreed_ring(&agreement, &ids, settings.num_tokens, settings.rf, settings.allocation)
        .map_err(|e| anyhow::anyhow!("cannot allocate the initial ring: {e}"))?;
    Ok(Some(ClusterView::from_ring(&ring)))
}

fn host_id(settings: &Settings, storage: &mut DiskStorage) -> anyhow::Result<NodeId> {
    let stored =
        storage.get_meta(HOST_ID_KEY)?.map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    let id = match (stored, settings.host_id) {
        (Some(s), 0) => s,
        (Some(s), c) if s == c => s,
        (Some(s), c) => bail!(
            "data directory {} belongs to host id {s}, but host_id is set to {c}; use another data_dir or remove host_id",
            settings.data_dir.display()
        ),
        (None, 0) => {
            let advertised = settings.advertised();
            match settings.initial_members()?.iter().find(|m| m.address == advertised) {
                Some(m) => m.id.0,
                None => loop {
                    let id = rand::random::<u32>() >> 1;
                    if id != 0 {
                        break id;
                    }
                },
            }
        }
        (None, c) => c,
    };
    storage.put_meta(HOST_ID_KEY, &id.to_le_bytes())?;
    storage.sync()?;
    Ok(NodeId(id))
}

/// Resolves seed addresses to host ids, retrying for up to `patience`. Seeds that belong to
/// another cluster are an error; unreachable ones are skipped after the wait.
async fn resolve_seeds(
    me: &Identity,
    seeds: &[String],
    transport: &Transport,
    patience: Duration,
) -> anyhow::Result<Vec<NodeId>> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut resolved = Vec::new();
    for address in seeds.iter().filter(|a| **a != me.address) {
        loop {
            match transport::hello(me, address).await {
                Ok(reply) => {
                    transport.learn(NodeId(reply.host_id), &reply.address);
                    resolved.push(NodeId(reply.host_id));
                    break;
                }
                Err(status) if status.code() == tonic::Code::PermissionDenied => {
                    bail!("seed {address} refused this node: {}", status.message())
                }
                Err(status) if status.code() == tonic::Code::AlreadyExists => {
                    bail!("seed {address}: {}", status.message())
                }
                Err(status) => {
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(seed = %address, reason = %status.message(), "seed unreachable; continuing without it");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
    Ok(resolved)
}

/// Runs a node until it is stopped. Returns an error for bad settings or a storage failure.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.validate()?;
    let listen: SocketAddr = settings
        .listen
        .parse()
        .with_context(|| format!("listen address `{}` is not host:port", settings.listen))?;
    let mut storage = DiskStorage::open(&settings.data_dir)?;
    let id = host_id(&settings, &mut storage)?;
    let span = tracing::info_span!("node", id = id.0);
    let _enter = span.enter();
    let me = Identity {
        id,
        cluster: settings.cluster_name.clone(),
        address: settings.advertised().to_string(),
    };
    let metrics = Arc::new(Metrics::default());
    let transport = Arc::new(Transport::new(
        me.clone(),
        tokio::runtime::Handle::current(),
        settings.data_dir.join("peers.json"),
        metrics.clone(),
    ));
    // No initial cluster and no seed but itself: a new single-node cluster (Cassandra's
    // "a seed with nobody to talk to starts a cluster").
    let alone = settings.initial_cluster.is_empty()
        && settings.seeds.iter().all(|s| s == settings.advertised());
    let initial = if alone {
        let single = Settings {
            initial_cluster: vec![format!("{}={}", id.0, settings.advertised())],
            ..settings.clone()
        };
        tracing::info!(
            "no initial_cluster and no other seed: starting a new single-node cluster; add nodes with --seeds {} and `ringside join`",
            settings.advertised()
        );
        initial_view(&single)?
    } else {
        initial_view(&settings)?
    };
    let mut seeds = Vec::new();
    if let Some(view) = &initial {
        for m in settings.initial_members()? {
            transport.learn(m.id, &m.address);
        }
        seeds.extend(view.members.keys().copied().filter(|m| *m != id));
        if !view.is_member(id) {
            bail!(
                "this node (host id {id}, address {}) is not in initial_cluster; start it with --seeds to join instead",
                me.address
            );
        }
    }

    // Serve before resolving seeds: the other members of an initial cluster resolve us too.
    let (handle, rx) = inbox::channel();
    let (traces, _) = tokio::sync::broadcast::channel(4096);
    let (health, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")?;
    let internode = pb::internode_server::InternodeServer::new(InternodeService {
        transport: transport.clone(),
        driver: handle.clone(),
        metrics: metrics.clone(),
    })
    .max_decoding_message_size(transport::MAX_FRAME)
    .max_encoding_message_size(transport::MAX_FRAME);
    let kv = pb::kv_server::KvServer::new(KvService {
        driver: handle.clone(),
        metrics: metrics.clone(),
    });
    let admin = pb::admin_server::AdminServer::new(AdminService {
        driver: handle.clone(),
        traces: traces.clone(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}: is another node using this port?"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop_grpc = stop_rx.clone();
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(internode)
            .add_service(kv)
            .add_service(admin)
            .serve_with_incoming_shutdown(
                // tonic ignores `tcp_nodelay` for a caller-provided listener: set it on each
                // accepted socket, or small replies wait for the peer's delayed ACK (~40 ms).
                tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    |socket| {
                        if let Ok(s) = &socket {
                            let _ = s.set_nodelay(true);
                        }
                        socket
                    },
                ),
                async move {
                    let _ = stop_grpc.changed().await;
                },
            ),
    );
    let metrics_task = if settings.metrics.is_empty() {
        None
    } else {
        Some(
            crate::server::http::serve_metrics(
                &settings.metrics,
                handle.clone(),
                metrics.clone(),
                stop_rx.clone(),
            )
            .await?,
        )
    };

    let seed_ids = if initial.is_none() {
        resolve_seeds(&me, &settings.seeds, &transport, Duration::from_secs(30)).await?
    } else {
        Vec::new()
    };
    seeds.extend(seed_ids);
    seeds.sort();
    seeds.dedup();

    let clock = Clock::new();
    let view = initial.unwrap_or_else(|| ClusterView::empty(settings.rf));
    let config = settings.engine_config(id, seeds);
    let node = Node::new(id, config, view, storage, clock.now())
        .map_err(|e| anyhow::anyhow!("cannot start the engine: {e}"))?;
    let lifecycle = node.lifecycle().describe();
    let joining = matches!(node.lifecycle(), ringside_core::node::Lifecycle::Joining(_));
    let driver = Driver::new(node, clock, transport.clone(), metrics.clone(), traces.clone(), rx);
    let driver_thread = std::thread::Builder::new()
        .name(format!("ringside-driver-{}", id.0))
        .spawn(move || tracing::info_span!("node", id = id.0).in_scope(|| driver.run()))
        .context("cannot start the driver thread")?;
    health.set_serving::<pb::kv_server::KvServer<KvService>>().await;
    tracing::info!(address = %me.address, data_dir = %settings.data_dir.display(), %lifecycle, "node started");
    println!(
        "ringside node {} of cluster '{}' listening on {} (data in {}, {lifecycle})",
        id.0,
        settings.cluster_name,
        me.address,
        settings.data_dir.display()
    );

    if settings.join {
        // The answer comes once the cluster admitted the join (or refused it), which may take a
        // while: wait for it beside the signal handling, not before it.
        let resume = joining;
        let handle = handle.clone();
        tokio::spawn(async move {
            let outcome = handle
                .ask(|reply| Input::Admin {
                    command: AdminCommand::Join(JoinRequest { resume, ..JoinRequest::default() }),
                    reply,
                })
                .await;
            match outcome {
                Some(Ok(outcome)) => tracing::info!(resume, ?outcome, "join admitted"),
                Some(Err(e)) => tracing::warn!(reason = %e, "join not started"),
                None => {}
            }
        });
    }

    // Wait for a signal, or for the driver to stop on its own (storage failure).
    let driver_done = tokio::task::spawn_blocking(move || driver_thread.join());
    tokio::pin!(driver_done);
    let result = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("stopping");
            handle.send(Input::Shutdown);
            match (&mut driver_done).await {
                Ok(Ok(r)) => r,
                _ => Err("driver thread panicked".into()),
            }
        }
        r = &mut driver_done => match r {
            Ok(Ok(r)) => r,
            _ => Err("driver thread panicked".into()),
        },
    };
    let _ = stop_tx.send(true);
    health.set_not_serving::<pb::kv_server::KvServer<KvService>>().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), grpc).await;
    if let Some(task) = metrics_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    result.map_err(|e| anyhow::anyhow!("node stopped: {e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

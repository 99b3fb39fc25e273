//! Generates the gRPC code from `proto/` with the vendored `protoc` (no system install needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/ringside/v1/kv.proto",
        "proto/ringside/v1/admin.proto",
        "proto/ringside/v1/internode.proto",
    ];
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("ringside_descriptor.bin"))
        .bytes(".ringside.v1.Batch.messages")
        .compile_with_config(config, &protos, &["proto"])?;
    // A trimmed etcd v3 KV client, for `ringside bench --target etcd`.
    let mut etcd = prost_build::Config::new();
    etcd.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_server(false).compile_with_config(
        etcd,
        &["proto/etcd/kv.proto"],
        &["proto"],
    )?;
    Ok(())
}

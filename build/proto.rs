//! Generates the gRPC code from proto/ with a pure-Rust toolchain: `protox`
//! parses the .proto files into a descriptor set and `tonic-prost-build`
//! turns that into Rust. Nothing (no `protoc`) needs to be installed.
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "mxaccess_gateway/v1/mxaccess_gateway.proto",
    "galaxy_repository/v1/galaxy_repository.proto",
    "mxpva_sim/v1/control.proto",
];

pub fn build() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .join("proto");
    println!("cargo:rerun-if-changed=build/proto.rs");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let fds = match protox::compile(&files, [&root]) {
        Ok(fds) => fds,
        Err(e) => panic!("proto/ does not compile: {e:?}"),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The alarm transition is the one large body of an event; boxed, every
        // MxEvent is under half its size, and the stream's events move that much less.
        .boxed(".mxaccess_gateway.v1.MxEvent.body.on_alarm_transition")
        .compile_fds(fds)
    {
        panic!("generating gRPC code from proto/ failed: {e}");
    }
}

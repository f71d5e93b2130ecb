//! Build script: compiles the pvxs shim (build/pvxs.rs) and generates the
//! gateway gRPC code from proto/ (build/proto.rs).

#[path = "build/proto.rs"]
mod proto;
#[path = "build/pvxs.rs"]
mod pvxs;

fn main() {
    pvxs::build();
    proto::build();
}

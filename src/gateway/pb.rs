//! Generated protobuf and gRPC code. Private to the crate: nothing outside
//! `gateway` and `sim` sees these types.
#![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]

pub(crate) mod gw {
    tonic::include_proto!("mxaccess_gateway.v1");
}
pub(crate) mod galaxy {
    tonic::include_proto!("galaxy_repository.v1");
}
pub(crate) mod control {
    tonic::include_proto!("mxpva_sim.v1");
}

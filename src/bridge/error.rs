//! Why the bridge could not start (a leaf: every part may name it).

use crate::pva;

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("PVAccess server: {0}")]
    Pva(#[from] pva::PvaError),
    #[error("gateway API key: {0}")]
    ApiKey(String),
    #[error("access security: {0}")]
    Access(#[from] crate::access::AccessError),
    #[error("audit trail: cannot start its writer: {0}")]
    Audit(std::io::Error),
}

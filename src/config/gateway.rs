//! Where the config meets the gateway client: the client options `[gateway]` and
//! `[limits]` make, and the PV type an MXAccess type is served as by default. Both the
//! bridge and `mxpva discover` use them.

use super::{Gateway, Limits, PvType, ScalarType};
use crate::gateway::{ApiKey, ClientOptions, MxDataType, TlsOptions, ValueLimits};

/// The API key of `[gateway]` cannot be read or is not a valid key.
#[derive(Debug, thiserror::Error)]
#[error("gateway API key: {0}")]
pub struct ApiKeyError(pub String);

/// How a client reaches the gateway, resolved from `[gateway]`, and the caps on what it
/// decodes, from `[limits]`.
pub fn client_options(gw: &Gateway, limits: &Limits) -> Result<ClientOptions, ApiKeyError> {
    let mut opts = ClientOptions::plaintext(gw.endpoint.clone());
    opts.limits = ValueLimits {
        max_array_length: limits.max_array_length,
        max_string_length: limits.max_string_length,
    };
    opts.connect_timeout = gw.connect_timeout;
    opts.request_timeout = gw.request_timeout;
    opts.keepalive_interval = gw.keepalive_interval;
    opts.keepalive_timeout = gw.keepalive_timeout;
    if let Some(key) = gw.api_key.load().map_err(|e| ApiKeyError(e.to_string()))? {
        let key = ApiKey::new(key.expose()).map_err(|e| ApiKeyError(e.to_string()))?;
        opts = opts.with_api_key(key);
    }
    if gw.tls.enabled {
        opts.tls = Some(TlsOptions {
            ca_file: gw.tls.ca_file.clone(),
            server_name: gw.tls.server_name.clone(),
        });
    }
    Ok(opts)
}

/// The PV type an attribute of type `t` is served as by default.
pub fn default_pv_type(t: MxDataType, array: bool, bool_as_enum: bool) -> Option<PvType> {
    let scalar = match t {
        MxDataType::Boolean if bool_as_enum && !array => return Some(PvType::Enum),
        MxDataType::Boolean => ScalarType::Bool,
        MxDataType::Integer => ScalarType::Int32,
        MxDataType::LongInteger => ScalarType::Int64,
        MxDataType::Float => ScalarType::Float32,
        MxDataType::Double | MxDataType::ElapsedTime => ScalarType::Float64,
        MxDataType::String
        | MxDataType::Time
        | MxDataType::BigString
        | MxDataType::InternationalizedString
        | MxDataType::ReferenceType => ScalarType::String,
        _ => return None,
    };
    Some(if array {
        PvType::Array(scalar)
    } else {
        PvType::Scalar(scalar)
    })
}

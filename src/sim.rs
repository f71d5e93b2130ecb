//! The MXAccess Gateway simulator. (Filled in by the gateway issue.)

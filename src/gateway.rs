//! The MXAccess Gateway client. (Filled in by the gateway issue.)

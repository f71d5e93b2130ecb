//! One served PV, and the events pvxs callbacks send to Rust.

use std::sync::Arc;

use cxx::UniquePtr;
use tokio::sync::mpsc;

use super::error::PvaError;
use super::ffi::bridge::{self, PutOp, PvHandle, WirePut};
use super::put::{Credentials, PutCompletion, PutRequest};
use super::value::{pv_type_of, NtValue, PvType, Shape, Update};

/// Whether clients may put to a PV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Puts are refused at once with "<pv> is read-only".
    ReadOnly,
    /// Puts arrive as [`PvEvent::Put`].
    ReadWrite,
}

/// What pvxs tells Rust about a PV.
#[derive(Debug)]
pub enum PvEvent {
    /// A client's put on a writable PV.
    Put(PutRequest),
    /// The first client attached to the PV.
    Connected { pv: Arc<str> },
    /// The last client left the PV.
    Disconnected { pv: Arc<str> },
}

/// Where PVs send their events; one sender may serve many PVs.
pub type EventSender = mpsc::UnboundedSender<PvEvent>;
pub type EventReceiver = mpsc::UnboundedReceiver<PvEvent>;

/// A channel for [`PvEvent`]s. Unbounded, because pvxs callbacks must never block; it
/// carries only puts and connection changes, which clients pace.
pub fn event_channel() -> (EventSender, EventReceiver) {
    mpsc::unbounded_channel()
}

/// What the C++ callbacks of one PV carry back into Rust.
pub struct PvContext {
    name: Arc<str>,
    access: Access,
    /// Where puts and connection events go; a closed channel answers puts with an error.
    events: EventSender,
}

impl PvContext {
    pub(crate) fn new(name: Arc<str>, access: Access, events: &EventSender) -> Self {
        PvContext {
            name,
            access,
            events: events.clone(),
        }
    }
}

/// Called by pvxs on its worker thread: must not block, must not panic.
pub(crate) fn on_put(ctx: &PvContext, put: WirePut, op: UniquePtr<PutOp>) {
    let completion = PutCompletion::new(op);
    if ctx.access == Access::ReadOnly {
        tracing::debug!(pv = %ctx.name, peer = %put.peer, "put to a read-only PV refused");
        completion.complete(Err(format!("{} is read-only: put refused", ctx.name)));
        return;
    }
    if !put.error.is_empty() {
        completion.complete(Err(format!(
            "{}: cannot read the put: {}",
            ctx.name, put.error
        )));
        return;
    }
    let Some(ty) = pv_type_of(put.kind, put.array, put.nt_enum) else {
        completion.complete(Err(format!("{}: unsupported value type", ctx.name)));
        return;
    };
    let request = PutRequest {
        pv: ctx.name.clone(),
        value: put.has_value.then(|| NtValue::from_wire(ty, put.data)),
        marked: put.marked,
        credentials: Credentials {
            peer: put.peer,
            iface: put.iface,
            method: put.method,
            account: put.account,
        },
        completion,
    };
    // If nobody listens any more, the request (and its completion) is dropped here, which
    // answers the client with an error.
    let _ = ctx.events.send(PvEvent::Put(request));
}

/// Called by pvxs on its worker thread: must not block, must not panic.
pub(crate) fn on_connection(ctx: &PvContext, connected: bool) {
    let pv = ctx.name.clone();
    let _ = ctx.events.send(if connected {
        PvEvent::Connected { pv }
    } else {
        PvEvent::Disconnected { pv }
    });
}

/// A PV served by a [`Server`](super::Server): a pvxs SharedPV.
///
/// Clients that connect before [`SharedPv::open`] wait for it. Dropping a `SharedPv`
/// closes it; remove it from the server to stop serving the name.
pub struct SharedPv {
    name: Arc<str>,
    handle: UniquePtr<PvHandle>,
    /// The structure it was last opened with; `None` before the first open.
    shape: Option<Shape>,
}

impl std::fmt::Debug for SharedPv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPv")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("open", &self.is_open())
            .finish()
    }
}

impl SharedPv {
    pub fn new(name: &str, access: Access, events: &EventSender) -> Result<Self, PvaError> {
        if name.is_empty() {
            return Err(PvaError::Invalid {
                pv: name.to_string(),
                reason: "empty name".to_string(),
            });
        }
        let name: Arc<str> = Arc::from(name);
        let ctx = Box::new(PvContext::new(name.clone(), access, events));
        let handle =
            bridge::pv_new(ctx).map_err(|e| PvaError::native(format!("create PV {name}"), e))?;
        Ok(SharedPv {
            name,
            handle,
            shape: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn handle(&self) -> &PvHandle {
        &self.handle
    }

    /// The structure the PV has while open.
    pub fn shape(&self) -> Option<Shape> {
        self.shape
    }

    /// Opens the PV as `pv_type` with `initial`, which also decides whether `display`,
    /// `control` and `valueAlarm` exist (see [`Update`]). Waiting clients connect now.
    pub fn open(&mut self, pv_type: PvType, initial: &Update) -> Result<(), PvaError> {
        if self.is_open() {
            return Err(PvaError::AlreadyOpen {
                pv: self.name.to_string(),
            });
        }
        let shape = Shape::of(pv_type, initial);
        self.check(shape, initial)?;
        self.handle
            .open(&shape.to_wire(), &initial.to_wire())
            .map_err(|e| PvaError::native(format!("open {}", self.name), e))?;
        self.shape = Some(shape);
        Ok(())
    }

    /// Posts the fields `update` carries; the others keep their values.
    pub fn post(&self, update: &Update) -> Result<(), PvaError> {
        let not_open = || PvaError::NotOpen {
            pv: self.name.to_string(),
        };
        let shape = self.shape.ok_or_else(not_open)?;
        self.check(shape, update)?;
        // pvxs refuses a post to a closed PV, so no separate (locking) is-open call here.
        self.handle.post(&update.to_wire()).map_err(|e| {
            if self.is_open() {
                PvaError::native(format!("post to {}", self.name), e)
            } else {
                not_open()
            }
        })
    }

    /// Closes the PV: clients are disconnected and new ones wait for the next open.
    pub fn close(&mut self) -> Result<(), PvaError> {
        self.handle
            .close()
            .map_err(|e| PvaError::native(format!("close {}", self.name), e))
    }

    pub fn is_open(&self) -> bool {
        self.handle.is_open()
    }

    /// The PV's whole current state, read back from pvxs.
    pub fn current(&self) -> Result<Update, PvaError> {
        let shape = self.shape.ok_or_else(|| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        let wire = self.handle.current().map_err(|_| PvaError::NotOpen {
            pv: self.name.to_string(),
        })?;
        Ok(Update::from_wire(shape.pv_type, wire))
    }

    /// Rejects an update the PV's structure cannot hold.
    fn check(&self, shape: Shape, update: &Update) -> Result<(), PvaError> {
        if let Some(value) = &update.value {
            if value.pv_type() != shape.pv_type {
                return Err(PvaError::TypeMismatch {
                    pv: self.name.to_string(),
                    expected: shape.pv_type,
                    got: value.pv_type(),
                });
            }
        }
        let numeric = match shape.pv_type {
            PvType::Scalar(t) | PvType::Array(t) => t.is_numeric(),
            PvType::Enum => false,
        };
        let missing = |field| {
            Err(PvaError::FieldNotInStructure {
                pv: self.name.to_string(),
                field,
            })
        };
        if update.choices.is_some() && shape.pv_type != PvType::Enum {
            return missing("value.choices");
        }
        if update.display.is_some() && !shape.display {
            return missing("display");
        }
        if (update.control.is_some() && !(shape.control && numeric))
            || (update.value_alarm.is_some() && !(shape.value_alarm && numeric))
        {
            return missing(if update.control.is_some() {
                "control"
            } else {
                "valueAlarm"
            });
        }
        Ok(())
    }
}

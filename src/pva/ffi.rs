//! The one `#[cxx::bridge]` of mxpva: the boundary to the pvxs shim in cpp/.
//!
//! Three sections, as in the cxx book: shared structs, the Rust functions pvxs callbacks
//! call, and the C++ functions Rust calls. Everything here is crate-private; the safe
//! face is in the sibling modules. Strings cross as `rust::Str` / `rust::String` and are
//! turned into `std::string` from `(data, size)` on the C++ side, because the pvxs wheels
//! use the old libstdc++ string ABI.

#![allow(unsafe_code)]

#[cxx::bridge(namespace = "mxpva")]
pub(crate) mod bridge {
    // ----------------------------------------------------------------- shared structs

    /// Which parts of a `WireUpdate` are carried (bits of `WireUpdate::fields`).
    #[repr(u32)]
    enum FieldBit {
        Value = 1,
        Alarm = 2,
        TimeStamp = 4,
        Display = 8,
        Control = 16,
        ValueAlarm = 32,
        Choices = 64,
        /// `WireUpdate::columns`: the whole `value` of an NTTable.
        Table = 128,
        /// Of `WireUpdate::time`, the nanoseconds alone (its seconds and user tag are
        /// those the PV holds): `timeStamp.nanoseconds` is marked, the rest is not.
        TimeNanos = 256,
    }

    /// The element type of a PV's `value` field.
    #[derive(Debug, Hash)]
    #[repr(u8)]
    enum ScalarKind {
        Bool,
        Int8,
        Int16,
        Int32,
        Int64,
        UInt8,
        UInt16,
        UInt32,
        UInt64,
        Float32,
        Float64,
        String,
    }

    /// What structure a SharedPV is opened with.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct WireShape {
        kind: ScalarKind,
        /// NTScalarArray instead of NTScalar.
        array: bool,
        /// NTEnum (`kind` is ignored).
        nt_enum: bool,
        display: bool,
        control: bool,
        value_alarm: bool,
    }

    /// A value in transit. Which member is meaningful follows from the PV's shape:
    /// `b`/`i`/`u`/`f`/`s` for scalars, the vector of the element type for arrays,
    /// `index` for NTEnum. Scalar signed integers travel as i64, unsigned as u64, floats
    /// as f64; arrays in their own element type, so that they are copied once, into pvxs.
    #[derive(Debug, Clone, Default)]
    struct WireData {
        b: bool,
        i: i64,
        u: u64,
        f: f64,
        s: String,
        bools: Vec<bool>,
        i8s: Vec<i8>,
        i16s: Vec<i16>,
        i32s: Vec<i32>,
        ints: Vec<i64>,
        u8s: Vec<u8>,
        u16s: Vec<u16>,
        u32s: Vec<u32>,
        uints: Vec<u64>,
        f32s: Vec<f32>,
        floats: Vec<f64>,
        strings: Vec<String>,
        index: i32,
    }

    #[derive(Debug, Clone, Default)]
    struct WireAlarm {
        severity: i32,
        status: i32,
        message: String,
    }

    #[derive(Debug, Clone, Copy, Default)]
    struct WireTime {
        seconds: i64,
        nanos: i32,
        user_tag: i32,
    }

    #[derive(Debug, Clone, Default)]
    struct WireDisplay {
        limit_low: f64,
        limit_high: f64,
        description: String,
        units: String,
        precision: i32,
        form: i32,
    }

    #[derive(Debug, Clone, Copy, Default)]
    struct WireControl {
        limit_low: f64,
        limit_high: f64,
        min_step: f64,
    }

    #[derive(Debug, Clone, Copy, Default)]
    struct WireValueAlarm {
        active: bool,
        low_alarm_limit: f64,
        low_warning_limit: f64,
        high_warning_limit: f64,
        high_alarm_limit: f64,
        low_alarm_severity: i32,
        low_warning_severity: i32,
        high_warning_severity: i32,
        high_alarm_severity: i32,
        hysteresis: f64,
    }

    /// One post: `fields` says which of the members below are carried (`FieldBit`s);
    /// the others are ignored and stay unmarked.
    #[derive(Debug, Clone, Default)]
    struct WireUpdate {
        fields: u32,
        data: WireData,
        choices: Vec<String>,
        alarm: WireAlarm,
        time: WireTime,
        display: WireDisplay,
        control: WireControl,
        value_alarm: WireValueAlarm,
        /// NTTable columns, in the table's column order; each holds the array member
        /// (`bools`, `ints`, `uints`, `floats` or `strings`) its column's kind uses.
        columns: Vec<WireData>,
    }

    /// One column of an NTTable: `value.<name>`, an array of `kind`, shown as `label`.
    #[derive(Debug, Clone)]
    struct WireColumn {
        name: String,
        label: String,
        kind: ScalarKind,
    }

    /// What a client's put carried, read on the pvxs worker thread.
    #[derive(Debug, Clone)]
    struct WirePut {
        /// The structure the client's value has (the PV's type when the put was made).
        kind: ScalarKind,
        array: bool,
        nt_enum: bool,
        /// The client marked `value` (or `value.index` of an NTEnum).
        has_value: bool,
        data: WireData,
        /// Every field the client marked, by full name (`value`, `alarm.severity`, ...).
        marked: Vec<String>,
        peer: String,
        iface: String,
        method: String,
        account: String,
        /// The account's roles (OS groups), looked up only while an ACF is in force.
        roles: Vec<String>,
        /// Why the shim could not read the value (empty when it could); a read-only PV
        /// refuses the put before this matters.
        error: String,
    }

    /// How to configure a server. `base` is 0 for pvxs defaults, 1 for `EPICS_PVAS_*`,
    /// 2 for an isolated loopback server on random ports; each `set_*` overrides one
    /// setting on top of the base.
    #[derive(Debug, Clone, Default)]
    struct WireServerSettings {
        base: u8,
        set_interfaces: bool,
        interfaces: Vec<String>,
        set_beacon_destinations: bool,
        beacon_destinations: Vec<String>,
        set_tcp_port: bool,
        tcp_port: u16,
        set_udp_port: bool,
        udp_port: u16,
        set_auto_beacon: bool,
        auto_beacon: bool,
    }

    /// The configuration a server actually uses (ports resolved after bind).
    #[derive(Debug, Clone, Default)]
    struct WireServerInfo {
        interfaces: Vec<String>,
        beacon_destinations: Vec<String>,
        tcp_port: u16,
        udp_port: u16,
        auto_beacon: bool,
        /// `NAME=VALUE` settings for a client of this server (EPICS_PVA_*).
        client_env: Vec<String>,
    }

    /// One client connection as pvxs's own server report gives it (`Server::report`).
    #[derive(Debug, Clone, Default)]
    struct WireClient {
        /// `IP:port`.
        peer: String,
        /// Authentication method (`anonymous`, `ca`) and the account the client claims.
        method: String,
        account: String,
        /// Channels open through this connection.
        channels: u32,
        /// Bytes sent to and received from the client since it connected.
        tx: u64,
        rx: u64,
    }

    /// One access security group of a loaded ACF, with its INP links (`INPA(...)`).
    #[derive(Debug, Clone, Default)]
    struct WireAcfGroup {
        name: String,
        inputs: Vec<String>,
    }

    /// What asLib made of an ACF: its groups, and what it reported while loading that did
    /// not stop it (an unresolved HAG host, a duplicate user).
    #[derive(Debug, Clone, Default)]
    struct WireAcfSummary {
        groups: Vec<WireAcfGroup>,
        warnings: Vec<String>,
    }

    /// A PV's access security group and level, for the read gate.
    #[derive(Debug, Clone, Default)]
    struct WireAcfPv {
        name: String,
        group: String,
        level: i32,
    }

    /// The access one client has to one group at one level.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct WireAccess {
        read: bool,
        write: bool,
        /// The rule that grants the write asks for TRAPWRITE.
        trap: bool,
    }

    // ------------------------------------------------- Rust called from pvxs callbacks

    extern "Rust" {
        /// Per-PV state that the C++ callbacks carry: the PV name and the event sender.
        type PvContext;

        /// A client's put arrived. Must not block: it hands the op to a channel.
        fn on_put(ctx: &PvContext, put: WirePut, op: UniquePtr<PutOp>);

        /// The first client attached (`true`) or the last one left (`false`).
        fn on_connection(ctx: &PvContext, connected: bool);

        /// One message of EPICS errlog (pvxs's own log lines), once routed there by
        /// `route_native_log`. Called on errlog's thread.
        fn on_native_log(message: &[u8]);

        /// The read gate refused an operation (`get`, `put`, `monitor`, `rpc`) of a client
        /// without READ access (cpp/access.h).
        fn on_read_denied(pv: String, group: String, account: String, host: String, op: &str);

        /// The account of a client as the rules see it (`crate::pva::access::acf_user`).
        fn acf_user(method: &str, account: &str) -> String;

        /// The read gate refused a put (after `on_read_denied`), for the audit trail.
        fn on_read_denied_put(
            pv: String,
            group: String,
            account: String,
            host: String,
            method: String,
        );
    }

    // ---------------------------------------------------------------- C++ the shim offers

    unsafe extern "C++" {
        include!("cpp/shim.h");

        /// A pvxs::server::Server.
        type PvServer;
        /// A pvxs::server::SharedPV with the prototype value it posts.
        type PvHandle;
        /// One client put awaiting its reply. Dropping it unanswered replies with an error.
        type PutOp;

        fn server_new(settings: &WireServerSettings) -> Result<UniquePtr<PvServer>>;
        fn start(self: &PvServer) -> Result<()>;
        /// Asks the started server for a way onto its loop (cpp/loop.h), waiting up to
        /// `timeout` seconds: 1 when the turns' posts and put replies now run there, 2
        /// when another server of this process holds it, 0 when not reached.
        fn reach_loop(self: &PvServer, timeout: f64) -> Result<u8>;
        /// Whether this server's loop runs the turns' posts and put replies.
        fn holds_loop(self: &PvServer) -> bool;
        fn stop(self: &PvServer) -> Result<()>;
        fn info(self: &PvServer) -> Result<WireServerInfo>;
        /// The connected clients, from pvxs's server report (counters not zeroed).
        fn clients(self: &PvServer) -> Result<Vec<WireClient>>;
        fn add_pv(self: &PvServer, name: &str, pv: &PvHandle) -> Result<()>;
        fn remove_pv(self: &PvServer, name: &str) -> Result<()>;

        fn pv_new(ctx: Box<PvContext>) -> Result<UniquePtr<PvHandle>>;
        /// `Pin<&mut>`: what the PV is changes, with nothing else using it (the shim's
        /// handle has no lock of its own).
        fn open(self: Pin<&mut PvHandle>, shape: &WireShape, initial: &WireUpdate) -> Result<()>;
        /// Opens the PV as an NTTable of `columns`; posts then carry `FieldBit::Table`.
        fn open_table(
            self: Pin<&mut PvHandle>,
            columns: &[WireColumn],
            initial: &WireUpdate,
        ) -> Result<()>;
        fn post(self: &PvHandle, update: &WireUpdate) -> Result<()>;
        /// [`post`] of an update not needed afterwards: while posts are handed to pvxs's
        /// loop, its parts move to the shim (`update` is left empty) and the value is
        /// built there, where the post is made, instead of copied in between.
        fn post_moved(self: &PvHandle, update: &mut WireUpdate) -> Result<()>;
        fn close(self: &PvHandle) -> Result<()>;
        fn is_open(self: &PvHandle) -> bool;
        /// The current value as the shim holds it (for tests and diagnostics).
        fn current(self: &PvHandle) -> Result<WireUpdate>;

        fn reply_ok(self: Pin<&mut PutOp>) -> Result<()>;
        fn reply_error(self: Pin<&mut PutOp>, message: &str) -> Result<()>;
        /// The client cancelled or went away before the reply.
        fn is_cancelled(self: &PutOp) -> bool;

        /// asLib (cpp/access.h): every call holds the shim's one asLib lock.
        fn acf_load(text: &str) -> Result<WireAcfSummary>;
        fn acf_check(
            group: &str,
            level: i32,
            user: &str,
            host: &str,
            roles: &[String],
        ) -> Result<WireAccess>;
        /// The address asLib would make of a HAG host ("a.b.c.d"), empty when it does
        /// not resolve. Blocks on the resolver: never on pvxs's threads or the bridge's.
        fn acf_resolve_host(host: &str) -> String;
        fn acf_want_roles(on: bool);
        /// Decides every open channel again with the rules in force and closes those whose
        /// READ changed (cpp/gate.h). Blocks: called on a thread of its own.
        fn acf_recheck_channels() -> u32;
        fn acf_set_read_rules(active: bool, pvs: &[WireAcfPv], other_group: &str, other_level: i32);

        /// This thread collects its posts and put replies (cpp/handoff.h) until
        /// `handoff_end`.
        fn handoff_begin();
        /// Posts and put replies this thread collected or that wait for pvxs's loop.
        fn handoff_waiting() -> usize;
        /// Stops collecting and makes what was collected, in order; why any failed.
        fn handoff_end() -> Result<Vec<String>>;

        /// Apply `PVXS_LOG` (pvxs logger levels) from the environment.
        fn configure_logging_from_env() -> Result<()>;
        /// Sends errlog's messages (pvxs's log lines) to `on_native_log` instead of the
        /// console.
        fn route_native_log() -> Result<()>;
    }
}

// The C++ objects are handles whose methods pvxs makes safe to call from any thread:
// a put reply is dispatched onto the server's event loop, and the shim guards its own
// state with a mutex it never holds across a pvxs call.
unsafe impl Send for bridge::PvServer {}
unsafe impl Sync for bridge::PvServer {}
unsafe impl Send for bridge::PvHandle {}
unsafe impl Sync for bridge::PvHandle {}
unsafe impl Send for bridge::PutOp {}

pub(crate) use super::access::{acf_user, on_read_denied, on_read_denied_put};
pub(crate) use super::native_log::on_native_log;
pub(crate) use super::shared_pv::{on_connection, on_put, PvContext};

//! Domain types of the gateway client: what the rest of mxpva sees.
use std::fmt;
use std::time::{Duration, SystemTime};

/// An MXAccess server handle, returned by `Register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerHandle(pub i32);

/// An MXAccess item handle, returned by `AddItem`. Unique within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemHandle(pub i32);

/// An MXAccess user id, from `AuthenticateUser`. 0 means "no user".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct UserId(pub i32);

/// MXAccess data types, native numbering (`MxDataType` of the COM toolkit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxDataType {
    Unknown,
    NoData,
    Boolean,
    /// 32-bit signed integer.
    Integer,
    /// 32-bit float.
    Float,
    Double,
    String,
    /// Absolute time (FILETIME in COM).
    Time,
    /// A duration (100 ns ticks in COM).
    ElapsedTime,
    ReferenceType,
    StatusType,
    DataTypeEnum,
    SecurityClassificationEnum,
    DataQualityType,
    QualifiedEnum,
    QualifiedStruct,
    InternationalizedString,
    BigString,
    /// Gateway-only arm: 64-bit integer.
    LongInteger,
}

impl MxDataType {
    /// The native MxDataType code (-1 .. 16). `LongInteger` has none and maps to -1.
    pub fn native_code(self) -> i32 {
        use MxDataType::*;
        match self {
            Unknown | LongInteger => -1,
            NoData => 0,
            Boolean => 1,
            Integer => 2,
            Float => 3,
            Double => 4,
            String => 5,
            Time => 6,
            ElapsedTime => 7,
            ReferenceType => 8,
            StatusType => 9,
            DataTypeEnum => 10,
            SecurityClassificationEnum => 11,
            DataQualityType => 12,
            QualifiedEnum => 13,
            QualifiedStruct => 14,
            InternationalizedString => 15,
            BigString => 16,
        }
    }

    /// From a native MxDataType code.
    pub fn from_native_code(code: i32) -> Self {
        use MxDataType::*;
        match code {
            0 => NoData,
            1 => Boolean,
            2 => Integer,
            3 => Float,
            4 => Double,
            5 => String,
            6 => Time,
            7 => ElapsedTime,
            8 => ReferenceType,
            9 => StatusType,
            10 => DataTypeEnum,
            11 => SecurityClassificationEnum,
            12 => DataQualityType,
            13 => QualifiedEnum,
            14 => QualifiedStruct,
            15 => InternationalizedString,
            16 => BigString,
            _ => Unknown,
        }
    }

    /// The name used by System Platform ("Double", "ElapsedTime", ...).
    pub fn name(self) -> &'static str {
        use MxDataType::*;
        match self {
            Unknown => "Unknown",
            NoData => "NoData",
            Boolean => "Boolean",
            Integer => "Integer",
            Float => "Float",
            Double => "Double",
            String => "String",
            Time => "Time",
            ElapsedTime => "ElapsedTime",
            ReferenceType => "ReferenceType",
            StatusType => "StatusType",
            DataTypeEnum => "DataTypeEnum",
            SecurityClassificationEnum => "SecurityClassificationEnum",
            DataQualityType => "DataQualityType",
            QualifiedEnum => "QualifiedEnum",
            QualifiedStruct => "QualifiedStruct",
            InternationalizedString => "InternationalizedString",
            BigString => "BigString",
            LongInteger => "LongInteger",
        }
    }

    /// Parse a name as written in config files (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        use MxDataType::*;
        const ALL: [MxDataType; 19] = [
            Unknown,
            NoData,
            Boolean,
            Integer,
            Float,
            Double,
            String,
            Time,
            ElapsedTime,
            ReferenceType,
            StatusType,
            DataTypeEnum,
            SecurityClassificationEnum,
            DataQualityType,
            QualifiedEnum,
            QualifiedStruct,
            InternationalizedString,
            BigString,
            LongInteger,
        ];
        ALL.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for MxDataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole array value (one dimension, as Application Server uses).
#[derive(Clone, Debug, PartialEq)]
pub enum MxArray {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    String(Vec<String>),
    Time(Vec<SystemTime>),
    Elapsed(Vec<Duration>),
}

impl MxArray {
    pub fn len(&self) -> usize {
        match self {
            MxArray::Bool(v) => v.len(),
            MxArray::Int32(v) => v.len(),
            MxArray::Int64(v) => v.len(),
            MxArray::Float(v) => v.len(),
            MxArray::Double(v) => v.len(),
            MxArray::String(v) => v.len(),
            MxArray::Time(v) => v.len(),
            MxArray::Elapsed(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at a 0-based index, as a scalar value.
    pub fn get(&self, index: usize) -> Option<MxValue> {
        Some(match self {
            MxArray::Bool(v) => MxValue::Bool(*v.get(index)?),
            MxArray::Int32(v) => MxValue::Int32(*v.get(index)?),
            MxArray::Int64(v) => MxValue::Int64(*v.get(index)?),
            MxArray::Float(v) => MxValue::Float(*v.get(index)?),
            MxArray::Double(v) => MxValue::Double(*v.get(index)?),
            MxArray::String(v) => MxValue::String(v.get(index)?.clone()),
            MxArray::Time(v) => MxValue::Time(*v.get(index)?),
            MxArray::Elapsed(v) => MxValue::Elapsed(*v.get(index)?),
        })
    }

    /// The element type.
    pub fn element_type(&self) -> MxDataType {
        match self {
            MxArray::Bool(_) => MxDataType::Boolean,
            MxArray::Int32(_) => MxDataType::Integer,
            MxArray::Int64(_) => MxDataType::LongInteger,
            MxArray::Float(_) => MxDataType::Float,
            MxArray::Double(_) => MxDataType::Double,
            MxArray::String(_) => MxDataType::String,
            MxArray::Time(_) => MxDataType::Time,
            MxArray::Elapsed(_) => MxDataType::ElapsedTime,
        }
    }
}

/// A typed MXAccess value.
#[derive(Clone, Debug, PartialEq)]
pub enum MxValue {
    /// No value (VT_EMPTY), e.g. before the first data change.
    Null,
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Float(f32),
    Double(f64),
    String(String),
    Time(SystemTime),
    Elapsed(Duration),
    Array(MxArray),
    /// Opaque pass-through that MXAccess does not interpret.
    Bytes(Vec<u8>),
}

impl MxValue {
    /// The data type this value carries.
    pub fn data_type(&self) -> MxDataType {
        match self {
            MxValue::Null => MxDataType::NoData,
            MxValue::Bool(_) => MxDataType::Boolean,
            MxValue::Int32(_) => MxDataType::Integer,
            MxValue::Int64(_) => MxDataType::LongInteger,
            MxValue::Float(_) => MxDataType::Float,
            MxValue::Double(_) => MxDataType::Double,
            MxValue::String(_) => MxDataType::String,
            MxValue::Time(_) => MxDataType::Time,
            MxValue::Elapsed(_) => MxDataType::ElapsedTime,
            MxValue::Array(a) => a.element_type(),
            MxValue::Bytes(_) => MxDataType::Unknown,
        }
    }

    /// The value as f64 when it is numeric or boolean.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            MxValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            MxValue::Int32(v) => Some(f64::from(*v)),
            MxValue::Int64(v) => Some(*v as f64),
            MxValue::Float(v) => Some(f64::from(*v)),
            MxValue::Double(v) => Some(*v),
            MxValue::Elapsed(d) => Some(d.as_secs_f64()),
            _ => None,
        }
    }

    /// Checks that the value can be sent to MXAccess: NaN and infinities have
    /// no MXAccess representation.
    pub fn check_sendable(&self) -> Result<(), String> {
        let bad = |x: f64| !x.is_finite();
        let found = match self {
            MxValue::Float(v) => bad(f64::from(*v)),
            MxValue::Double(v) => bad(*v),
            MxValue::Array(MxArray::Float(v)) => v.iter().any(|x| bad(f64::from(*x))),
            MxValue::Array(MxArray::Double(v)) => v.iter().any(|x| bad(*x)),
            _ => false,
        };
        if found {
            Err(
                "NaN and infinite values have no MXAccess representation and cannot be written"
                    .into(),
            )
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for MxValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MxValue::Null => f.write_str("<null>"),
            MxValue::Bool(v) => write!(f, "{v}"),
            MxValue::Int32(v) => write!(f, "{v}"),
            MxValue::Int64(v) => write!(f, "{v}"),
            MxValue::Float(v) => write!(f, "{v}"),
            MxValue::Double(v) => write!(f, "{v}"),
            MxValue::String(v) => write!(f, "{v:?}"),
            MxValue::Time(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => write!(f, "@{}.{:09}", d.as_secs(), d.subsec_nanos()),
                Err(_) => f.write_str("@<before 1970>"),
            },
            MxValue::Elapsed(d) => write!(f, "{}s", d.as_secs_f64()),
            MxValue::Array(a) => write!(f, "{a:?}"),
            MxValue::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

/// OPC DA style 16-bit quality: the top two bits of the low byte give the
/// major state (good 0xC0, uncertain 0x40, bad 0x00), then 4 bits of
/// substatus, then 2 bits of limit.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quality(pub u16);

/// Major quality state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QualityMajor {
    Good,
    Uncertain,
    Bad,
}

/// The limit bits of a quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QualityLimit {
    None,
    Low,
    High,
    Constant,
}

impl Quality {
    pub const GOOD: Quality = Quality(0xC0);
    pub const GOOD_LOCAL_OVERRIDE: Quality = Quality(0xD8);
    pub const UNCERTAIN: Quality = Quality(0x40);
    pub const UNCERTAIN_LAST_USABLE: Quality = Quality(0x44);
    pub const UNCERTAIN_SENSOR_NOT_ACCURATE: Quality = Quality(0x50);
    pub const UNCERTAIN_EU_EXCEEDED: Quality = Quality(0x54);
    pub const UNCERTAIN_SUB_NORMAL: Quality = Quality(0x58);
    pub const BAD: Quality = Quality(0x00);
    pub const BAD_CONFIG_ERROR: Quality = Quality(0x04);
    pub const BAD_NOT_CONNECTED: Quality = Quality(0x08);
    pub const BAD_DEVICE_FAILURE: Quality = Quality(0x0C);
    pub const BAD_SENSOR_FAILURE: Quality = Quality(0x10);
    pub const BAD_LAST_KNOWN: Quality = Quality(0x14);
    pub const BAD_COMM_FAILURE: Quality = Quality(0x18);
    pub const BAD_OUT_OF_SERVICE: Quality = Quality(0x1C);
    pub const BAD_WAITING_FOR_INITIAL_DATA: Quality = Quality(0x20);

    pub fn major(self) -> QualityMajor {
        match self.0 & 0xC0 {
            0xC0 => QualityMajor::Good,
            0x40 => QualityMajor::Uncertain,
            // 0x80 is not used by OPC DA; treat it as bad.
            _ => QualityMajor::Bad,
        }
    }

    pub fn is_good(self) -> bool {
        self.major() == QualityMajor::Good
    }

    pub fn is_uncertain(self) -> bool {
        self.major() == QualityMajor::Uncertain
    }

    pub fn is_bad(self) -> bool {
        self.major() == QualityMajor::Bad
    }

    pub fn limit(self) -> QualityLimit {
        match self.0 & 0x03 {
            1 => QualityLimit::Low,
            2 => QualityLimit::High,
            3 => QualityLimit::Constant,
            _ => QualityLimit::None,
        }
    }

    /// The quality in words, limit bits ignored: "Good", "Bad: sensor failure", ...
    pub fn description(self) -> &'static str {
        match self.0 & 0xFC {
            0xC0 => "Good",
            0xD8 => "Good: local override",
            0x40 => "Uncertain",
            0x44 => "Uncertain: last usable value",
            0x50 => "Uncertain: sensor not accurate",
            0x54 => "Uncertain: engineering units exceeded",
            0x58 => "Uncertain: sub-normal",
            0x00 => "Bad",
            0x04 => "Bad: configuration error",
            0x08 => "Bad: not connected",
            0x0C => "Bad: device failure",
            0x10 => "Bad: sensor failure",
            0x14 => "Bad: last known value",
            0x18 => "Bad: communication failure",
            0x1C => "Bad: out of service",
            0x20 => "Bad: waiting for initial data",
            _ => match self.major() {
                QualityMajor::Good => "Good: other",
                QualityMajor::Uncertain => "Uncertain: other",
                QualityMajor::Bad => "Bad: other",
            },
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.description(), self.0)?;
        match self.limit() {
            QualityLimit::None => Ok(()),
            l => write!(f, ", limit {l:?}"),
        }
    }
}

impl fmt::Debug for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quality(0x{:02X} {})", self.0, self.description())
    }
}

/// MxStatusCategory (native numbering in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxStatusCategory {
    /// -1
    Unknown,
    /// 0
    Ok,
    /// 1
    Pending,
    /// 2
    Warning,
    /// 3
    CommunicationError,
    /// 4
    ConfigurationError,
    /// 5
    OperationalError,
    /// 6
    SecurityError,
    /// 7
    SoftwareError,
    /// 8
    OtherError,
}

impl MxStatusCategory {
    pub fn native_code(self) -> i32 {
        use MxStatusCategory::*;
        match self {
            Unknown => -1,
            Ok => 0,
            Pending => 1,
            Warning => 2,
            CommunicationError => 3,
            ConfigurationError => 4,
            OperationalError => 5,
            SecurityError => 6,
            SoftwareError => 7,
            OtherError => 8,
        }
    }

    pub fn from_native_code(code: i32) -> Self {
        use MxStatusCategory::*;
        match code {
            0 => Ok,
            1 => Pending,
            2 => Warning,
            3 => CommunicationError,
            4 => ConfigurationError,
            5 => OperationalError,
            6 => SecurityError,
            7 => SoftwareError,
            8 => OtherError,
            _ => Unknown,
        }
    }
}

/// MxStatusSource: which layer detected the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxStatusSource {
    Unknown,
    RequestingLmx,
    RespondingLmx,
    RequestingNmx,
    RespondingNmx,
    RequestingAutomationObject,
    RespondingAutomationObject,
}

impl MxStatusSource {
    pub fn native_code(self) -> i32 {
        use MxStatusSource::*;
        match self {
            Unknown => -1,
            RequestingLmx => 0,
            RespondingLmx => 1,
            RequestingNmx => 2,
            RespondingNmx => 3,
            RequestingAutomationObject => 4,
            RespondingAutomationObject => 5,
        }
    }

    pub fn from_native_code(code: i32) -> Self {
        use MxStatusSource::*;
        match code {
            0 => RequestingLmx,
            1 => RespondingLmx,
            2 => RequestingNmx,
            3 => RespondingNmx,
            4 => RequestingAutomationObject,
            5 => RespondingAutomationObject,
            _ => Unknown,
        }
    }
}

/// Readable names of MxStatusDetail codes.
pub mod detail {
    pub const SUCCESS: i32 = 0;
    pub const REQUEST_TIMED_OUT: i32 = 1;
    pub const INVALID_REFERENCE: i32 = 6;
    pub const WRONG_DATA_TYPE: i32 = 13;
    pub const WRONG_NUMBER_OF_DIMENSIONS: i32 = 14;
    pub const UNABLE_TO_CONVERT_STRING: i32 = 19;
    pub const OVERFLOW: i32 = 20;
    pub const INDEX_OUT_OF_RANGE: i32 = 1003;
    pub const DATA_OUT_OF_RANGE: i32 = 1004;
    pub const INCORRECT_DATA_TYPE: i32 = 1005;
    pub const NOT_READABLE: i32 = 1006;
    pub const NOT_WRITEABLE: i32 = 1007;
    pub const WRITE_ACCESS_DENIED: i32 = 1008;
    pub const UNKNOWN_ERROR: i32 = 1009;
    pub const SECURED_WRITE: i32 = 1012;
    pub const VERIFIED_WRITE: i32 = 1013;
    pub const NO_ALARM_ACK_PRIVILEGE: i32 = 1014;
    pub const ALARM_ACKED_ALREADY: i32 = 1015;
    pub const USER_NOT_HAVING_ACCESS_RIGHTS: i32 = 1016;
    pub const VERIFIER_NOT_HAVING_VERIFY_RIGHTS: i32 = 1017;
    pub const AUTOMATION_OBJECT_SPECIFIC_ERROR: i32 = 8000;

    /// The MxStatusDetail name of a code, e.g. 1008 -> "WriteAccessDenied".
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            0 => "Success",
            1 => "RequestTimedOut",
            2 => "PlatformCommunicationError",
            3 => "InvalidPlatformId",
            4 => "InvalidEngineId",
            5 => "EngineCommunicationError",
            6 => "InvalidReference",
            7 => "NoGalaxyRepository",
            8 => "InvalidObjectId",
            9 => "ObjectSignatureMismatch",
            10 => "AttributeSignatureMismatch",
            11 => "ResolvingAttribute",
            12 => "ResolvingObject",
            13 => "WrongDataType",
            14 => "WrongNumberOfDimensions",
            15 => "InvalidIndex",
            16 => "IndexOutOfOrder",
            17 => "DimensionDoesNotExist",
            18 => "ConversionNotSupported",
            19 => "UnableToConvertString",
            20 => "Overflow",
            21 => "NmxVersionMismatch",
            22 => "NmxInvalidCommand",
            23 => "LmxVersionMismatch",
            24 => "LmxInvalidCommand",
            25 => "GalaxyRepositoryBusy",
            26 => "EngineOverloaded",
            1000 => "InvalidPrimitiveId",
            1001 => "InvalidAttributeId",
            1002 => "InvalidPropertyId",
            1003 => "IndexOutOfRange",
            1004 => "DataOutOfRange",
            1005 => "IncorrectDataType",
            1006 => "NotReadable",
            1007 => "NotWriteable",
            1008 => "WriteAccessDenied",
            1009 => "UnknownError",
            1010 => "ObjectInitializing",
            1011 => "EngineInitializing",
            1012 => "SecuredWrite",
            1013 => "VerifiedWrite",
            1014 => "NoAlarmAckPrivilege",
            1015 => "AlarmAckedAlready",
            1016 => "UserNotHavingAccessRights",
            1017 => "VerifierNotHavingVerifyRights",
            8000 => "AutomationObjectSpecificError",
            _ => return None,
        })
    }

    /// Code of an MxStatusDetail name (exact spelling).
    pub fn from_name(name: &str) -> Option<i32> {
        (0..=26)
            .chain(1000..=1017)
            .chain([8000])
            .find(|c| self::name(*c) == Some(name))
    }
}

/// One MXAccess status (MXSTATUS_PROXY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxStatus {
    pub category: MxStatusCategory,
    pub detected_by: MxStatusSource,
    /// MxStatusDetail code; see [`detail`].
    pub detail: i32,
    /// The COM numeric `success` field, kept for diagnostics. Decide on `category`.
    pub success: i32,
    pub diagnostic_text: String,
}

impl MxStatus {
    /// A success status.
    pub fn ok() -> Self {
        MxStatus {
            category: MxStatusCategory::Ok,
            detected_by: MxStatusSource::RespondingLmx,
            detail: 0,
            success: -1,
            diagnostic_text: String::new(),
        }
    }

    /// A failure status with the given category, detail and text.
    pub fn failure(category: MxStatusCategory, detail: i32, text: impl Into<String>) -> Self {
        MxStatus {
            category,
            detected_by: MxStatusSource::RespondingAutomationObject,
            detail,
            success: 0,
            diagnostic_text: text.into(),
        }
    }

    /// True when the category is Ok, Pending or Warning.
    pub fn is_ok(&self) -> bool {
        matches!(
            self.category,
            MxStatusCategory::Ok | MxStatusCategory::Pending | MxStatusCategory::Warning
        )
    }

    /// The MxStatusDetail name, e.g. "WriteAccessDenied".
    pub fn detail_name(&self) -> Option<&'static str> {
        detail::name(self.detail)
    }
}

impl fmt::Display for MxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail_name() {
            Some(n) => write!(f, "{n} ({})", self.detail)?,
            None => write!(f, "detail {}", self.detail)?,
        }
        write!(
            f,
            ", {:?} detected by {:?}",
            self.category, self.detected_by
        )?;
        if !self.diagnostic_text.is_empty() {
            write!(f, ": {}", self.diagnostic_text)?;
        }
        Ok(())
    }
}

/// Security classification of an attribute (native numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityClassification {
    Undefined,
    FreeAccess,
    Operate,
    SecuredWrite,
    VerifiedWrite,
    Tune,
    Configure,
    ViewOnly,
}

impl SecurityClassification {
    pub fn native_code(self) -> i32 {
        use SecurityClassification::*;
        match self {
            Undefined => -1,
            FreeAccess => 0,
            Operate => 1,
            SecuredWrite => 2,
            VerifiedWrite => 3,
            Tune => 4,
            Configure => 5,
            ViewOnly => 6,
        }
    }

    pub fn from_native_code(code: i32) -> Self {
        use SecurityClassification::*;
        match code {
            0 => FreeAccess,
            1 => Operate,
            2 => SecuredWrite,
            3 => VerifiedWrite,
            4 => Tune,
            5 => Configure,
            6 => ViewOnly,
            _ => Undefined,
        }
    }

    pub fn name(self) -> &'static str {
        use SecurityClassification::*;
        match self {
            Undefined => "Undefined",
            FreeAccess => "FreeAccess",
            Operate => "Operate",
            SecuredWrite => "SecuredWrite",
            VerifiedWrite => "VerifiedWrite",
            Tune => "Tune",
            Configure => "Configure",
            ViewOnly => "ViewOnly",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        (-1..=6)
            .map(Self::from_native_code)
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

/// Session state as the gateway reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Unspecified,
    Creating,
    StartingWorker,
    WaitingForPipe,
    InitializingWorker,
    Ready,
    Closing,
    Closed,
    Faulted,
}

/// What `OpenSession` returned besides the session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub backend_name: String,
    pub gateway_protocol_version: i32,
    pub worker_protocol_version: i32,
}

/// An OnDataChange event.
#[derive(Clone, Debug, PartialEq)]
pub struct DataChange {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub value: MxValue,
    pub quality: Quality,
    /// Timestamp from the source (the owning engine), UTC.
    pub source_time: Option<SystemTime>,
    pub statuses: Vec<MxStatus>,
}

/// An OnWriteComplete event: whether System Platform applied a write.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteComplete {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub statuses: Vec<MxStatus>,
}

impl WriteComplete {
    /// The first failing status, if the write failed.
    pub fn failure(&self) -> Option<&MxStatus> {
        self.statuses.iter().find(|s| !s.is_ok())
    }
}

/// An OperationComplete event.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationComplete {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub statuses: Vec<MxStatus>,
}

/// An OnBufferedDataChange event: several samples of one item.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferedDataChange {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    pub samples: Vec<(MxValue, Quality, Option<SystemTime>)>,
    pub statuses: Vec<MxStatus>,
}

/// The replay sentinel: the events after `requested_after` are no longer
/// retained. The client must re-read current values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayGap {
    pub requested_after: u64,
    pub oldest_available: u64,
}

/// An event that could not be decoded: a value past a cap, of an unknown type, a time
/// out of range, a quality that is not 16 bits, an unknown family. It concerns its item
/// alone; the stream goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub worker_sequence: u64,
    pub server_handle: ServerHandle,
    pub item_handle: ItemHandle,
    /// The event was a data change (plain or buffered): the item's new value is lost.
    pub data_change: bool,
    /// Why, e.g. "array of 4294967295 elements exceeds [limits] max_array_length 100000".
    pub reason: String,
}

/// One event of a session's event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    DataChange(DataChange),
    WriteComplete(WriteComplete),
    OperationComplete(OperationComplete),
    BufferedDataChange(BufferedDataChange),
    AlarmTransition {
        worker_sequence: u64,
        transition: AlarmTransition,
    },
    ReplayGap(ReplayGap),
    Undecodable(Undecodable),
}

impl SessionEvent {
    /// The event's worker sequence (0 for a replay gap sentinel).
    pub fn worker_sequence(&self) -> u64 {
        match self {
            SessionEvent::DataChange(e) => e.worker_sequence,
            SessionEvent::WriteComplete(e) => e.worker_sequence,
            SessionEvent::OperationComplete(e) => e.worker_sequence,
            SessionEvent::BufferedDataChange(e) => e.worker_sequence,
            SessionEvent::AlarmTransition {
                worker_sequence, ..
            } => *worker_sequence,
            SessionEvent::ReplayGap(_) => 0,
            SessionEvent::Undecodable(e) => e.worker_sequence,
        }
    }
}

/// The four alarm states (ACK/UNACK x ALM/RTN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    UnackAlm,
    AckAlm,
    UnackRtn,
    AckRtn,
}

impl AlarmState {
    pub fn is_active(self) -> bool {
        matches!(self, AlarmState::UnackAlm | AlarmState::AckAlm)
    }

    pub fn is_acked(self) -> bool {
        matches!(self, AlarmState::AckAlm | AlarmState::AckRtn)
    }
}

/// Kind of an alarm transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmTransitionKind {
    Raise,
    Acknowledge,
    Clear,
    Retrigger,
}

/// What an alarm looks like now (from the snapshot part of the feed, or QueryActiveAlarms).
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveAlarm {
    /// `Galaxy!Area.Object.Alarm`
    pub reference: String,
    pub source_object: String,
    pub alarm_type: String,
    pub state: AlarmState,
    /// Native priority (1 most urgent .. 999).
    pub priority: i32,
    pub raised_at: Option<SystemTime>,
    pub last_transition_at: Option<SystemTime>,
    pub operator: String,
    pub comment: String,
    /// The area.
    pub category: String,
    pub description: String,
    pub current_value: Option<MxValue>,
    pub limit_value: Option<MxValue>,
}

/// One alarm transition.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmTransition {
    pub reference: String,
    pub source_object: String,
    pub alarm_type: String,
    pub kind: AlarmTransitionKind,
    /// The state after the transition.
    pub state: AlarmState,
    pub priority: i32,
    pub raised_at: Option<SystemTime>,
    pub at: Option<SystemTime>,
    pub operator: String,
    pub comment: String,
    pub category: String,
    pub description: String,
    pub current_value: Option<MxValue>,
    pub limit_value: Option<MxValue>,
}

/// One message of the StreamAlarms feed.
#[derive(Clone, Debug, PartialEq)]
pub enum AlarmFeedItem {
    Active(ActiveAlarm),
    SnapshotComplete { active_alarm_count: u32 },
    Transition(AlarmTransition),
}

/// Outcome of one bulk entry that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkEntryError {
    pub message: String,
    pub hresult: i32,
    pub statuses: Vec<MxStatus>,
}

impl fmt::Display for BulkEntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = self.statuses.iter().find(|s| !s.is_ok()) {
            write!(f, " [{s}]")?;
        }
        Ok(())
    }
}

/// Result of one entry of AddItemBulk / AdviseItemBulk / SubscribeBulk / ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    pub tag: String,
    pub item_handle: ItemHandle,
    pub outcome: Result<(), BulkEntryError>,
}

/// Result of one entry of a bulk write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkWriteResult {
    pub item_handle: ItemHandle,
    pub outcome: Result<(), BulkEntryError>,
}

/// A value read by ReadBulk.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadValue {
    pub value: MxValue,
    pub quality: Quality,
    pub source_time: Option<SystemTime>,
    /// True when served from the session's existing subscription.
    pub was_cached: bool,
}

/// Result of one entry of ReadBulk.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkReadResult {
    pub tag: String,
    pub outcome: Result<ReadValue, BulkEntryError>,
}

/// One entry of a bulk write. `timestamp` is used by the *2 variants,
/// `verifier` by the secured variants; `user` is the user id (current user for
/// secured writes).
#[derive(Clone, Debug, PartialEq)]
pub struct WriteEntry {
    pub item_handle: ItemHandle,
    pub value: MxValue,
    pub user: UserId,
    pub verifier: UserId,
    pub timestamp: Option<SystemTime>,
}

impl WriteEntry {
    pub fn new(item_handle: ItemHandle, value: MxValue) -> Self {
        WriteEntry {
            item_handle,
            value,
            user: UserId(0),
            verifier: UserId(0),
            timestamp: None,
        }
    }
}

/// Which write command to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Write,
    Write2,
    WriteSecured,
    WriteSecured2,
}

/// A Galaxy object from the Galaxy Repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalaxyObject {
    pub gobject_id: i32,
    pub tag_name: String,
    pub contained_name: String,
    pub hierarchical_name: String,
    pub parent_gobject_id: i32,
    pub area_gobject_id: i32,
    pub category_id: i32,
    pub is_area: bool,
    pub template_chain: Vec<String>,
    pub attributes: Vec<GalaxyAttribute>,
}

/// An attribute of a Galaxy object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GalaxyAttribute {
    pub name: String,
    /// `tag_name.AttributeName`
    pub full_tag_reference: String,
    pub data_type: MxDataType,
    pub is_array: bool,
    pub array_dimension: i32,
    pub security: SecurityClassification,
    pub is_historized: bool,
    pub is_alarm: bool,
    pub eng_units: String,
    pub description: String,
}

/// One page of DiscoverHierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyPage {
    pub objects: Vec<GalaxyObject>,
    /// Empty on the last page.
    pub next_page_token: String,
    pub total_object_count: i32,
}

/// One page of BrowseChildren.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildrenPage {
    /// Each child with whether it has children itself.
    pub children: Vec<(GalaxyObject, bool)>,
    pub next_page_token: String,
}

/// Filters of DiscoverHierarchy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HierarchyQuery {
    /// 0 = gateway default (1000).
    pub page_size: i32,
    pub page_token: String,
    pub root_tag_name: Option<String>,
    pub tag_name_glob: String,
    pub include_attributes: bool,
    pub alarm_bearing_only: bool,
    pub historized_only: bool,
}

/// One deploy event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployEvent {
    pub sequence: u64,
    pub time_of_last_deploy: Option<SystemTime>,
    pub object_count: i32,
    pub attribute_count: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_in_words() {
        assert!(Quality::GOOD.is_good() && Quality(0xD8).is_good());
        assert!(Quality(0x54).is_uncertain());
        assert!(Quality(0x18).is_bad() && Quality(0x80).is_bad());
        assert_eq!(Quality(0x19).description(), "Bad: communication failure");
        assert_eq!(Quality(0x19).limit(), QualityLimit::Low);
        assert_eq!(
            Quality(0x57).to_string(),
            "Uncertain: engineering units exceeded (0x57), limit Constant"
        );
        assert_eq!(Quality(0x48).description(), "Uncertain: other");
    }

    #[test]
    fn status_detail_names() {
        assert_eq!(detail::name(1008), Some("WriteAccessDenied"));
        assert_eq!(detail::name(13), Some("WrongDataType"));
        assert_eq!(detail::name(999), None);
        for code in (0..=26).chain(1000..=1017).chain([8000]) {
            assert_eq!(detail::from_name(detail::name(code).unwrap()), Some(code));
        }
        let s = MxStatus::failure(MxStatusCategory::SecurityError, 1008, "ViewOnly");
        assert!(!s.is_ok());
        assert_eq!(s.to_string(), "WriteAccessDenied (1008), SecurityError detected by RespondingAutomationObject: ViewOnly");
        assert!(MxStatus {
            category: MxStatusCategory::Warning,
            ..MxStatus::ok()
        }
        .is_ok());
    }

    #[test]
    fn native_codes_round_trip() {
        for c in -1..=16 {
            assert_eq!(MxDataType::from_native_code(c).native_code(), c);
        }
        for c in -1..=8 {
            assert_eq!(MxStatusCategory::from_native_code(c).native_code(), c);
        }
        for c in -1..=5 {
            assert_eq!(MxStatusSource::from_native_code(c).native_code(), c);
        }
        for c in -1..=6 {
            assert_eq!(SecurityClassification::from_native_code(c).native_code(), c);
        }
        assert_eq!(
            MxDataType::from_name("elapsedtime"),
            Some(MxDataType::ElapsedTime)
        );
        assert_eq!(
            SecurityClassification::from_name("ViewOnly"),
            Some(SecurityClassification::ViewOnly)
        );
    }

    #[test]
    fn non_finite_values_are_not_sendable() {
        assert!(MxValue::Double(f64::NAN).check_sendable().is_err());
        assert!(MxValue::Float(f32::INFINITY).check_sendable().is_err());
        assert!(
            MxValue::Array(MxArray::Double(vec![1.0, f64::NEG_INFINITY]))
                .check_sendable()
                .is_err()
        );
        assert!(MxValue::Double(1.0).check_sendable().is_ok());
    }
}

//! Quality, MXAccess statuses and security classifications.
use std::fmt;

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

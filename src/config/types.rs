//! Value types of the configuration that check themselves while they are deserialized.
//!
//! Each type here is built with `TryFrom<String>` (or a small enum with
//! `rename_all = "lowercase"`), so a bad value fails at its own position in the file and
//! the message says what was expected.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// A PVAccess channel name, or a piece of one (the `[defaults] prefix`).
///
/// Allowed characters: ASCII letters and digits and `_ - + : . ; [ ] < > { } /`.
/// No spaces, quotes, commas or non-ASCII characters. At most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct PvName(std::sync::Arc<str>);

impl PvName {
    /// The characters, other than ASCII letters and digits, that a PV name may hold.
    pub const EXTRA_CHARS: &'static str = "_-+:.;[]<>{}/";
    /// The longest PV name accepted, in bytes.
    pub const MAX_LEN: usize = 255;

    fn check(s: &str, allow_empty: bool) -> Result<(), String> {
        if s.is_empty() && !allow_empty {
            return Err("PV name is empty".into());
        }
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "PV name is {} characters long, the limit is {}",
                s.len(),
                Self::MAX_LEN
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || Self::EXTRA_CHARS.contains(*c)))
        {
            return Err(format!(
                "PV name `{s}` contains {}: use ASCII letters, digits and `{}`",
                describe_char(c),
                Self::EXTRA_CHARS
            ));
        }
        Ok(())
    }

    /// Whether `s` passes [`PvName`]'s checks; `const`, so that a name fixed in the source
    /// is checked while compiling (`const _: () = assert!(PvName::is_valid(NAME));`).
    pub const fn is_valid(s: &str) -> bool {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return false;
        }
        let mut rest = s.as_bytes();
        while let [c, tail @ ..] = rest {
            if !(c.is_ascii_alphanumeric() || is_extra_char(*c)) {
                return false;
            }
            rest = tail;
        }
        true
    }

    /// A name that is a constant of this crate, checked at compile time with
    /// [`PvName::is_valid`] next to its definition (see `config::DEFAULT_ACK_SUFFIX`).
    pub(crate) fn from_const(s: &'static str) -> PvName {
        debug_assert!(Self::is_valid(s), "{s}");
        PvName(s.into())
    }

    /// Joins a prefix (which may be empty) and a name.
    pub fn with_prefix(prefix: &PvName, name: &PvName) -> PvName {
        PvName(format!("{}{}", prefix.0, name.0).into())
    }

    /// The empty prefix.
    pub fn empty() -> PvName {
        PvName("".into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as text, shared: the PV served under it keeps this one copy (issue 23:
    /// memory per PV).
    pub fn shared(&self) -> std::sync::Arc<str> {
        self.0.clone()
    }
}

impl TryFrom<String> for PvName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PvName::check(&s, false)?;
        Ok(PvName(s.into()))
    }
}

impl fmt::Display for PvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `[defaults] prefix`: like [`PvName`], but may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct PvPrefix(pub(crate) PvName);

impl TryFrom<String> for PvPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PvName::check(&s, true).map_err(|e| e.replacen("PV name", "prefix", 1))?;
        Ok(PvPrefix(PvName(s.into())))
    }
}

/// A piece of a PV name that may be empty (`[alarms] table`, `ack_suffix`); messages say
/// "PV name".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct PvNamePart(pub(crate) PvName);

impl TryFrom<String> for PvNamePart {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        PvName::check(&s, true)?;
        Ok(PvNamePart(PvName(s.into())))
    }
}

const fn is_extra_char(c: u8) -> bool {
    let mut rest = PvName::EXTRA_CHARS.as_bytes();
    while let [x, tail @ ..] = rest {
        if *x == c {
            return true;
        }
        rest = tail;
    }
    false
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// How a tag addresses an array attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagIndex {
    /// `Obj.Attr`: a scalar attribute.
    None,
    /// `Obj.Attr[]`: the whole array.
    Whole,
    /// `Obj.Attr[N]`: one element, counting from 1 as MXAccess does.
    Element(u32),
}

/// An MXAccess reference: `Object.Attribute`, optionally followed by `[]` (the whole array)
/// or `[N]` (element N, from 1).
///
/// The object and attribute parts are non-empty and hold no spaces, quotes or brackets;
/// the attribute part may itself hold dots (`Pump001.PV.Alarm`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Tag {
    /// Boxed: a tag is held for every PV, and never grows (issue 23: memory per PV). The
    /// `Object.Attribute` part is what comes before the first `[` (none in a valid base).
    text: Box<str>,
    index: TagIndexRepr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TagIndexRepr {
    None,
    Whole,
    Element(u32),
}

impl Tag {
    /// The full reference as written, e.g. `Line001.Profile[]`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The reference without its array suffix, e.g. `Line001.Profile`.
    pub fn base(&self) -> &str {
        match self.index {
            TagIndexRepr::None => &self.text,
            _ => self
                .text
                .split_once('[')
                .map_or(&self.text, |(base, _)| base),
        }
    }
    /// The object part, e.g. `Line001`.
    pub fn object(&self) -> &str {
        self.base().split_once('.').map_or("", |(o, _)| o)
    }
    /// The attribute part, e.g. `Profile`.
    pub fn attribute(&self) -> &str {
        self.base().split_once('.').map_or("", |(_, a)| a)
    }
    /// The array suffix.
    pub fn index(&self) -> TagIndex {
        match self.index {
            TagIndexRepr::None => TagIndex::None,
            TagIndexRepr::Whole => TagIndex::Whole,
            TagIndexRepr::Element(n) => TagIndex::Element(n),
        }
    }
    /// True for `Obj.Attr[]`.
    pub fn is_whole_array(&self) -> bool {
        self.index == TagIndexRepr::Whole
    }
}

impl TryFrom<String> for Tag {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "tag `{s}` {why}; expected `Object.Attribute`, `Object.Attribute[]` or `Object.Attribute[N]`"
            ))
        };
        if s.is_empty() {
            return Err(
                "tag is empty; expected `Object.Attribute`, `Object.Attribute[]` or `Object.Attribute[N]`".into(),
            );
        }
        let (base, index) = match s.find('[') {
            None => (s.as_str(), TagIndexRepr::None),
            Some(open) => {
                let rest = &s[open..];
                if rest == "[]" {
                    (&s[..open], TagIndexRepr::Whole)
                } else if let Some(num) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    match num.parse::<u32>() {
                        Ok(0) => {
                            return bad("has index 0, but MXAccess counts array elements from 1")
                        }
                        Ok(n) if num.bytes().all(|b| b.is_ascii_digit()) => {
                            (&s[..open], TagIndexRepr::Element(n))
                        }
                        _ => return bad("has a bad array index"),
                    }
                } else {
                    return bad("has a bad array suffix");
                }
            }
        };
        if let Some(c) = base
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "\"'[]{},;=`\\".contains(*c))
        {
            return bad(&format!("contains {}", describe_char(c)));
        }
        match base.split_once('.') {
            None => return bad("has no attribute part"),
            Some(("", _)) => return bad("has an empty object name"),
            Some((_, attr)) if attr.is_empty() || attr.split('.').any(str::is_empty) => {
                return bad("has an empty attribute name")
            }
            Some(_) => {}
        }
        Ok(Tag {
            text: s.into_boxed_str(),
            index,
        })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The element type of a PV's `value`, as named in `type = "..."`. The one scalar type of
/// the crate: the PVAccess layer (`crate::pva`) serves it, and converts it to the C++
/// side's form in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
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

impl ScalarType {
    /// Every scalar type, in declaration order.
    pub const ALL: [ScalarType; 12] = [
        ScalarType::Bool,
        ScalarType::Int8,
        ScalarType::Int16,
        ScalarType::Int32,
        ScalarType::Int64,
        ScalarType::UInt8,
        ScalarType::UInt16,
        ScalarType::UInt32,
        ScalarType::UInt64,
        ScalarType::Float32,
        ScalarType::Float64,
        ScalarType::String,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        use ScalarType::*;
        match self {
            Bool => "bool",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            UInt8 => "uint8",
            UInt16 => "uint16",
            UInt32 => "uint32",
            UInt64 => "uint64",
            Float32 => "float32",
            Float64 => "float64",
            String => "string",
        }
    }

    /// Integers and floats: the types that limits, units and precision apply to.
    pub fn is_numeric(self) -> bool {
        !matches!(self, ScalarType::Bool | ScalarType::String)
    }
}

impl FromStr for ScalarType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ScalarType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or(())
    }
}

/// The normative type a PV is served as, as named in `type = "..."`: a scalar type
/// (`"float64"`), an array of one (`"float64[]"`), or `"enum"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum PvType {
    /// NTScalar.
    Scalar(ScalarType),
    /// NTScalarArray.
    Array(ScalarType),
    /// NTEnum: an index into a list of choices; only for Boolean attributes, with two
    /// `choices`.
    Enum,
}

impl PvType {
    /// Every type name accepted in `type = "..."`, in the order shown in messages.
    pub const NAMES: [&'static str; 13] = [
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float32", "float64", "string", "enum",
    ];

    /// The element type; `None` for `enum`.
    pub fn element(self) -> Option<ScalarType> {
        match self {
            PvType::Scalar(t) | PvType::Array(t) => Some(t),
            PvType::Enum => None,
        }
    }
    /// True for `"...[]"`.
    pub fn is_array(self) -> bool {
        matches!(self, PvType::Array(_))
    }
    /// Integers and floats, and arrays of them.
    pub fn is_numeric(self) -> bool {
        self.element().is_some_and(ScalarType::is_numeric)
    }
}

impl TryFrom<String> for PvType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let expected = || {
            let names: Vec<String> = PvType::NAMES.iter().map(|n| format!("`{n}`")).collect();
            format!(
                "expected one of {}, or an array of one of them such as `float64[]` (no `enum[]`)",
                names.join(", ")
            )
        };
        let (base, array) = match s.strip_suffix("[]") {
            Some(b) => (b, true),
            None => (s.as_str(), false),
        };
        match base.parse::<ScalarType>() {
            Ok(t) if array => Ok(PvType::Array(t)),
            Ok(t) => Ok(PvType::Scalar(t)),
            Err(()) if base == "enum" && !array => Ok(PvType::Enum),
            Err(()) => Err(format!("unknown type `{s}`, {}", expected())),
        }
    }
}

impl fmt::Display for PvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvType::Scalar(t) => f.write_str(t.name()),
            PvType::Array(t) => write!(f, "{}[]", t.name()),
            PvType::Enum => f.write_str("enum"),
        }
    }
}

/// A duration written as a string with a unit: `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`.
///
/// A bare number is refused, so that nobody has to guess its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub(crate) struct DurationValue(pub(crate) Duration);

impl TryFrom<toml::Value> for DurationValue {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, String> {
        match v {
            toml::Value::String(s) => parse_duration(&s).map(DurationValue),
            toml::Value::Integer(_) | toml::Value::Float(_) => Err(format!(
                "a duration needs a unit: write \"{v}ms\" or \"{v}s\", not {v}"
            )),
            other => Err(format!(
                "expected a duration such as \"5s\" or \"250ms\", found {}",
                other.type_str()
            )),
        }
    }
}

/// Parses `"250ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("bad duration \"{s}\": expected a number and a unit (ms, s, m or h), such as \"5s\" or \"250ms\"")
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at_checked(split).ok_or_else(bad)?;
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Text that must never reach a log: an API key or a password.
///
/// `Debug` and `Display` print `[redacted]`. Read the text with [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret text, for the one place that needs it (an `authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Accepts any TOML value and keeps nothing of it: used for keys such as an inline
/// `api_key`, which are refused later with a message that does not repeat the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Discarded;

impl<'de> Deserialize<'de> for Discarded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Discarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PV's config is held for as long as it is served, in an `Arc` (16 bytes more):
    /// 152 bytes asked is a 160-byte malloc chunk; 168 would be 176 (issue 23).
    #[test]
    fn a_pv_config_stays_small() {
        assert_eq!(std::mem::size_of::<Tag>(), 24);
        assert_eq!(std::mem::size_of::<super::super::Location>(), 16);
        assert!(std::mem::size_of::<super::super::Pv>() <= 136);
    }

    #[test]
    fn pv_names() {
        assert!(PvName::try_from("DEMO:Pump001:Speed".to_string()).is_ok());
        assert_eq!(
            PvName::try_from("A B".to_string()).unwrap_err(),
            "PV name `A B` contains a space: use ASCII letters, digits and `_-+:.;[]<>{}/`"
        );
        assert_eq!(
            PvName::try_from(String::new()).unwrap_err(),
            "PV name is empty"
        );
        assert!(PvPrefix::try_from(String::new()).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// The compile-time check and the deserializing check agree on every name.
        #[test]
        fn const_check_agrees_with_try_from(s in "[a-zA-Z0-9_+:.;<>{}/ ,\"é\\[\\]-]{0,260}") {
            proptest::prop_assert_eq!(PvName::is_valid(&s), PvName::try_from(s.clone()).is_ok());
        }
    }

    #[test]
    fn tags() {
        let t = Tag::try_from("Line001.Profile[]".to_string()).unwrap();
        assert_eq!(
            (t.base(), t.object(), t.attribute()),
            ("Line001.Profile", "Line001", "Profile")
        );
        assert_eq!(t.index(), TagIndex::Whole);
        let t = Tag::try_from("Pump001.PV.Alarm[3]".to_string()).unwrap();
        assert_eq!(t.index(), TagIndex::Element(3));
        assert_eq!(t.attribute(), "PV.Alarm");
        for bad in [
            "Pump001",
            ".Speed",
            "Pump001.",
            "Pump001..X",
            "P.S[0]",
            "P.S[x]",
            "P.S[1",
            "P S.x",
            "P.S[]x",
        ] {
            assert!(Tag::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn types() {
        assert_eq!(
            PvType::try_from("float64[]".to_string()),
            Ok(PvType::Array(ScalarType::Float64))
        );
        assert_eq!(PvType::try_from("enum".to_string()), Ok(PvType::Enum));
        assert!(PvType::try_from("enum[]".to_string()).is_err());
        assert!(PvType::try_from("double".to_string()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn secrets_redact() {
        let s = SecretString::new("mxgw_1_topsecret");
        assert_eq!(format!("{s} {s:?}"), "[redacted] SecretString([redacted])");
    }
}

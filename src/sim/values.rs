//! MXAccess values of the simulated attributes: building arrays, zero values,
//! coercing a written value to an attribute's type the way MXAccess does, and
//! parsing text (the control API, TOML times). Pure functions, used by the Galaxy
//! schema (`config.rs`), the live world (`world.rs`) and the services.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::gateway::{detail, MxArray, MxDataType, MxStatus, MxStatusCategory, MxValue};

pub(crate) fn status(category: MxStatusCategory, d: i32, text: impl Into<String>) -> MxStatus {
    MxStatus::failure(category, d, text)
}

/// Build an array of type `t` from scalar values of that type.
pub(crate) fn array_of(t: MxDataType, items: &[MxValue]) -> Result<MxArray, String> {
    macro_rules! collect {
        ($variant:ident, $arr:ident) => {
            MxArray::$arr(
                items
                    .iter()
                    .map(|v| match v {
                        MxValue::$variant(x) => Ok(x.clone()),
                        other => Err(format!("{other} is not a {t}")),
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    Ok(match t {
        MxDataType::Boolean => collect!(Bool, Bool),
        MxDataType::Integer => collect!(Int32, Int32),
        MxDataType::LongInteger => collect!(Int64, Int64),
        MxDataType::Float => collect!(Float, Float),
        MxDataType::Double => collect!(Double, Double),
        MxDataType::String => collect!(String, String),
        MxDataType::Time => collect!(Time, Time),
        MxDataType::ElapsedTime => collect!(Elapsed, Elapsed),
        other => return Err(format!("arrays of {other} are not simulated")),
    })
}

/// The zero value of a type.
pub(crate) fn default_value(t: MxDataType, len: Option<usize>) -> MxValue {
    if let Some(n) = len {
        let z = default_value(t, None);
        return array_of(t, &vec![z; n])
            .map(MxValue::Array)
            .unwrap_or(MxValue::Null);
    }
    match t {
        MxDataType::Boolean => MxValue::Bool(false),
        MxDataType::Integer => MxValue::Int32(0),
        MxDataType::LongInteger => MxValue::Int64(0),
        MxDataType::Float => MxValue::Float(0.0),
        MxDataType::Double => MxValue::Double(0.0),
        MxDataType::String | MxDataType::BigString | MxDataType::ReferenceType => {
            MxValue::String(String::new())
        }
        MxDataType::Time => MxValue::Time(std::time::UNIX_EPOCH),
        MxDataType::ElapsedTime => MxValue::Elapsed(std::time::Duration::ZERO),
        _ => MxValue::Null,
    }
}

/// Convert a written value to an attribute's type the way MXAccess does,
/// or say why it cannot be.
pub(crate) fn coerce(
    v: &MxValue,
    t: MxDataType,
    array_length: Option<usize>,
) -> Result<MxValue, MxStatus> {
    let cat = MxStatusCategory::OperationalError;
    if let Some(n) = array_length {
        let MxValue::Array(a) = v else {
            return Err(status(
                cat,
                detail::WRONG_NUMBER_OF_DIMENSIONS,
                "a scalar cannot be written to a whole array",
            ));
        };
        if a.len() != n {
            return Err(status(
                cat,
                detail::INDEX_OUT_OF_RANGE,
                format!("the array has {n} elements, the value {}", a.len()),
            ));
        }
        let items: Vec<MxValue> = (0..a.len())
            .map(|i| coerce(&a.get(i).unwrap_or(MxValue::Null), t, None))
            .collect::<Result<_, _>>()?;
        return array_of(t, &items)
            .map(MxValue::Array)
            .map_err(|e| status(cat, detail::WRONG_DATA_TYPE, e));
    }
    if let MxValue::Array(_) = v {
        return Err(status(
            cat,
            detail::WRONG_NUMBER_OF_DIMENSIONS,
            "an array cannot be written to a scalar",
        ));
    }
    let wrong = || {
        status(
            cat,
            detail::WRONG_DATA_TYPE,
            format!(
                "a {} value cannot be written to a {t} attribute",
                v.data_type()
            ),
        )
    };
    let no_parse = |s: &str| {
        status(
            cat,
            detail::UNABLE_TO_CONVERT_STRING,
            format!("{s:?} is not a {t}"),
        )
    };
    let overflow = || status(cat, detail::OVERFLOW, format!("{v} does not fit a {t}"));
    let num = match v {
        MxValue::Bool(_)
        | MxValue::Int32(_)
        | MxValue::Int64(_)
        | MxValue::Float(_)
        | MxValue::Double(_) => v.as_f64(),
        _ => None,
    };
    Ok(match t {
        MxDataType::Boolean => match v {
            MxValue::Bool(b) => MxValue::Bool(*b),
            MxValue::Int32(_) | MxValue::Int64(_) => match num {
                Some(x) if x == 0.0 || x == 1.0 => MxValue::Bool(x == 1.0),
                _ => {
                    return Err(status(
                        cat,
                        detail::DATA_OUT_OF_RANGE,
                        format!("{v} is not 0 or 1"),
                    ))
                }
            },
            MxValue::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "on" => MxValue::Bool(true),
                "false" | "0" | "off" => MxValue::Bool(false),
                _ => return Err(no_parse(s)),
            },
            _ => return Err(wrong()),
        },
        MxDataType::Integer | MxDataType::LongInteger | MxDataType::Float | MxDataType::Double => {
            let x = match (v, num) {
                (_, Some(x)) => x,
                (MxValue::String(s), _) => s.trim().parse::<f64>().map_err(|_| no_parse(s))?,
                _ => return Err(wrong()),
            };
            if !x.is_finite() {
                return Err(status(
                    cat,
                    detail::DATA_OUT_OF_RANGE,
                    "NaN and infinities are not values",
                ));
            }
            match t {
                MxDataType::Integer => {
                    if x.round() < i32::MIN as f64 || x.round() > i32::MAX as f64 {
                        return Err(overflow());
                    }
                    MxValue::Int32(x.round() as i32)
                }
                MxDataType::LongInteger => MxValue::Int64(match v {
                    MxValue::Int64(i) => *i,
                    _ => x.round() as i64,
                }),
                MxDataType::Float => {
                    if x.abs() > f64::from(f32::MAX) {
                        return Err(overflow());
                    }
                    MxValue::Float(x as f32)
                }
                _ => MxValue::Double(x),
            }
        }
        MxDataType::String => match v {
            MxValue::String(s) => MxValue::String(s.clone()),
            MxValue::Bool(_)
            | MxValue::Int32(_)
            | MxValue::Int64(_)
            | MxValue::Float(_)
            | MxValue::Double(_) => MxValue::String(v.to_string()),
            _ => return Err(wrong()),
        },
        MxDataType::Time => match v {
            MxValue::Time(t) => MxValue::Time(*t),
            MxValue::String(s) => MxValue::Time(parse_time_text(s).ok_or_else(|| no_parse(s))?),
            _ => return Err(wrong()),
        },
        MxDataType::ElapsedTime => match (v, num) {
            (MxValue::Elapsed(d), _) => MxValue::Elapsed(*d),
            (MxValue::Bool(_), _) => return Err(wrong()),
            (_, Some(x)) if x < 0.0 => {
                return Err(status(
                    cat,
                    detail::DATA_OUT_OF_RANGE,
                    "elapsed time cannot be negative",
                ))
            }
            (_, Some(x)) => MxValue::Elapsed(Duration::try_from_secs_f64(x).map_err(|_| {
                status(
                    cat,
                    detail::DATA_OUT_OF_RANGE,
                    format!("{x} seconds is not an elapsed time"),
                )
            })?),
            _ => return Err(wrong()),
        },
        _ => return Err(wrong()),
    })
}

/// Parse text as a value of a type (control API). Arrays: comma-separated.
pub(crate) fn parse_text(
    text: &str,
    t: MxDataType,
    array_length: Option<usize>,
) -> Result<MxValue, String> {
    if array_length.is_some() {
        let items: Vec<MxValue> = text
            .split(',')
            .map(|s| parse_text(s.trim(), t, None))
            .collect::<Result<_, _>>()?;
        return array_of(t, &items).map(MxValue::Array);
    }
    // An elapsed time is given in seconds.
    let value = match (t, text.trim().parse::<f64>()) {
        (MxDataType::ElapsedTime, Ok(seconds)) => MxValue::Double(seconds),
        _ => MxValue::String(text.to_string()),
    };
    coerce(&value, t, None).map_err(|s| s.diagnostic_text)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse an RFC 3339 time ("2026-05-01T12:00:00Z", "2026-05-01 12:00:00.5+02:00").
pub(crate) fn parse_time_text(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let at = |k: usize| b.get(k).copied();
    if at(4) != Some(b'-')
        || at(7) != Some(b'-')
        || !matches!(at(10), Some(b'T' | b't' | b' '))
        || at(13) != Some(b':')
        || at(16) != Some(b':')
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // ASCII digits are one byte each; nanoseconds keep the first nine.
        let padded = format!("{:0<9}", frac.get(..digits.min(9))?);
        nanos = padded.parse().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
    } else {
        Some(
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(u64::from(nanos)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text() {
        assert_eq!(
            parse_time_text("1970-01-01T00:00:10Z"),
            Some(UNIX_EPOCH + Duration::from_secs(10))
        );
        assert_eq!(
            parse_time_text("2000-03-01T01:00:00.5+01:00"),
            Some(UNIX_EPOCH + Duration::from_millis(951_868_800_500))
        );
        assert_eq!(parse_time_text("yesterday"), None);
    }

    #[test]
    fn time_text_cut_inside_a_character_is_refused() {
        for text in [
            "2026-05-01T12:00:0\u{e9}",
            "2026-05-01T12:00:00.\u{e9}",
            "2026-05-01\u{e9}12:00:00Z",
            "2026-05-01T12:00:00.1234567890123+01:0\u{e9}",
        ] {
            assert_eq!(parse_time_text(text), None, "{text}");
        }
    }

    #[test]
    fn coercion_follows_mxaccess() {
        assert_eq!(
            coerce(&MxValue::Int32(3), MxDataType::Double, None).unwrap(),
            MxValue::Double(3.0)
        );
        assert_eq!(
            coerce(&MxValue::String("12".into()), MxDataType::Integer, None).unwrap(),
            MxValue::Int32(12)
        );
        assert_eq!(
            coerce(&MxValue::String("x".into()), MxDataType::Double, None)
                .unwrap_err()
                .detail,
            detail::UNABLE_TO_CONVERT_STRING
        );
        assert_eq!(
            coerce(&MxValue::Double(1e10), MxDataType::Integer, None)
                .unwrap_err()
                .detail,
            detail::OVERFLOW
        );
        for huge in [1e30, f64::MAX] {
            let e = coerce(&MxValue::Double(huge), MxDataType::ElapsedTime, None).unwrap_err();
            assert_eq!(e.detail, detail::DATA_OUT_OF_RANGE, "{huge}");
            assert!(
                e.diagnostic_text.contains("is not an elapsed time"),
                "{e:?}"
            );
        }
        assert_eq!(
            coerce(&MxValue::Double(1.5), MxDataType::ElapsedTime, None).unwrap(),
            MxValue::Elapsed(Duration::from_millis(1500))
        );
        assert_eq!(
            coerce(&MxValue::Bool(true), MxDataType::Time, None)
                .unwrap_err()
                .detail,
            detail::WRONG_DATA_TYPE
        );
        assert_eq!(
            coerce(&MxValue::Double(1.0), MxDataType::Double, Some(3))
                .unwrap_err()
                .detail,
            detail::WRONG_NUMBER_OF_DIMENSIONS
        );
    }
}

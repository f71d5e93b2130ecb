//! `subscribe` and `linger`: in `[defaults]`, and on each table that maps PVs (`[[pv]]`;
//! a rule that makes PVs resolves its own keys with [`resolve`] the same way).

use std::time::Duration;

use toml::Spanned;

use super::super::raw::RawSubscribe;
use super::super::types::DurationValue;
use super::super::{Subscribe, DEFAULT_LINGER};
use super::Validator;

/// The longest `linger` accepted: a day, as for the other durations.
const MAX_LINGER: Duration = Duration::from_secs(24 * 3600);

/// The linger written at `key`, checked (0 to 24 hours; `"0s"` un-advises as soon as
/// the last client leaves).
fn linger(v: &mut Validator<'_>, key: &str, d: &Spanned<DurationValue>) -> Option<Duration> {
    let value = d.get_ref().0;
    if value > MAX_LINGER {
        v.err(
            d.span(),
            key,
            format!(
                "{} is longer than 24 hours, the longest accepted",
                humantime::format_duration(value)
            ),
        );
        return None;
    }
    Some(value)
}

/// `[defaults] subscribe` and `linger`: the mode of PVs that do not say, and the linger
/// of on-demand PVs that do not say (kept even when the default mode is `always`).
pub(super) fn defaults(
    v: &mut Validator<'_>,
    mode: Option<&Spanned<RawSubscribe>>,
    raw_linger: Option<&Spanned<DurationValue>>,
) -> (Subscribe, Duration) {
    let linger = raw_linger
        .and_then(|d| linger(v, "defaults.linger", d))
        .unwrap_or(DEFAULT_LINGER);
    let subscribe = match mode.map(|m| *m.get_ref()) {
        Some(RawSubscribe::OnDemand) => Subscribe::OnDemand { linger },
        Some(RawSubscribe::Always) | None => Subscribe::Always,
    };
    (subscribe, linger)
}

/// A table's `subscribe` and `linger` (at `table` such as `pv[3]`), falling back to
/// `[defaults]` (`default_mode`, `default_linger`). A `linger` on a table whose PVs are
/// subscribed always is refused: it would do nothing.
pub(crate) fn resolve(
    v: &mut Validator<'_>,
    table: &str,
    mode: Option<&Spanned<RawSubscribe>>,
    raw_linger: Option<&Spanned<DurationValue>>,
    default_mode: Subscribe,
    default_linger: Duration,
) -> Subscribe {
    let on_demand = match mode.map(|m| *m.get_ref()) {
        Some(RawSubscribe::OnDemand) => true,
        Some(RawSubscribe::Always) => false,
        None => default_mode.is_on_demand(),
    };
    let own = raw_linger.and_then(|d| linger(v, &format!("{table}.linger"), d));
    if !on_demand {
        if let Some(d) = raw_linger {
            v.err(
                d.span(),
                format!("{table}.linger"),
                "`linger` applies only to subscribe = \"on_demand\", and this PV is subscribed always",
            );
        }
        return Subscribe::Always;
    }
    Subscribe::OnDemand {
        linger: own.unwrap_or(default_linger),
    }
}

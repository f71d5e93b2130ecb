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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Config, Subscribe, DEFAULT_LINGER};

    fn load(defaults: &str, pvs: &str) -> Result<Config, String> {
        let text =
            format!("[gateway]\nendpoint = \"http://127.0.0.1:1\"\n[defaults]\n{defaults}\n{pvs}");
        Config::from_str_at(&text, Path::new("s.toml")).map_err(|e| e.to_string())
    }

    const A: &str = "[[pv]]\nname = \"A\"\ntag = \"T.A\"\n";

    #[test]
    fn each_pv_takes_its_own_keys_else_the_defaults() {
        let c = load("", A).unwrap();
        assert_eq!(c.pvs[0].subscribe, Subscribe::Always);
        let c = load("subscribe = \"on_demand\"", A).unwrap();
        let linger = DEFAULT_LINGER;
        assert_eq!(c.pvs[0].subscribe, Subscribe::OnDemand { linger });
        // A [defaults] linger serves a PV that asks for on_demand on its own.
        let pv = "[[pv]]\nname = \"A\"\ntag = \"T.A\"\nsubscribe = \"on_demand\"\n";
        let c = load("linger = \"2m\"", pv).unwrap();
        let linger = Duration::from_secs(120);
        assert_eq!(c.pvs[0].subscribe, Subscribe::OnDemand { linger });
        let pv = format!("{pv}linger = \"250ms\"\n");
        let c = load("linger = \"2m\"", &pv).unwrap();
        let linger = Duration::from_millis(250);
        assert_eq!(c.pvs[0].subscribe, Subscribe::OnDemand { linger });
        let pv = "[[pv]]\nname = \"A\"\ntag = \"T.A\"\nsubscribe = \"always\"\n";
        let c = load("subscribe = \"on_demand\"", pv).unwrap();
        assert_eq!(c.pvs[0].subscribe, Subscribe::Always);
        assert!(c.mapping_table().contains("pvs:       1\n"));
        let c = load("subscribe = \"on_demand\"\nlinger = \"0s\"", A).unwrap();
        let linger = Duration::ZERO;
        assert_eq!(c.pvs[0].subscribe, Subscribe::OnDemand { linger });
        assert!(c.mapping_table().contains("1 subscribed on demand"));
    }

    #[test]
    fn bad_keys_are_refused_with_their_position_and_why() {
        let pv = "[[pv]]\nname = \"A\"\ntag = \"T.A\"\nlinger = \"5s\"\n";
        assert_eq!(
            load("", pv).unwrap_err(),
            "s.toml:8:10: pv[1].linger: `linger` applies only to subscribe = \"on_demand\", and this PV is subscribed always"
        );
        assert_eq!(
            load("subscribe = \"sometimes\"", A).unwrap_err(),
            "s.toml:4:13: defaults.subscribe: unknown variant `sometimes`, expected `always` or `on_demand`"
        );
        let e = load("linger = \"25h\"", A).unwrap_err();
        assert!(
            e.contains("defaults.linger: 1day 1h is longer than 24 hours"),
            "{e}"
        );
        let e = load("linger = 5", A).unwrap_err();
        assert!(e.contains("a duration needs a unit"), "{e}");
    }
}

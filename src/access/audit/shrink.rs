//! A record past the queue's byte bound keeps everything but the tail of its arrays.

use serde_json::Value;

use super::AuditRecord;

/// Cuts the arrays of `record` (`previous`, `requested`) so that its JSON line takes at most
/// `budget` bytes, as far as cutting the arrays can; sets `previous_omitted` and
/// `requested_omitted` to the elements left out (only for an array that lost some).
/// Values that are not arrays stay whole.
pub(super) fn shrink(record: &mut AuditRecord, budget: usize) {
    let previous = take_array(&mut record.previous);
    let requested = take_array(&mut record.requested);
    if previous.is_none() && requested.is_none() {
        return;
    }
    // The record without its arrays, with the omitted counts at their largest.
    record.previous_omitted = previous.as_ref().map(Vec::len);
    record.requested_omitted = requested.as_ref().map(Vec::len);
    if previous.is_some() {
        record.previous = Some(Value::Array(Vec::new()));
    }
    if requested.is_some() {
        record.requested = Some(Value::Array(Vec::new()));
    }
    let base = serde_json::to_string(record).map_or(0, |l| l.len());
    let room = budget.saturating_sub(base);
    let share = if requested.is_some() { room / 2 } else { room };
    let (kept_previous, used) = previous.as_deref().map_or((0, 0), |a| fitting(a, share));
    let (kept_requested, _) = requested
        .as_deref()
        .map_or((0, 0), |a| fitting(a, room.saturating_sub(used)));
    put_back(
        &mut record.previous,
        &mut record.previous_omitted,
        previous,
        kept_previous,
    );
    put_back(
        &mut record.requested,
        &mut record.requested_omitted,
        requested,
        kept_requested,
    );
}

fn take_array(v: &mut Option<Value>) -> Option<Vec<Value>> {
    match v.take() {
        Some(Value::Array(a)) => Some(a),
        other => {
            *v = other;
            None
        }
    }
}

/// How many leading elements of `a` fit in `room` bytes (with their commas), and the
/// bytes they take.
fn fitting(a: &[Value], room: usize) -> (usize, usize) {
    let mut used = 0;
    for (i, v) in a.iter().enumerate() {
        let n = serde_json::to_string(v).map_or(usize::MAX, |s| s.len()) + 1;
        if used + n > room {
            return (i, used);
        }
        used += n;
    }
    (a.len(), used)
}

fn put_back(
    value: &mut Option<Value>,
    omitted: &mut Option<usize>,
    array: Option<Vec<Value>>,
    kept: usize,
) {
    let Some(mut array) = array else {
        *omitted = None;
        return;
    };
    let left_out = array.len() - kept.min(array.len());
    array.truncate(kept);
    *value = Some(Value::Array(array));
    *omitted = (left_out > 0).then_some(left_out);
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;

    #[test]
    fn arrays_are_cut_to_the_budget_and_the_omitted_counted() {
        let mut r = record("P:1");
        r.previous = Some((0..1000).collect::<Vec<i32>>().into());
        r.requested = Some((0..1000).map(|i| i as f64 + 0.5).collect::<Vec<_>>().into());
        let whole = serde_json::to_string(&r).unwrap().len();
        shrink(&mut r, 2000);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.len() <= 2000, "{} bytes of {whole}", line.len());
        let p = r.previous.as_ref().unwrap().as_array().unwrap().len();
        let q = r.requested.as_ref().unwrap().as_array().unwrap().len();
        assert!(p > 0 && q > 0, "{p} {q}");
        assert_eq!(p + r.previous_omitted.unwrap(), 1000);
        assert_eq!(q + r.requested_omitted.unwrap(), 1000);
        // The elements kept are the first ones.
        assert_eq!(r.requested.as_ref().unwrap()[0], 0.5);

        // Nothing fits: the arrays are emptied, the record is kept.
        let mut r = record("P:2");
        r.requested = Some(vec![1; 10].into());
        shrink(&mut r, 10);
        assert_eq!(r.requested, Some(Value::Array(vec![])));
        assert_eq!(r.requested_omitted, Some(10));
        assert_eq!(r.previous_omitted, None);

        // A scalar stays whole; an array that fits is not marked.
        let mut r = record("P:3");
        r.requested = Some(vec![1, 2].into());
        shrink(&mut r, 100_000);
        assert_eq!(r.requested, Some(vec![1, 2].into()));
        assert_eq!(r.previous, Some(1.5.into()));
        assert_eq!((r.previous_omitted, r.requested_omitted), (None, None));
    }
}

//! Item handles from a subscription: each must name one tag, or its events could not be
//! told apart.
use std::collections::HashMap;

use super::types::{BulkEntryError, SubscribeResult};

/// Turns every successful entry whose item handle the gateway also gave to another tag
/// into a failed one that says so: events for that handle cannot be told apart, so
/// neither tag can be served from them.
pub(crate) fn refuse_shared_handles(results: &mut [SubscribeResult]) {
    let mut tags_of: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, r) in results.iter().enumerate() {
        if r.outcome.is_ok() {
            tags_of.entry(r.item_handle.0).or_default().push(i);
        }
    }
    for (handle, entries) in tags_of {
        if entries.len() < 2 {
            continue;
        }
        let mut names: Vec<&str> = entries
            .iter()
            .filter_map(|&i| results.get(i).map(|r| r.tag.as_str()))
            .take(4)
            .collect();
        if entries.len() > names.len() {
            names.push("...");
        }
        let message = format!(
            "the gateway gave item handle {handle} to {} tags ({}); their events cannot be told apart",
            entries.len(),
            names.join(", ")
        );
        for i in entries {
            if let Some(r) = results.get_mut(i) {
                r.outcome = Err(BulkEntryError {
                    message: message.clone(),
                    hresult: 0,
                    statuses: Vec::new(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ItemHandle;

    fn ok(tag: &str, handle: i32) -> SubscribeResult {
        SubscribeResult {
            tag: tag.into(),
            item_handle: ItemHandle(handle),
            outcome: Ok(()),
        }
    }

    #[test]
    fn a_handle_given_to_two_tags_fails_both() {
        let mut results = vec![ok("A.X", 1), ok("B.X", 2), ok("C.X", 1)];
        // A failed entry's handle means nothing, even when it repeats one.
        results.push(SubscribeResult {
            outcome: Err(BulkEntryError {
                message: "no such tag".into(),
                hresult: 0,
                statuses: Vec::new(),
            }),
            ..ok("D.X", 2)
        });
        refuse_shared_handles(&mut results);
        assert!(results[1].outcome.is_ok());
        for i in [0, 2] {
            let e = results[i].outcome.as_ref().unwrap_err();
            assert_eq!(
                e.message,
                "the gateway gave item handle 1 to 2 tags (A.X, C.X); their events cannot be told apart"
            );
        }
        assert_eq!(
            results[3].outcome.as_ref().unwrap_err().message,
            "no such tag"
        );
    }
}

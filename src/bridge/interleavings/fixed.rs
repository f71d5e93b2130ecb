//! Histories written out by hand: defects the generated ones found, kept as they were
//! found whatever the generator (`gen.rs`) becomes (a change to it changes the history
//! each seed in `proptest-regressions/` makes).

use std::sync::Mutex;

use super::gen::{Answering, Edit, Mapping, PvSpec, Step};
use super::run_history;
use super::who::Who;
use crate::bridge::writes::calls::FOLLOW_BATCH;

fn anyone() -> Who {
    Who {
        account: 0,
        ca: false,
        host: 0,
        operator: false,
    }
}

/// Found by a CI run (session 11, seed `xs 3337741186 2626586247 3803011848 3211241305`
/// of the generator then): put 1's write is accepted and times out (3 s); its
/// OnWriteComplete comes after the late window that follows, while put 2's write call is
/// still unanswered. It was taken as put 2's, which then waited to be confirmed though its
/// call failed in transport. Now an OnWriteComplete before the call's reply is held until
/// the reply: put 2 fails with the call's error.
#[test]
fn a_late_onwritecomplete_never_confirms_a_write_whose_call_then_fails() {
    let mapping = Mapping {
        pvs: vec![Some(PvSpec::writable(0)), None, None, None, None],
        rule: None,
    };
    let steps = vec![
        // The SubscribeBulk answered, and the first values.
        Step::Answer(0, Answering::Asked),
        Step::Events(64),
        Step::Put(0, anyone()),
        Step::Put(0, anyone()),
        Step::Answer(0, Answering::Asked),
        Step::Wait(3_000),
        Step::Wait(3_000),
        Step::Events(64),
        Step::Answer(0, Answering::Failed),
    ];
    let counts = Mutex::default();
    if let Err(e) = run_history(mapping, None, FOLLOW_BATCH, steps, &counts) {
        panic!("{e}");
    }
}

/// Found by a run of 30,000 histories (session 12; seed `xs 2655062280 ...` of this
/// generator, shrunk by hand to these steps): an on-demand PV, watched in a new session,
/// loses its client while its advise is under way (behind a buffered PV's); a reload makes
/// it buffered. The plain item's result no longer fits it, so nothing ended its advise,
/// and a put held for that advise was never answered. Now a result that no longer fits
/// its PV ends the PV's advise unless another is queued or in flight, and the held put is
/// taken (and answered).
#[test]
fn a_put_held_for_an_advise_that_a_reload_voids_is_answered() {
    let mapping = Mapping {
        pvs: vec![
            None,
            Some(PvSpec {
                on_demand: true,
                ..PvSpec::writable(0)
            }),
            None,
            Some(PvSpec {
                writable: false,
                buffered: true,
                ..PvSpec::writable(0)
            }),
            None,
        ],
        rule: None,
    };
    let steps = vec![
        Step::Watch(1, true),
        Step::Lose,
        Step::Reconnect,
        Step::Watch(1, false),
        Step::Wait(1000),
        Step::Reload(vec![Edit::Buffered(1)]),
        Step::Put(1, anyone()),
    ];
    let counts = Mutex::default();
    if let Err(e) = run_history(mapping, None, FOLLOW_BATCH, steps, &counts) {
        panic!("{e}");
    }
}

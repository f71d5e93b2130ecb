//! What one wakeup of pvxs's TCP thread per post costs, and what a batch would save
//! (issue 23): benches/cpp/pvxs_batch.cpp posts to N PVs watched by one pvxs client, in
//! three ways, alternating in one run: each post as soon as its event's work is done,
//! the posts of a turn back to back from the posting thread (what mxpva does), and the
//! same posts made on pvxs's own TCP thread in one call.
//!
//!     cargo bench --bench pvxs_batch                        # N = 1,000 and 10,000, 3 us of work per event
//!     cargo bench --bench pvxs_batch -- 1000 2 3 10000 3    # N SECONDS WORK_US RATE ROUNDS (RATE 0: as fast as possible)

mod support;
use support::build_cpp;

fn main() {
    let exe = build_cpp("pvxs_batch");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: Vec<Vec<String>> = if args.is_empty() {
        [["1000", "3", "3", "0", "3"], ["10000", "3", "3", "0", "3"]]
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    } else {
        vec![args]
    };
    for r in runs {
        let status = std::process::Command::new(&exe)
            .arg("run")
            .args(&r)
            .status()
            .expect("run pvxs_batch");
        assert!(status.success(), "pvxs_batch {r:?} failed");
    }
}

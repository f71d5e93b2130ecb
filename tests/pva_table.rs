//! NTTable PVs of the pvxs shim, read by real clients: pvget (pvAccessCPP, prints the
//! table), p4p (pvxs, as an NTTable with labels) and pvapy; monitored through whole-table
//! updates; puts refused.

mod clients;

use clients::clients;
use mxpva::pva::*;

fn columns() -> Vec<Column> {
    vec![
        Column::new("reference", "Reference", ScalarType::String),
        Column::new("priority", "Priority", ScalarType::Int32),
        Column::new("value", "Value", ScalarType::Float64),
    ]
}

fn rows(refs: &[&str], prio: &[i32], values: &[f64]) -> TableUpdate {
    TableUpdate::rows(vec![
        NtValue::StringArray(refs.iter().map(|s| s.to_string()).collect()),
        NtValue::Int32Array(prio.to_vec()),
        NtValue::Float64Array(values.to_vec()),
    ])
}

/// p4p reads the table: labels, then one `label=value` line per row.
const P4P_TABLE: &str = r#"
import sys
from p4p.client.thread import Context
v = Context('pva').get(sys.argv[1], timeout=10)
print('id', v.getID())
print('labels', list(v.labels))
cols = v.value.todict()
n = len(cols['reference'])
for i in range(n):
    print('row', cols['reference'][i], int(cols['priority'][i]), float(cols['value'][i]))
print('severity', v.alarm.severity, 'message', v.alarm.message)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_is_read_whole_by_pvget_p4p_and_pvapy_and_refuses_puts() {
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    server.start().unwrap();
    let env = server.info().unwrap().client_env;
    let (events, _rx) = event_channel();
    let mut table = TablePv::new("T:ALARMS", columns(), &events).unwrap();
    table
        .open(&rows(&["Tank001.Level.HiHi"], &[200], &[93.5]))
        .unwrap();
    server.add_table(&table).unwrap();

    let run = clients().python(&env, P4P_TABLE, &["T:ALARMS"]).await;
    assert!(run.ok, "{}", run.text());
    assert!(
        run.stdout.contains("id epics:nt/NTTable:1.0"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout
            .contains("labels ['Reference', 'Priority', 'Value']"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout.contains("row Tank001.Level.HiHi 200 93.5"),
        "{}",
        run.text()
    );

    // A whole new table: two rows, and an alarm on the table itself.
    table
        .post(
            &rows(
                &["Tank001.Level.HiHi", "Pump001.PumpFault"],
                &[200, 100],
                &[95.25, 1.0],
            )
            .with_alarm(Alarm::new(
                Severity::Invalid,
                AlarmStatus::Driver,
                "alarm feed lost",
            )),
        )
        .unwrap();
    let run = clients().run("pvget", &env, &["T:ALARMS"]).await;
    assert!(run.ok, "{}", run.text());
    // pvget prints an NTTable as a table: labels as the header, one line per row.
    let text = run.stdout;
    let header = text
        .lines()
        .find(|l| l.contains("Reference"))
        .unwrap_or_else(|| panic!("{text}"));
    for label in ["Reference", "Priority", "Value"] {
        assert!(header.contains(label), "{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("Tank001.Level.HiHi") && l.contains("200") && l.contains("95.25")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Pump001.PumpFault") && l.contains("100")),
        "{text}"
    );

    let run = clients().python(&env, P4P_TABLE, &["T:ALARMS"]).await;
    assert!(
        run.stdout.contains("row Pump001.PumpFault 100 1.0"),
        "{}",
        run.text()
    );
    assert!(
        run.stdout.contains("severity 3 message alarm feed lost"),
        "{}",
        run.text()
    );

    // pvapy sees the same columns.
    let run = clients()
        .python(
            &env,
            "import pvaccess, sys\n\
             pv = pvaccess.Channel('T:ALARMS').get('')\n\
             print('refs', list(pv['value']['reference']))\n\
             print('labels', list(pv['labels']))",
            &[],
        )
        .await;
    assert!(
        run.stdout
            .contains("refs ['Tank001.Level.HiHi', 'Pump001.PumpFault']"),
        "{}",
        run.text()
    );

    // An empty table is a table with no rows, not an error.
    table.post(&rows(&[], &[], &[])).unwrap();
    let run = clients().python(&env, P4P_TABLE, &["T:ALARMS"]).await;
    assert!(run.ok, "{}", run.text());
    assert!(!run.stdout.contains("row "), "{}", run.text());

    // Read-only: a put is refused with the reason.
    let run = clients()
        .python(
            &env,
            "from p4p.client.thread import Context\n\
             from p4p.client.raw import RemoteError\n\
             c = Context('pva')\n\
             v = c.get('T:ALARMS', timeout=10)\n\
             try:\n    c.put('T:ALARMS', v, timeout=10)\n\
             except RemoteError as e:\n    print('RemoteError:', e)",
            &[],
        )
        .await;
    assert!(
        run.stdout
            .contains("RemoteError: T:ALARMS is read-only: put refused"),
        "{}",
        run.text()
    );

    // The shim reads back exactly what was posted.
    let current = table.current().unwrap();
    assert_eq!(
        current.columns.unwrap(),
        vec![
            NtValue::StringArray(vec![]),
            NtValue::Int32Array(vec![]),
            NtValue::Float64Array(vec![])
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pvmonitor_sees_each_whole_table_update() {
    let server = Server::new(&ServerConfig::isolated()).unwrap();
    server.start().unwrap();
    let env = server.info().unwrap().client_env;
    let (events, _rx) = event_channel();
    let mut table = TablePv::new("T:MON", columns(), &events).unwrap();
    table.open(&rows(&["A.B.C"], &[1], &[1.0])).unwrap();
    server.add_table(&table).unwrap();

    let (child, first, mut lines) = clients().pvmonitor(&env, "T:MON").await;
    let mut seen = format!("{first}\n");
    read_until(&mut lines, "A.B.C", &mut seen).await;
    table
        .post(&rows(&["A.B.C", "X.Y.Z"], &[1, 999], &[1.0, 2.5]))
        .unwrap();
    read_until(&mut lines, "X.Y.Z", &mut seen).await;
    assert!(seen.contains("999"), "{seen}");
    child.kill();
}

/// Appends pvmonitor's lines to `seen` until one contains `needle` (at most 20 s).
async fn read_until(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    needle: &str,
    seen: &mut String,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            _ => panic!("pvmonitor never printed {needle:?}:\n{seen}"),
        }
    }
}

#[test]
fn bad_tables_are_refused_with_the_reason() {
    let (events, _rx) = event_channel();
    let err = TablePv::new("T:X", vec![], &events).unwrap_err();
    assert_eq!(
        err.to_string(),
        "T:X: invalid PV: a table needs at least one column"
    );
    let dup = vec![
        Column::new("a", "A", ScalarType::Int32),
        Column::new("a", "B", ScalarType::Int32),
    ];
    assert_eq!(
        TablePv::new("T:X", dup, &events).unwrap_err().to_string(),
        "T:X: invalid PV: duplicate column `a`"
    );
    let bad = vec![Column::new("a.b", "A", ScalarType::Int32)];
    assert!(TablePv::new("T:X", bad, &events)
        .unwrap_err()
        .to_string()
        .contains("is not a field name"));

    let mut t = TablePv::new("T:X", columns(), &events).unwrap();
    let short = TableUpdate::rows(vec![NtValue::StringArray(vec![])]);
    assert_eq!(
        t.open(&short).unwrap_err().to_string(),
        "T:X: invalid PV: the update has 1 columns, the table 3"
    );
    let ragged = TableUpdate::rows(vec![
        NtValue::StringArray(vec!["a".into()]),
        NtValue::Int32Array(vec![1, 2]),
        NtValue::Float64Array(vec![1.0]),
    ]);
    assert_eq!(
        t.open(&ragged).unwrap_err().to_string(),
        "T:X: invalid PV: column `priority` has 2 rows, the first column 1"
    );
    let wrong = TableUpdate::rows(vec![
        NtValue::StringArray(vec![]),
        NtValue::Float64Array(vec![]),
        NtValue::Float64Array(vec![]),
    ]);
    assert_eq!(
        t.open(&wrong).unwrap_err().to_string(),
        "T:X.value.priority: value of type double[] posted to a PV of type int[]"
    );
    assert!(!t.is_open());
    assert!(matches!(
        t.post(&rows(&[], &[], &[])),
        Err(PvaError::NotOpen { .. })
    ));
}

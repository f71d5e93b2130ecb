//! `mxpva demo` as a user runs it: the simulator and the bridge in one process, read and
//! written with pvget, pvput and p4p.

mod clients;

use clients::{clients, free_ports, pva_env, spawn_mxpva};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_live_values_and_confirmed_writes() {
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let mut demo = spawn_mxpva(&["demo".as_ref()], &server_env);

    // Speed moves and carries its metadata.
    let first = clients()
        .pvget_until(&env, &["-v", "DEMO:Pump001:Speed"], "NO_ALARM")
        .await;
    assert!(first.contains("string units rpm"), "{first}");
    assert!(first.contains("double limitHigh 3000"), "{first}");

    // A put round trip: confirmed by the simulator, then read back.
    let run = clients()
        .run("pvput", &env, &["DEMO:Pump001:SpeedSP", "1234.5"])
        .await;
    assert!(!run.text().contains("Error"), "{}", run.text());
    let value = clients()
        .pvget_value_until(&env, "DEMO:Pump001:SpeedSP", "1234.5")
        .await;
    assert!(value.contains("1234.5"), "{value}");

    // System Platform refuses a ViewOnly attribute; the client sees why.
    let run = clients()
        .run("pvput", &env, &["DEMO:Valve001:Position", "5"])
        .await;
    assert!(
        run.text().contains(
            "Error: DEMO:Valve001:Position: System Platform refused the write: WriteAccessDenied"
        ),
        "{}",
        run.text()
    );
    // Refused by the bridge before anything is sent.
    let run = clients()
        .run("pvput", &env, &["DEMO:Pump001:SpeedSP", "5000"])
        .await;
    assert!(
        run.text()
            .contains("Error: DEMO:Pump001:SpeedSP: 5000 is outside the control limits 0 to 3000"),
        "{}",
        run.text()
    );
    let out = clients()
        .p4p_put(&env, "DEMO:Pump001:SpeedSP", "float('nan')")
        .await;
    assert!(
        out.contains("RemoteError: DEMO:Pump001:SpeedSP: NaN cannot be written"),
        "{out}"
    );

    // A boolean served as NTEnum, written by index.
    let run = clients()
        .run("pvput", &env, &["DEMO:Pump001:Running", "0"])
        .await;
    assert!(!run.text().contains("Error"), "{}", run.text());

    assert!(demo.try_wait().unwrap().is_none(), "the demo exited");
    demo.kill().await.unwrap();
}

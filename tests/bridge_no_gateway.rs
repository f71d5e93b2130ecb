//! `mxpva run` with no gateway to reach: the PVs are served INVALID with the reason, and
//! puts fail at once instead of being queued. Read with pvget, pvput and p4p.

mod clients;

use std::time::Duration;

use clients::{clients, free_ports, pva_env, spawn_mxpva};

const CONFIG: &str = r#"
[gateway]
endpoint = "http://127.0.0.1:1"
reconnect_initial = "100ms"
reconnect_max = "500ms"

[defaults]
prefix = "NOGW:"

[[pv]]
name = "SP"
tag = "Pump001.SpeedSP"
type = "float64"
units = "rpm"
writable = true
control = { low = 0.0, high = 3000.0 }

[[pv]]
name = "RO"
tag = "Pump001.Speed"
type = "float64"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_pvs_are_invalid_and_puts_fail_at_once() {
    let dir = std::env::temp_dir().join(format!("mxpva-nogw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let (tcp, udp) = free_ports();
    let (server_env, client_env) = pva_env(tcp, udp);
    let mut bridge = spawn_mxpva(
        &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
        &server_env,
    );

    // The PV exists, with the reason the value cannot be trusted.
    let text = clients()
        .pvget_until(&client_env, &["-v", "NOGW:SP"], "gateway connection lost")
        .await;
    assert!(text.contains("int severity 3"), "{text}");
    assert!(text.contains("int status 2"), "{text}");
    assert!(
        text.contains("gateway connection lost: cannot connect") && text.contains("refused"),
        "{text}"
    );
    assert!(text.contains("string units rpm"), "{text}");

    let run = clients().run("pvput", &client_env, &["NOGW:SP", "5"]).await;
    assert!(
        run.text()
            .contains("Error: NOGW:SP: gateway unavailable: write not sent"),
        "{}",
        run.text()
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "the put was not answered at once"
    );

    let out = clients().p4p_put(&client_env, "NOGW:RO", "1.0").await;
    assert!(
        out.contains("RemoteError: NOGW:RO is read-only: put refused"),
        "{out}"
    );

    // Still serving after all that.
    assert!(bridge.try_wait().unwrap().is_none(), "the bridge exited");
    let run = clients().run("pvget", &client_env, &["NOGW:RO"]).await;
    assert!(run.stdout.contains("NOGW:RO"), "{}", run.text());
    bridge.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

//! A hostile Galaxy Repository (a gRPC server of the contract's galaxy_repository.v1,
//! built from proto/) against `mxpva discover` and `mxpva run` with `[[discover]]` rules:
//! page tokens that cycle, endless pages with a huge `total_object_count`, empty and
//! overlong names. mxpva refuses them with a clear message and goes on; `run` keeps
//! serving its explicit PVs.

mod clients;

use std::path::Path;
use std::time::{Duration, Instant};

use clients::{clients, free_ports, pva_env, spawn_mxpva_logged};
use tonic::{Request, Response, Status};

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod gpb {
    tonic::include_proto!("galaxy_repository.v1");
}

use gpb::galaxy_repository_server::{GalaxyRepository, GalaxyRepositoryServer};

#[derive(Clone, Copy)]
enum Mode {
    /// Page tokens a -> b -> a ...
    Cycle,
    /// A new token on every page, 5,000 objects each, total_object_count i32::MAX.
    Endless,
    /// One page: objects and attributes with empty, overlong and bad names, and one good.
    BadNames,
}

struct Hostile(Mode);

fn object(tag: &str, attributes: Vec<gpb::GalaxyAttribute>) -> gpb::GalaxyObject {
    gpb::GalaxyObject {
        gobject_id: 7,
        tag_name: tag.into(),
        contained_name: tag.into(),
        // A parent and area that point at itself: a cycle nothing should follow.
        parent_gobject_id: 7,
        area_gobject_id: 7,
        category_id: 10,
        attributes,
        ..Default::default()
    }
}

fn attribute(name: &str) -> gpb::GalaxyAttribute {
    gpb::GalaxyAttribute {
        attribute_name: name.into(),
        mx_data_type: 4,
        data_type_name: "Double".into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl GalaxyRepository for Hostile {
    async fn test_connection(
        &self,
        _: Request<gpb::TestConnectionRequest>,
    ) -> Result<Response<gpb::TestConnectionReply>, Status> {
        Ok(Response::new(gpb::TestConnectionReply { ok: true }))
    }

    async fn get_last_deploy_time(
        &self,
        _: Request<gpb::GetLastDeployTimeRequest>,
    ) -> Result<Response<gpb::GetLastDeployTimeReply>, Status> {
        Err(Status::unimplemented("hostile"))
    }

    async fn discover_hierarchy(
        &self,
        request: Request<gpb::DiscoverHierarchyRequest>,
    ) -> Result<Response<gpb::DiscoverHierarchyReply>, Status> {
        let token = request.into_inner().page_token;
        let reply = match self.0 {
            Mode::Cycle => gpb::DiscoverHierarchyReply {
                objects: vec![object("Loop", vec![attribute("X")])],
                next_page_token: if token == "a" { "b" } else { "a" }.into(),
                total_object_count: 2,
            },
            Mode::Endless => {
                let n: u64 = token.parse().unwrap_or(0);
                gpb::DiscoverHierarchyReply {
                    objects: (0..5000)
                        .map(|i| object(&format!("O{n}_{i}"), vec![]))
                        .collect(),
                    next_page_token: (n + 1).to_string(),
                    total_object_count: i32::MAX,
                }
            }
            Mode::BadNames => gpb::DiscoverHierarchyReply {
                objects: vec![
                    object("", vec![attribute("X")]),
                    object(&"T".repeat(400), vec![attribute("X")]),
                    object(
                        "Good",
                        vec![
                            attribute(""),
                            attribute(&"A".repeat(400)),
                            attribute("bad name"),
                            attribute("a..b"),
                            attribute("Ok"),
                        ],
                    ),
                ],
                next_page_token: String::new(),
                total_object_count: i32::MAX,
            },
        };
        Ok(Response::new(reply))
    }

    type WatchDeployEventsStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<gpb::DeployEvent, Status>> + Send + 'static>,
    >;

    async fn watch_deploy_events(
        &self,
        _: Request<gpb::WatchDeployEventsRequest>,
    ) -> Result<Response<Self::WatchDeployEventsStream>, Status> {
        // The current state, then (later) one event with a sequence gap, then silence.
        let first = futures_util::stream::iter([Ok(gpb::DeployEvent {
            sequence: 1,
            ..Default::default()
        })]);
        let gap = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(gpb::DeployEvent {
                sequence: 9,
                ..Default::default()
            })
        });
        use futures_util::StreamExt;
        let stream = first.chain(gap).chain(futures_util::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn browse_children(
        &self,
        _: Request<gpb::BrowseChildrenRequest>,
    ) -> Result<Response<gpb::BrowseChildrenReply>, Status> {
        Err(Status::unimplemented("hostile"))
    }
}

async fn serve(mode: Mode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GalaxyRepositoryServer::new(Hostile(mode)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

fn discover(endpoint: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(["discover", "--endpoint", endpoint])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_tokens_that_cycle_are_refused() {
    let endpoint = serve(Mode::Cycle).await;
    let (code, out, err) = discover(&endpoint);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("page token twice") && err.contains("cycle"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_pages_stop_at_the_object_cap() {
    let endpoint = serve(Mode::Endless).await;
    let (code, out, err) = discover(&endpoint);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("more than 1000000 objects"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_overlong_and_bad_names_are_skipped_and_named() {
    let endpoint = serve(Mode::BadNames).await;
    let (code, out, err) = discover(&endpoint);
    assert_eq!(code, 0, "{err}");
    let mapping: toml::Table = out.parse().unwrap();
    let pvs = mapping["pv"].as_array().unwrap();
    assert_eq!(pvs.len(), 1, "{out}");
    assert_eq!(pvs[0]["tag"].as_str(), Some("Good.Ok"));
    for why in [
        "object ``: empty name",
        "name longer than 329 characters",
        "name holds a character a reference may not",
        "empty part in a dotted name",
    ] {
        assert!(out.contains(why), "{why}: {out}");
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("discover-hostile-names");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.toml");
    std::fs::write(&file, &out).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_mxpva"))
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_serving_its_explicit_pvs_when_discovery_fails() {
    let endpoint = serve(Mode::Cycle).await;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("discover-hostile-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nendpoint = \"{endpoint}\"\nreconnect_initial = \"100ms\"\nreconnect_max = \"200ms\"\n\n[alarms]\nenabled = false\n\n[[pv]]\nname = \"KEPT\"\ntag = \"Tank001.Level\"\n\n[[discover]]\n"
        ),
    )
    .unwrap();
    let log = dir.join("bridge.log");
    let (tcp, udp) = free_ports();
    let (server_env, env) = pva_env(tcp, udp);
    let mut bridge = spawn_mxpva_logged(
        &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
        &server_env,
        Some(&log),
    );
    // The bootstrap event and the gap each lead to a discovery; both fail.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("discovery failed").count() >= 2 {
            assert!(text.contains("deploy sequence gap (1 -> 9)"), "{text}");
            assert!(text.contains("cycle"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed discovery logged:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bridge.try_wait().unwrap().is_none(), "mxpva run stopped");
    // The explicit PV is still served (INVALID: the gateway has no MXAccess service).
    let text = clients().pvget_until(&env, &["KEPT"], "KEPT").await;
    assert!(text.contains("KEPT"), "{text}");
    assert!(bridge.try_wait().unwrap().is_none(), "mxpva run stopped");
}

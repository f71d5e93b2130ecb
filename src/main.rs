//! The `mxpva` command line: parse arguments, set up logging, hand over to the library.
// No input stops mxpva: see the same attribute in src/lib.rs.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mxpva",
    version,
    about = "Serve AVEVA System Platform attributes as EPICS PVAccess PVs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway simulator (MXAccess Gateway contract on a simulated Galaxy).
    Sim {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: std::net::SocketAddr,
        /// Galaxy file (TOML); the built-in demo plant (config/sim-galaxy.toml) when absent.
        #[arg(long)]
        galaxy: Option<std::path::PathBuf>,
        /// Serve TLS with this certificate (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// Private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
    /// Run the bridge: serve the PVs mapped in a config file.
    Run {
        /// The TOML config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Log lines as `text` (the default) or `json` (one object per line); overrides
        /// `[log] format`.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<mxpva::config::LogFormat>,
    },
    /// Validate a config file and print its mapping table. Exit 78 on a config error.
    Check {
        /// The TOML config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Print only the names of the PVs it serves, one per line, sorted (to check that
        /// no two shards serve one name: docs/scale-out.md).
        #[arg(long)]
        pv_names: bool,
    },
    /// Print the PVs that Galaxy discovery makes as a config file ([[pv]] tables), or
    /// with --areas the Galaxy's areas and their attribute counts (to balance shards).
    /// Exit 78 on a config error or duplicate PV names.
    Discover(mxpva::discover::DiscoverArgs),
    /// The simulator and the bridge in one process: the demo plant as DEMO:* PVs.
    /// PVAccess interfaces and ports follow EPICS_PVAS_*.
    Demo,
}

fn main() -> anyhow::Result<()> {
    // First of all: a SIGHUP while starting must not end the daemon (src/signals.rs).
    mxpva::signals::catch_early_hangups()?;
    let cli = Cli::parse();
    if let Command::Run { config, log_format } = &cli.command {
        // The config names the log format: read it first (its errors go to stderr).
        let config = load_config(config);
        mxpva::logging::init(log_format.unwrap_or(config.log.format));
        return run(config);
    }
    mxpva::logging::init(mxpva::config::LogFormat::Text);
    match cli.command {
        Command::Sim {
            listen,
            galaxy,
            tls_cert,
            tls_key,
        } => {
            let tls = tls_cert.as_deref().zip(tls_key.as_deref());
            mxpva::sim::run_standalone(listen, galaxy.as_deref(), tls)?;
            Ok(())
        }
        Command::Check { config, pv_names } => check(&config, pv_names),
        Command::Run { .. } => Ok(()),
        Command::Demo => demo(),
        Command::Discover(args) => discover(args),
    }
}

/// `mxpva check`: the table (or with `--pv-names` the names served) on stdout and exit 0,
/// or every problem on stderr and exit 78.
fn check(path: &std::path::Path, pv_names: bool) -> ! {
    match mxpva::config::Config::load(path) {
        Ok(config) if pv_names => {
            for name in config.served_pv_names() {
                println!("{name}");
            }
            if !config.discover.is_empty() {
                eprintln!(
                    "note: the PVs of the {} [[discover]] rules are not listed: they need the \
                     Galaxy; list them with `mxpva discover --config {} > FILE` and \
                     `mxpva check --config FILE --pv-names`",
                    config.discover.len(),
                    path.display()
                );
            }
            std::process::exit(0)
        }
        Ok(config) => {
            // The ACF too: asLib reads it, and every group the config names must be in it.
            let access = load_access(&config);
            print!("{}", config.mapping_table());
            print!("{}", mxpva::access::report(&access, &config));
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(mxpva::config::EXIT_CONFIG)
        }
    }
}

/// Loads a config, or exits 78 with every problem on stderr.
fn load_config(path: &std::path::Path) -> mxpva::config::Config {
    mxpva::config::Config::load(path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(mxpva::config::EXIT_CONFIG)
    })
}

/// Loads the config's `[access] file`, or exits 78 with what is wrong with it.
fn load_access(config: &mxpva::config::Config) -> mxpva::access::Access {
    mxpva::access::Access::start(config).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(mxpva::config::EXIT_CONFIG)
    })
}

/// `mxpva run`: the bridge until Ctrl-C or SIGTERM, reloading its config on SIGHUP.
fn run(config: mxpva::config::Config) -> anyhow::Result<()> {
    let path = config.path.clone();
    // A bad ACF stops the start here, with exit 78; the bridge loads it again as its own.
    drop(load_access(&config));
    let pva = mxpva::bridge::server_config(&config.server);
    // One thread: the bridge is one task, and with the gateway stream on another worker
    // every event crossed threads (wakeups were most of the kernel time in the e2e
    // benchmark profile; p99 at 10,000 updates/s went from 1 to 3 ms to 0.7 ms).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let signals = mxpva::signals::Signals::install()?;
        let (tx, requests) = tokio::sync::mpsc::unbounded_channel();
        let reload = mxpva::bridge::Reload { path, requests };
        mxpva::bridge::run_reloading(config, pva, signals.shutdown_reloading(tx), Some(reload))
            .await?;
        anyhow::Ok(())
    })
}

/// `mxpva discover`: the file on stdout, or the problem on stderr (exit 78 for a config
/// problem, 1 for the gateway).
fn discover(args: mxpva::discover::DiscoverArgs) -> anyhow::Result<()> {
    use mxpva::discover::DiscoverCliError as E;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(mxpva::discover::run_cli(&args)) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e @ (E::Config(_) | E::Duplicates(_) | E::Usage(_))) => {
            eprintln!("{e}");
            std::process::exit(mxpva::config::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

/// The demo mapping, built in so `mxpva demo` works from any directory.
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// `mxpva demo`: the simulator on a free loopback port and the bridge pointed at it.
fn demo() -> anyhow::Result<()> {
    let mut config =
        mxpva::config::Config::from_str_at(DEMO_CONFIG, std::path::Path::new("config/demo.toml"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let signals = mxpva::signals::Signals::install()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        config.gateway.endpoint = format!("http://{addr}");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sim = tokio::spawn(mxpva::sim::serve(
            listener,
            mxpva::sim::Galaxy::demo(),
            mxpva::sim::SimOptions::default(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        tracing::info!(%addr, "demo: gateway simulator started");
        let pva = mxpva::bridge::server_config(&config.server);
        mxpva::bridge::run(config, pva, signals.shutdown()).await?;
        let _ = stop_tx.send(());
        let _ = sim.await;
        anyhow::Ok(())
    })
}

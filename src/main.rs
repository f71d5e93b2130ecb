//! The `mxpva` command line.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mxpva", version, about = "Serve AVEVA System Platform attributes as EPICS PVAccess PVs")]
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim {
            listen,
            galaxy,
            tls_cert,
            tls_key,
        } => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .try_init();
            let tls = tls_cert.as_deref().zip(tls_key.as_deref());
            mxpva::sim::run_standalone(listen, galaxy.as_deref(), tls)?;
            Ok(())
        }
    }
}

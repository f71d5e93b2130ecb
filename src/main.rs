//! The `mxpva` command line: parse arguments, set up logging, hand over to the library.
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
    /// Run the gateway simulator.
    Sim,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = mxpva::pva::configure_logging_from_env() {
        tracing::warn!(error = %e, "PVXS_LOG not applied");
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Sim => anyhow::bail!("not implemented yet"),
    }
}

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
    /// Run the gateway simulator.
    Sim,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim => anyhow::bail!("not implemented yet"),
    }
}

//! The `mxpva` command line.
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
    /// Validate a config file and print its mapping table. Exit 78 on a config error.
    Check {
        /// The TOML config file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim => anyhow::bail!("not implemented yet"),
        Command::Check { config } => check(&config),
    }
}

/// `mxpva check`: the table on stdout and exit 0, or every problem on stderr and exit 78.
fn check(path: &std::path::Path) -> ! {
    match mxpva::config::Config::load(path) {
        Ok(config) => {
            print!("{}", config.mapping_table());
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(mxpva::config::EXIT_CONFIG)
        }
    }
}

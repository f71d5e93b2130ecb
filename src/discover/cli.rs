//! `mxpva discover`: the mapping the rules make, printed as a config file.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{areas, discover, render, DiscoverError};
use crate::config::{Config, ConfigError};
use crate::gateway::{GatewayClient, HierarchyQuery};

/// The command line of `mxpva discover`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DiscoverArgs {
    /// A config file: its [gateway], [defaults], [users] and [[discover]] rules.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "endpoint",
        required_unless_present = "endpoint"
    )]
    pub config: Option<PathBuf>,
    /// One gateway endpoint, with the default rule (every attribute, Object:Attribute).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// With --endpoint: the environment variable holding the API key.
    #[arg(long, value_name = "VAR", requires = "endpoint")]
    pub api_key_env: Option<String>,
    /// With --endpoint: the file holding the API key.
    #[arg(long, value_name = "FILE", requires = "endpoint")]
    pub api_key_file: Option<PathBuf>,
    /// Only this area or object and what it contains. Any filter given makes the one
    /// rule used, instead of the file's.
    #[arg(long)]
    pub root: Option<String>,
    /// Tag-name glob (`*`, `?`; case-insensitive).
    #[arg(long, value_name = "GLOB")]
    pub objects: Option<String>,
    /// Attribute-name glob; may be repeated.
    #[arg(long = "attributes", value_name = "GLOB")]
    pub attributes: Vec<String>,
    /// PV-name template: {object}, {attribute}, {area} (default {object}:{attribute}).
    #[arg(long, value_name = "TEMPLATE")]
    pub name: Option<String>,
    /// Only attributes that carry alarms.
    #[arg(long)]
    pub alarm_bearing_only: bool,
    /// Only historized attributes.
    #[arg(long)]
    pub historized_only: bool,
    /// List the Galaxy's areas with their object and attribute counts instead (to
    /// balance shards; the config's rules are not used).
    #[arg(
        long,
        conflicts_with_all = ["root", "objects", "attributes", "name", "alarm_bearing_only", "historized_only"]
    )]
    pub areas: bool,
}

impl DiscoverArgs {
    fn has_filters(&self) -> bool {
        self.root.is_some()
            || self.objects.is_some()
            || !self.attributes.is_empty()
            || self.name.is_some()
            || self.alarm_bearing_only
            || self.historized_only
    }

    /// The rule the flags make.
    fn rule(&self) -> Table {
        let mut t = Table::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                t.insert(k.to_string(), v);
            }
        };
        put("root", self.root.clone().map(Value::String));
        put("objects", self.objects.clone().map(Value::String));
        put(
            "attributes",
            (!self.attributes.is_empty()).then(|| {
                Value::Array(self.attributes.iter().cloned().map(Value::String).collect())
            }),
        );
        put("name", self.name.clone().map(Value::String));
        put(
            "alarm_bearing_only",
            self.alarm_bearing_only.then_some(Value::Boolean(true)),
        );
        put(
            "historized_only",
            self.historized_only.then_some(Value::Boolean(true)),
        );
        t
    }
}

/// Why `mxpva discover` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverCliError {
    /// The config (or the rule the flags make) is invalid: exit 78.
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("discovery: {0}")]
    Discover(#[from] DiscoverError),
    /// Two PVs of one name: exit 78.
    #[error("{}", .0.join("\n"))]
    Duplicates(Vec<String>),
}

fn read_table(path: &Path) -> Result<(String, Table), DiscoverCliError> {
    // Config::load gives the file's own diagnostics (positions) for any problem.
    let config = Config::load(path)?;
    drop(config);
    let text = std::fs::read_to_string(path)
        .map_err(|e| DiscoverCliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let table: Table = text
        .parse()
        .map_err(|e| DiscoverCliError::Usage(format!("{}: {e}", path.display())))?;
    Ok((text, table))
}

/// Runs `mxpva discover` and returns the file to print (with `--areas`, the table of
/// areas).
pub async fn run(args: &DiscoverArgs) -> Result<String, DiscoverCliError> {
    let (path, mut table, source) = match (&args.config, &args.endpoint) {
        (Some(path), None) => {
            let (_, table) = read_table(path)?;
            (
                path.clone(),
                table,
                format!("the rules of {}", path.display()),
            )
        }
        (None, Some(endpoint)) => {
            let mut gw = Table::new();
            gw.insert("endpoint".into(), Value::String(endpoint.clone()));
            if let Some(v) = &args.api_key_env {
                gw.insert("api_key_env".into(), Value::String(v.clone()));
            }
            if let Some(f) = &args.api_key_file {
                gw.insert(
                    "api_key_file".into(),
                    Value::String(f.display().to_string()),
                );
            }
            let mut t = Table::new();
            t.insert("gateway".into(), Value::Table(gw));
            (
                PathBuf::from("discover.toml"),
                t,
                format!("every attribute at {endpoint}"),
            )
        }
        _ => {
            return Err(DiscoverCliError::Usage(
                "give either --config FILE or --endpoint URL".into(),
            ))
        }
    };
    if args.has_filters() || !table.contains_key("discover") {
        table.insert(
            "discover".into(),
            Value::Array(vec![Value::Table(args.rule())]),
        );
    }
    let text = toml::to_string(&table).map_err(|e| DiscoverCliError::Usage(e.to_string()))?;
    let config = Config::from_str_at(&text, &path)?;
    let opts = crate::config::client_options(&config.gateway, &config.limits)
        .map_err(|e| DiscoverCliError::Gateway(e.to_string()))?;
    let client = GatewayClient::connect(&opts)
        .await
        .map_err(|e| DiscoverCliError::Gateway(e.to_string()))?;
    if args.areas {
        let all = HierarchyQuery {
            page_size: super::PAGE_SIZE,
            include_attributes: true,
            ..HierarchyQuery::default()
        };
        let objects = super::fetch(client.galaxy(), &all, "--areas").await?;
        let source = format!("the Galaxy at {}", config.gateway.endpoint);
        return Ok(areas::render(&areas::count(&objects), &source));
    }
    let found = discover(client.galaxy(), &config.discover, config.defaults.boolean).await?;
    let made = config.rule_pvs(&found.candidates);
    let merged = config.merge_rule_pvs(made.pvs);
    if !merged.errors.is_empty() {
        return Err(DiscoverCliError::Duplicates(merged.errors));
    }
    let mut skipped = found.skipped;
    skipped.extend(made.refused);
    skipped.extend(made.read_only_no_user.iter().map(|t| {
        format!(
            "{t}: SecuredWrite or VerifiedWrite, served read-only: no `user` (and `verifier`) \
             in [defaults] or the rule"
        )
    }));
    table.remove("discover");
    let header = vec![
        format!(
            "Made by `mxpva discover` from {source}: {} PVs from {} objects.",
            merged.pvs.len() - merged.explicit,
            found.objects
        ),
        "A reviewed, static mapping: `mxpva check` validates it, `mxpva run` serves it.".into(),
    ];
    Ok(render(&config, &table, &merged, &header, &skipped))
}

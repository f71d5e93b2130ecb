//! Finds pvxs and EPICS libCom, then compiles the C++ shim in cpp/ with cxx_build.
//!
//! Where pvxs comes from, in order:
//! 1. A facility install: `EPICS_BASE` plus `PVXS_DIR` (or `EPICS_PVXS`), with
//!    `EPICS_HOST_ARCH` (default `linux-x86_64`). Headers in `include/`, libraries in
//!    `lib/<arch>`. Compiled with the toolchain's default string ABI.
//! 2. The PyPI wheels `pvxslibs` and `epicscorelibs`, from the Python found as
//!    `MXPVA_PYTHON` or `python3` when it can import them.
//! 3. Otherwise the same wheels at pinned versions, installed by this script with
//!    `pip install --target` into `target/pvxs-wheels/`.
//!
//! The wheels are built with the pre-C++11 libstdc++ string ABI, so for them the shim is
//! compiled with `-D_GLIBCXX_USE_CXX11_ABI=0`; strings cross the cxx boundary as
//! `(ptr, len)`, never as `std::string`. Every binary gets an rpath to the libraries it
//! linked, so `mxpva` runs without `LD_LIBRARY_PATH`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel versions installed when no Python environment provides pvxs.
const PVXSLIBS_VERSION: &str = "1.5.3";
const EPICSCORELIBS_VERSION: &str = "7.0.10.99.0.2";

/// The C++ sources of the shim, one per concern.
const SHIM_SOURCES: &[&str] = &[
    "cpp/server.cpp",
    "cpp/sharedpv.cpp",
    "cpp/value.cpp",
    "cpp/putop.cpp",
    "cpp/handoff.cpp",
    "cpp/loop.cpp",
    "cpp/access.cpp",
    "cpp/gate.cpp",
];

/// Where pvxs was found and how to compile against it.
struct Pvxs {
    origin: String,
    include_dirs: Vec<PathBuf>,
    lib_dirs: Vec<PathBuf>,
    /// The wheels need the old libstdc++ string ABI.
    old_string_abi: bool,
}

pub fn build() {
    for var in [
        "EPICS_BASE",
        "PVXS_DIR",
        "EPICS_PVXS",
        "EPICS_HOST_ARCH",
        "MXPVA_PYTHON",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build/pvxs.rs");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=src/pva/ffi.rs");

    check_compiler();
    let pvxs = locate().unwrap_or_else(|msg| fail(&msg));
    println!(
        "cargo:warning=mxpva: using pvxs from {} ({})",
        pvxs.lib_dirs[0].display(),
        pvxs.origin
    );

    let mut shim = cxx_build::bridge("src/pva/ffi.rs");
    shim.files(SHIM_SOURCES)
        .include(".")
        .std("c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations");
    for dir in &pvxs.include_dirs {
        shim.include(dir);
    }
    if pvxs.old_string_abi {
        shim.define("_GLIBCXX_USE_CXX11_ABI", "0");
    }
    shim.compile("mxpva_shim");

    for dir in &pvxs.lib_dirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
    println!("cargo:rustc-link-lib=dylib=pvxs");
    println!("cargo:rustc-link-lib=dylib=Com");

    // For the benchmark harness, which compiles its C++ reference program against the
    // very same pvxs.
    let join = |dirs: &[PathBuf]| {
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    println!(
        "cargo:rustc-env=MXPVA_PVXS_INCLUDE_DIRS={}",
        join(&pvxs.include_dirs)
    );
    println!(
        "cargo:rustc-env=MXPVA_PVXS_LIB_DIRS={}",
        join(&pvxs.lib_dirs)
    );
    println!(
        "cargo:rustc-env=MXPVA_PVXS_OLD_ABI={}",
        if pvxs.old_string_abi { "1" } else { "0" }
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: mxpva cannot build its pvxs shim\n\n{msg}\n");
    std::process::exit(1);
}

fn check_compiler() {
    let cxx = env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let ok = Command::new(&cxx)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        fail(&format!(
            "No C++ compiler found (tried `{cxx}`). Install one, for example:\n    \
             apt-get install g++\nor set CXX to the compiler to use."
        ));
    }
}

fn locate() -> Result<Pvxs, String> {
    if let Some(found) = from_facility()? {
        return Ok(found);
    }
    let python = env::var("MXPVA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    if let Some(found) = from_python(&python, None) {
        return Ok(found);
    }
    install_wheels(&python)
}

/// A facility install named by EPICS_BASE and PVXS_DIR / EPICS_PVXS.
fn from_facility() -> Result<Option<Pvxs>, String> {
    let Some(base) = env::var_os("EPICS_BASE").map(PathBuf::from) else {
        return Ok(None);
    };
    let Some(pvxs) = env::var_os("PVXS_DIR")
        .or_else(|| env::var_os("EPICS_PVXS"))
        .map(PathBuf::from)
    else {
        return Err(format!(
            "EPICS_BASE is set ({}) but neither PVXS_DIR nor EPICS_PVXS is.\n\
             Set one of them to the pvxs install, or unset EPICS_BASE to use the PyPI wheels.",
            base.display()
        ));
    };
    let arch = env::var("EPICS_HOST_ARCH").unwrap_or_else(|_| "linux-x86_64".to_string());
    let found = Pvxs {
        origin: "EPICS_BASE + PVXS_DIR".to_string(),
        include_dirs: vec![
            pvxs.join("include"),
            base.join("include"),
            base.join("include/os/Linux"),
            base.join("include/compiler/gcc"),
        ],
        lib_dirs: vec![pvxs.join("lib").join(&arch), base.join("lib").join(&arch)],
        old_string_abi: false,
    };
    for (what, path) in [
        ("pvxs header", found.include_dirs[0].join("pvxs/sharedpv.h")),
        ("EPICS header", found.include_dirs[1].join("epicsTime.h")),
        ("pvxs library", found.lib_dirs[0].join("libpvxs.so")),
        ("libCom", found.lib_dirs[1].join("libCom.so")),
    ] {
        if !path.exists() {
            return Err(format!(
                "{what} not found at {} (EPICS_HOST_ARCH={arch}).\n\
                 Check EPICS_BASE, PVXS_DIR/EPICS_PVXS and EPICS_HOST_ARCH.",
                path.display()
            ));
        }
    }
    Ok(Some(found))
}

/// The wheels as importable by `python`, with `extra_path` prepended to its sys.path.
fn from_python(python: &str, extra_path: Option<&Path>) -> Option<Pvxs> {
    let script = "import pvxslibs.path, epicscorelibs.path, os\n\
                  print(pvxslibs.path.include_path)\n\
                  print(os.path.join(os.path.dirname(pvxslibs.path.include_path), 'lib'))\n\
                  print(epicscorelibs.path.include_path)\n\
                  print(epicscorelibs.path.lib_path)\n";
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script);
    if let Some(extra) = extra_path {
        cmd.env("PYTHONPATH", extra);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let lines: Vec<PathBuf> = text.lines().map(PathBuf::from).collect();
    let [pvxs_inc, pvxs_lib, com_inc, com_lib] = lines.as_slice() else {
        return None;
    };
    if !pvxs_lib.join("libpvxs.so").exists() || !com_lib.join("libCom.so").exists() {
        return None;
    }
    Some(Pvxs {
        origin: match extra_path {
            Some(p) => format!("pinned wheels installed in {}", p.display()),
            None => format!("wheels importable by {python}"),
        },
        include_dirs: vec![pvxs_inc.clone(), com_inc.clone()],
        lib_dirs: vec![pvxs_lib.clone(), com_lib.clone()],
        old_string_abi: true,
    })
}

/// `target/`, found from OUT_DIR (target/<profile>/build/<pkg>/out).
fn target_dir() -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return dir;
        }
        return PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join(dir);
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    out.ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("target"))
}

/// Installs the pinned wheels into target/pvxs-wheels/<versions>/ and uses them.
fn install_wheels(python: &str) -> Result<Pvxs, String> {
    let dest = target_dir().join("pvxs-wheels").join(format!(
        "pvxslibs-{PVXSLIBS_VERSION}_epicscorelibs-{EPICSCORELIBS_VERSION}"
    ));
    if let Some(found) = from_python(python, Some(&dest)) {
        return Ok(found);
    }
    let has_pip = Command::new(python)
        .args(["-m", "pip", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_pip {
        return Err(format!(
            "pvxs was not found, and it cannot be installed from PyPI because `{python} -m pip` \
             does not work.\nEither install Python 3 with pip (for example `apt-get install \
             python3 python3-pip`), or point the build at a facility install with EPICS_BASE \
             and PVXS_DIR."
        ));
    }
    // Install into a private folder, then rename, so two builds never see half a tree.
    let staging = dest.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    println!(
        "cargo:warning=mxpva: installing pvxslibs=={PVXSLIBS_VERSION} and \
         epicscorelibs=={EPICSCORELIBS_VERSION} into {}",
        dest.display()
    );
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--only-binary=:all:",
            "--target",
        ])
        .arg(&staging)
        .arg(format!("pvxslibs=={PVXSLIBS_VERSION}"))
        .arg(format!("epicscorelibs=={EPICSCORELIBS_VERSION}"))
        .status()
        .map_err(|e| format!("could not run `{python} -m pip`: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`{python} -m pip install pvxslibs=={PVXSLIBS_VERSION} \
             epicscorelibs=={EPICSCORELIBS_VERSION}` failed (see its output above).\n\
             The build needs PyPI, or a facility install named by EPICS_BASE and PVXS_DIR."
        ));
    }
    if !dest.exists() {
        std::fs::rename(&staging, &dest)
            .map_err(|e| format!("could not move {} into place: {e}", staging.display()))?;
    } else {
        let _ = std::fs::remove_dir_all(&staging);
    }
    from_python(python, Some(&dest)).ok_or_else(|| {
        format!(
            "installed the wheels into {} but cannot import them with {python}",
            dest.display()
        )
    })
}

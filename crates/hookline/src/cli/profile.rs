//! Where the CLI finds its server and credentials: flags, then `HOOKLINE_*` variables, then a
//! named profile in the config file, then the local default server.

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The server a local `hookline serve` listens on by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// `config.toml` under the user's config directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when none is named.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One named set of settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub admin_token: Option<String>,
    /// The partner operator commands act for when `--partner` is not given.
    pub partner_id: Option<String>,
}

/// `$HOOKLINE_CLI_CONFIG`, else `$XDG_CONFIG_HOME/hookline/config.toml`, else
/// `~/.config/hookline/config.toml`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HOOKLINE_CLI_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hookline").join("config.toml"))
}

/// The profile named by `--profile`/`HOOKLINE_PROFILE`, else the file's default; an empty
/// profile when there is no file. Naming a profile the file lacks is an error.
pub fn load(name: Option<&str>) -> anyhow::Result<Profile> {
    let Some(path) = config_path() else {
        return missing(name);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing(name),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let file: ConfigFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(chosen) = name.map(str::to_owned).or(file.default_profile.clone()) else {
        return Ok(Profile::default());
    };
    file.profiles.get(&chosen).cloned().with_context(|| {
        format!(
            "no profile '{chosen}' in {} (it has: {})",
            path.display(),
            file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

fn missing(name: Option<&str>) -> anyhow::Result<Profile> {
    match name {
        Some(n) => anyhow::bail!(
            "profile '{n}' named, but there is no config file ({})",
            config_path().map_or("no home directory".into(), |p| p.display().to_string())
        ),
        None => Ok(Profile::default()),
    }
}

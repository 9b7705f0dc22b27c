//! Where the tool's configuration comes from: the environment (`BEAKER_SESSION_*`,
//! `BEAKER_CACHE_*`, read by the facade exactly as an application reads them), or a file
//! given with `--config`: a Beaker-style INI file (`[app:main]` with `beaker.session.*`,
//! `session.*`, `beaker.cache.*` or `cache.*` keys) or a TOML file with `[session]` and
//! `[cache]` tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use beaker_rs::cache::CacheManager;
use beaker_rs::config::CacheConfig;
use beaker_rs::store::SessionStore;
use beaker_rs::{BuildError, ConfigError, SessionConfig};

use crate::error::CliError;

/// The configuration source chosen on the command line.
#[derive(Debug, Clone)]
pub enum Source {
    /// `BEAKER_SESSION_*` and `BEAKER_CACHE_*` from the environment.
    Environment,
    /// A file, with the INI section to read when it has several.
    File {
        /// The file.
        path: PathBuf,
        /// The INI section (`app:main`), when the file has more than one with options.
        section: Option<String>,
    },
}

/// The options a file holds, as `(key, value)` pairs for the session and cache parsers,
/// or a TOML document's two tables.
#[derive(Debug)]
enum FileOptions {
    Pairs(Vec<(String, String)>),
    Toml { session: Option<String>, cache: Option<String> },
}

impl Source {
    /// The session configuration, without opening anything.
    pub fn session_config(&self) -> Result<SessionConfig, CliError> {
        match self {
            Source::Environment => Ok(SessionConfig::from_env()?),
            Source::File { path, section } => match read_file(path, section.as_deref())? {
                FileOptions::Pairs(pairs) => Ok(SessionConfig::from_map(pairs)?),
                FileOptions::Toml { session, .. } => {
                    Ok(SessionConfig::from_toml_str(session.as_deref().unwrap_or(""))?)
                }
            },
        }
    }

    /// The cache configuration, without opening anything.
    pub fn cache_config(&self) -> Result<CacheConfig, CliError> {
        match self {
            Source::Environment => Ok(CacheConfig::from_env()?),
            Source::File { path, section } => match read_file(path, section.as_deref())? {
                FileOptions::Pairs(pairs) => Ok(CacheConfig::from_map(pairs)?),
                FileOptions::Toml { cache, .. } => Ok(CacheConfig::from_toml_str(cache.as_deref().unwrap_or(""))?),
            },
        }
    }

    /// The session configuration and its store, opened as the facade opens it.
    pub async fn session_store(&self) -> Result<(SessionConfig, Arc<dyn SessionStore>), CliError> {
        let config = self.session_config()?;
        let platform = matches!(self, Source::Environment) && std::env::var_os(beaker_rs::URL_FROM_PLATFORM).is_some();
        if config.store_type.is_none() && config.url.is_none() && !platform {
            return Err(CliError::Config(ConfigError::Missing {
                key: self.name_of("session.url"),
                why: "no session store is configured (the tool opens the store the application uses)".into(),
            }));
        }
        match self {
            Source::Environment => Ok(beaker_rs::session_store_from_env().await?),
            Source::File { .. } => {
                let store = beaker_rs::session_store(&config).await?;
                Ok((config, store))
            }
        }
    }

    /// The cache manager, each region's backend opened as the facade opens it.
    pub async fn cache_manager(&self) -> Result<CacheManager, CliError> {
        match self {
            Source::Environment => Ok(beaker_rs::cache_manager_from_env().await?),
            Source::File { .. } => Ok(beaker_rs::cache_manager(self.cache_config()?).await?),
        }
    }

    /// How the user spells `option` in this source (`session.url` or `BEAKER_SESSION_URL`).
    pub fn name_of(&self, option: &str) -> String {
        match self {
            Source::Environment => format!("BEAKER_{}", option.to_ascii_uppercase().replace(['.', '-'], "_")),
            Source::File { .. } => option.to_owned(),
        }
    }
}

impl From<BuildError> for CliError {
    fn from(e: BuildError) -> Self {
        CliError::Build(e)
    }
}

fn read_file(path: &Path, section: Option<&str>) -> Result<FileOptions, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read the configuration file {}: {e}", path.display())))?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        if let Some(section) = section {
            return Err(CliError::Usage(format!("--section {section}: sections are for INI files, not TOML")));
        }
        return read_toml(path, &text);
    }
    let here = path.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    let ini = Ini::parse(&text, &here.display().to_string())
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    Ok(FileOptions::Pairs(ini.options(section).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?))
}

fn read_toml(path: &Path, text: &str) -> Result<FileOptions, CliError> {
    let mut doc: toml::Table = toml::from_str(text)
        .map_err(|e| CliError::Input(format!("{}: not valid TOML: {}", path.display(), e.message())))?;
    let mut table = |name: &str| -> Result<Option<String>, CliError> {
        match doc.remove(name) {
            None => Ok(None),
            Some(toml::Value::Table(t)) => Ok(Some(toml::to_string(&t).map_err(|e| CliError::Input(e.to_string()))?)),
            Some(_) => Err(CliError::Config(ConfigError::Invalid {
                key: name.to_owned(),
                value: String::new(),
                expected: format!("a [{name}] table"),
            })),
        }
    };
    let (session, cache) = (table("session")?, table("cache")?);
    if let Some(other) = doc.keys().next() {
        return Err(CliError::Config(ConfigError::Unknown { key: other.clone() }));
    }
    Ok(FileOptions::Toml { session, cache })
}

/// The key prefixes that make a section one of ours.
const PREFIXES: &[&str] = &["beaker.session.", "session.", "beaker.cache.", "cache."];

/// An INI file as PasteDeploy (Python's `ConfigParser`) reads it: `[section]` headers,
/// `key = value` or `key: value`, `#` and `;` comment lines, indented continuation lines,
/// and `%(here)s` for the file's directory.
#[derive(Debug, Default)]
struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    fn parse(text: &str, here: &str) -> Result<Self, String> {
        let mut ini = Ini::default();
        let mut last_key: Option<(usize, usize)> = None;
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t']) {
                // A continuation of the previous value.
                let Some((s, k)) = last_key else {
                    return Err(format!("line {line_no}: an indented line continues no option"));
                };
                let value = &mut ini.sections[s].1[k].1;
                value.push('\n');
                value.push_str(&interpolate(trimmed, here).map_err(|e| format!("line {line_no}: {e}"))?);
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[') {
                let name = name
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {line_no}: a section header must end with ']'"))?
                    .trim();
                ini.sections.push((name.to_owned(), Vec::new()));
                last_key = None;
                continue;
            }
            let Some(at) = trimmed.find(['=', ':']) else {
                return Err(format!("line {line_no}: expected `key = value`, found {trimmed:?}"));
            };
            let (key, value) = (trimmed[..at].trim(), trimmed[at + 1..].trim());
            if key.is_empty() {
                return Err(format!("line {line_no}: an option without a name"));
            }
            if ini.sections.is_empty() {
                return Err(format!("line {line_no}: option {key} comes before any [section]"));
            }
            let value = interpolate(value, here).map_err(|e| format!("line {line_no}: {key}: {e}"))?;
            let s = ini.sections.len() - 1;
            let options = &mut ini.sections[s].1;
            options.push((key.to_owned(), value));
            last_key = Some((s, options.len() - 1));
        }
        Ok(ini)
    }

    /// The options of `section`, or of the one section that has beaker options.
    fn options(self, section: Option<&str>) -> Result<Vec<(String, String)>, String> {
        let ours = |(_, options): &(String, Vec<(String, String)>)| {
            options.iter().any(|(k, _)| PREFIXES.iter().any(|p| k.starts_with(p)))
        };
        if let Some(wanted) = section {
            return self
                .sections
                .into_iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, options)| options)
                .ok_or_else(|| format!("no section [{wanted}]"));
        }
        let mut candidates: Vec<_> = self.sections.into_iter().filter(ours).collect();
        match candidates.len() {
            0 => Ok(Vec::new()),
            1 => Ok(candidates.pop().map(|(_, options)| options).unwrap_or_default()),
            _ => Err(format!(
                "several sections have beaker options ({}); choose one with --section",
                candidates.iter().map(|(n, _)| format!("[{n}]")).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// `%(here)s` is the file's directory and `%%` a percent sign, as PasteDeploy has them;
/// any other `%(name)s` is refused rather than kept verbatim.
fn interpolate(value: &str, here: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%%") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%(here)s") {
            out.push_str(here);
            rest = after;
        } else {
            return Err(format!(
                "only %(here)s and %% are interpolated, not {:?}",
                tail.split_whitespace().next().unwrap_or(tail)
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_continuations_and_here() {
        let text = "# comment\n[server:main]\nport = 8080\n\n[app:main]\nuse = egg:app\n\
                    beaker.session.type = ext:database\nbeaker.session.url = sqlite:%(here)s/s.db\n\
                    beaker.cache.regions = short,\n    long\n; done\n";
        let options = Ini::parse(text, "/srv").unwrap().options(None).unwrap();
        assert!(options.contains(&("beaker.session.url".into(), "sqlite:/srv/s.db".into())));
        assert!(options.contains(&("beaker.cache.regions".into(), "short,\nlong".into())));
        assert!(!options.iter().any(|(k, _)| k == "port"));
    }

    #[test]
    fn ini_errors_name_the_line() {
        for (text, needle) in [
            ("key = v\n", "before any [section]"),
            ("[a\n", "end with ']'"),
            ("[a]\nno separator here\n", "line 2"),
            ("[a]\n  cont\n", "continues no option"),
            ("[a]\nsession.url = %(home)s/x\n", "session.url"),
        ] {
            let e = Ini::parse(text, "/").unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let two = Ini::parse("[a]\nsession.type = file\n[b]\ncache.regions = x\n", "/").unwrap();
        let e = two.options(None).unwrap_err();
        assert!(e.contains("[a], [b]") && e.contains("--section"), "{e}");
    }
}

//! Where options come from: prefixed string maps, the environment, TOML/JSON documents.
//! Every source is reduced to `name -> (key as the user wrote it, string value)`, and one
//! parser per config type applies Beaker's coercion rules to that.

use std::collections::BTreeMap;

use crate::error::ConfigError;

/// Options by canonical name, each with the key the user wrote (for error messages).
#[derive(Debug, Default)]
pub(crate) struct Source {
    pub(crate) entries: BTreeMap<String, (String, String)>,
}

impl Source {
    /// Keeps the pairs whose key starts with one of `prefixes`, stripped of it.
    pub(crate) fn from_prefixed<I, K, V>(pairs: I, prefixes: &[&str]) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut src = Source::default();
        for (k, v) in pairs {
            let k = k.as_ref();
            if let Some(name) = prefixes.iter().find_map(|p| k.strip_prefix(p)) {
                src.entries.insert(name.to_owned(), (k.to_owned(), v.as_ref().to_owned()));
            }
        }
        src
    }

    /// Keeps the variables starting with `prefix` (`BEAKER_SESSION_`), names lower-cased;
    /// error messages name the variable itself.
    pub(crate) fn from_env(vars: impl IntoIterator<Item = (String, String)>, prefix: &str) -> Self {
        let mut src = Source::default();
        for (k, v) in vars {
            if let Some(name) = k.strip_prefix(prefix) {
                if !name.is_empty() {
                    src.entries.insert(name.to_ascii_lowercase(), (k.clone(), v));
                }
            }
        }
        src
    }

    pub(crate) fn from_toml(table: &toml::Table, shown_prefix: &str) -> Result<Self, ConfigError> {
        let raw: ScalarMap = table.clone().try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
            key: shown_prefix.trim_end_matches('.').to_owned(),
            value: String::new(),
            expected: format!("a table of scalar options ({})", e.message()),
        })?;
        Ok(Self::from_scalars(raw, shown_prefix))
    }

    /// Flattens a deserialized document (nested tables joined with dots).
    pub(crate) fn from_scalars(raw: ScalarMap, shown_prefix: &str) -> Self {
        let mut src = Source::default();
        fn walk(src: &mut Source, prefix: &str, shown: &str, map: ScalarMap) {
            for (k, v) in map {
                let name = format!("{prefix}{k}");
                match v {
                    Scalar::Table(t) => walk(src, &format!("{name}."), shown, t),
                    other => {
                        let shown_key = format!("{shown}{name}");
                        src.entries.insert(name, (shown_key, other.into_string()));
                    }
                }
            }
        }
        walk(&mut src, "", shown_prefix, raw);
        src
    }
}

/// A document of options, as deserialized by serde.
pub(crate) type ScalarMap = BTreeMap<String, Scalar>;

/// One option value in a document.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Scalar>),
    Table(ScalarMap),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s,
            Scalar::List(items) => items.into_iter().map(Scalar::into_string).collect::<Vec<_>>().join(","),
            Scalar::Table(_) => String::new(),
        }
    }
}

//! `beaker cache …`: stats, clear, get.

use std::io::Write as _;

use beaker_rs::cache::{CacheManager, Region, DEFAULT_NAMESPACE};
use serde_json::{json, Value};

use crate::check::{mask_url, region_json};
use crate::cli::CacheCommand;
use crate::error::CliError;
use crate::output::{self, io};
use crate::settings::Source;
use crate::Global;

pub(crate) async fn run(global: &Global, source: &Source, command: CacheCommand) -> Result<(), CliError> {
    let caches = source.cache_manager().await?;
    match command {
        CacheCommand::Stats { region, namespace } => {
            let region = reachable(source, &caches, &region)?;
            stats(global, &region.namespace(namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE))).await
        }
        CacheCommand::Clear { region, namespace } => {
            let region = reachable(source, &caches, &region)?;
            let ns = region.namespace(namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE));
            ns.clear().await?;
            if global.json {
                output::print_json(&json!({ "region": ns.name(), "namespace": ns.namespace_name(), "cleared": true }))
            } else {
                writeln!(std::io::stdout(), "cleared namespace {:?} of region {}", ns.namespace_name(), ns.name())
                    .map_err(io)
            }
        }
        CacheCommand::Get { region, namespace, key } => {
            let region = reachable(source, &caches, &region)?;
            let ns = region.namespace(&namespace);
            match ns.get::<Value>(&key).await? {
                Some(value) if global.json => output::print_json(&value),
                Some(value) => writeln!(std::io::stdout(), "{value}").map_err(io),
                None => Err(CliError::Input(format!(
                    "no fresh value under {key:?} in namespace {namespace:?} of region {}",
                    ns.name()
                ))),
            }
        }
    }
}

/// The region named `name`, unless it is kept in the application's memory (this process
/// would see an empty one of its own).
fn reachable(source: &Source, caches: &CacheManager, name: &str) -> Result<Region, CliError> {
    let known = || caches.region_names().collect::<Vec<_>>().join(", ");
    let region = caches.region(name).map_err(|_| {
        CliError::Input(format!(
            "no cache region named {name:?} in the configuration ({}: {})",
            source.name_of("cache.regions"),
            match known() {
                k if k.is_empty() => "none declared".to_owned(),
                k => k,
            }
        ))
    })?;
    if region.is_memory() {
        return Err(CliError::Input(format!(
            "region {name} is a memory region: its values live inside the application's process, out of this tool's \
             reach ({} chooses its backend)",
            source.name_of(&format!("cache.{name}.url"))
        )));
    }
    Ok(region)
}

async fn stats(global: &Global, ns: &Region) -> Result<(), CliError> {
    let config = ns.config();
    let entries = match ns.entry_stats().await {
        Ok(s) => Some(s),
        Err(beaker_rs::Error::Store(beaker_rs::StoreError::Unsupported { .. })) => None,
        Err(e) => return Err(e.into()),
    };
    if global.json {
        let mut doc = region_json(config);
        doc["region"] = json!(ns.name());
        doc["namespace"] = json!(ns.namespace_name());
        doc["entries"] = json!(entries.map(|s| s.entries));
        doc["bytes"] = json!(entries.map(|s| s.bytes));
        return output::print_json(&doc);
    }
    let mut out = std::io::stdout().lock();
    let lines = [
        ("region", ns.name().to_owned()),
        ("type", config.store_type.to_string()),
        ("url", config.url.as_deref().map_or_else(|| "(default)".to_owned(), mask_url)),
        ("expire", output::duration(config.expire)),
        ("enabled", config.enabled.to_string()),
        ("key_length", config.key_length.to_string()),
        ("namespace", ns.namespace_name().to_owned()),
        (
            "entries",
            entries.map_or_else(
                || format!("not counted (the {} backend does not count entries)", config.store_type),
                |s| s.entries.to_string(),
            ),
        ),
        ("bytes", entries.and_then(|s| s.bytes).map_or_else(|| "-".to_owned(), |b| b.to_string())),
    ];
    for (label, value) in lines {
        writeln!(out, "{label:<10} {value}").map_err(io)?;
    }
    Ok(())
}

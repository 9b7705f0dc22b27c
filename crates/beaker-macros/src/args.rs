//! The options of `#[cached(...)]`.

use syn::meta::ParseNestedMeta;
use syn::{LitInt, LitStr, Path};

/// What the attribute said.
pub(crate) struct Options {
    /// The region name (required).
    pub(crate) region: String,
    /// The namespace; `None` = `module_path!()::fn_name`.
    pub(crate) namespace: Option<String>,
    /// Argument names left out of the key.
    pub(crate) skip: Vec<String>,
    /// The path of beaker-core or the facade (default: [`default_crate`]).
    pub(crate) krate: Path,
    /// A per-function expiry in seconds (default: the region's).
    pub(crate) expire: Option<u64>,
}

#[derive(Default)]
pub(crate) struct OptionsParser {
    region: Option<String>,
    namespace: Option<String>,
    skip: Vec<String>,
    krate: Option<Path>,
    expire: Option<u64>,
}

impl OptionsParser {
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        if meta.path.is_ident("region") {
            self.region = Some(meta.value()?.parse::<LitStr>()?.value());
        } else if meta.path.is_ident("namespace") {
            self.namespace = Some(meta.value()?.parse::<LitStr>()?.value());
        } else if meta.path.is_ident("skip") {
            let list = meta.value()?.parse::<LitStr>()?.value();
            self.skip.extend(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        } else if meta.path.is_ident("crate") {
            self.krate = Some(meta.value()?.parse::<LitStr>()?.parse::<Path>()?);
        } else if meta.path.is_ident("expire") {
            self.expire = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?);
        } else {
            return Err(meta.error("unknown #[cached] option; expected region, namespace, skip, expire or crate"));
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> syn::Result<Options> {
        let region = self.region.ok_or_else(|| {
            syn::Error::new(proc_macro2::Span::call_site(), "#[cached] needs a region: #[cached(region = \"name\")]")
        })?;
        Ok(Options {
            region,
            namespace: self.namespace,
            skip: self.skip,
            krate: self.krate.unwrap_or_else(default_crate),
            expire: self.expire,
        })
    }
}

/// The path the generated code names when `crate` is not given: `beaker-core` when the
/// calling package depends on it directly, else the `beaker-rs` facade (which re-exports
/// it), under whatever name the manifest gives either; `::beaker_core` when neither is
/// found.
fn default_crate() -> Path {
    use proc_macro_crate::{crate_name, FoundCrate};
    for package in ["beaker-core", "beaker-rs"] {
        let name = match crate_name(package) {
            // Inside the package itself only its integration tests and doc tests can
            // expand the macro, and they see the package as an external crate.
            Ok(FoundCrate::Itself) => package.replace('-', "_"),
            Ok(FoundCrate::Name(name)) => name,
            Err(_) => continue,
        };
        let ident = syn::Ident::new(&name, proc_macro2::Span::call_site());
        return syn::parse_quote!(::#ident);
    }
    syn::parse_quote!(::beaker_core)
}

//! The code `#[cached]` generates: the cached function itself, `fname_uncached` and
//! `fname_invalidate`.
//!
//! The cached function inlines the body into a `move` closure (async: a closure returning
//! an `async move` block) instead of calling `fname_uncached`, because a free function and
//! an associated function without a receiver look the same to an attribute, and only one
//! of them could be called by a bare name. The closure's output is pinned to the written
//! return type, so `?`, `return` and `.collect()` infer exactly as in the original body.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    AttrStyle, Attribute, Block, FnArg, Ident, ItemFn, Meta, Pat, PatIdent, Receiver, ReturnType, Signature, Type,
};

use crate::args::Options;

/// What the function returns, which decides what is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Returns {
    /// `Result<T, E>`: only `Ok` is cached.
    Result,
    /// `Option<T>`: only `Some` is cached.
    Option,
    /// Anything else: cached as is.
    Value,
}

/// One typed argument, as the generated functions bind it.
struct Arg {
    /// The name the cached function and `fname_invalidate` bind it to: the argument's own
    /// name, or a fresh one when it is written as a pattern.
    ident: Ident,
    /// Its name as `skip = "..."` can mention it (patterns have none).
    name: Option<String>,
    ty: Type,
    /// `let PATTERN = ident;` at the top of the body, for arguments written as patterns.
    rebind: Option<Pat>,
}

/// Where the cache manager comes from.
enum Source {
    /// `self`, in any of its forms.
    Receiver(Receiver),
    /// The typed argument at this index.
    Arg(usize),
}

/// The function split into the pieces every generated item needs.
struct Parts {
    /// The signature without `#[cache]` markers, for `fname_uncached`.
    sig: Signature,
    receiver: Option<Receiver>,
    args: Vec<Arg>,
    source: Source,
}

impl Parts {
    /// A shared borrow of the cache source, whatever its form: `&*x` for a reference
    /// (there is no `CacheSource` for `&mut T`), `&x` for an owned value or a smart pointer.
    /// Spanned on the source, so that "`CacheSource` is not implemented" points at it.
    fn source_ref(&self) -> TokenStream {
        let (name, ty) = match &self.source {
            Source::Receiver(r) => (r.self_token.to_token_stream(), &*r.ty),
            Source::Arg(i) => (self.args[*i].ident.to_token_stream(), &self.args[*i].ty),
        };
        match ty {
            Type::Reference(_) => quote_spanned!(name.span()=> &*#name),
            _ => quote_spanned!(name.span()=> &#name),
        }
    }
}

/// Expands `#[cached(...)]` on `function`.
pub(crate) fn expand(options: Options, function: ItemFn) -> syn::Result<TokenStream> {
    let ItemFn { mut attrs, vis, sig, block } = function;
    check_signature(&sig)?;
    // syn hands the body's inner attributes (`#![allow(..)]`) to the function; as outer
    // attributes they mean the same and can be placed on each generated item.
    for attr in &mut attrs {
        attr.style = AttrStyle::Outer;
    }
    let parts = split(sig)?;
    let key_args = key_args(&options, &parts)?;
    let (ret, returns) = return_type(&parts.sig.output)?;

    let krate = &options.krate;
    let private = quote!(#krate::cache::__private);
    let fname = &parts.sig.ident;
    let fname_str = fname.unraw().to_string();
    let region = &options.region;
    let namespace = match (&options.namespace, &parts.receiver) {
        (Some(ns), _) => quote!(#ns),
        // Two types in one module may well have methods of the same name.
        (None, Some(_)) => {
            quote!(&::std::format!("{}::{}", ::core::any::type_name::<Self>(), #fname_str))
        }
        (None, None) => quote!(::core::concat!(::core::module_path!(), "::", #fname_str)),
    };
    let expire = match options.expire {
        Some(secs) => quote!(::core::option::Option::Some(::core::time::Duration::from_secs(#secs))),
        None => quote!(::core::option::Option::None),
    };
    let source_ref = parts.source_ref();
    let key_tuple = {
        let idents = key_args.iter().map(|a| &a.ident);
        quote!((#(&#idents,)*))
    };

    let companion_attrs: Vec<&Attribute> = attrs.iter().filter(|a| is_companion_attr(a)).collect();
    let uncached = uncached_fn(&parts.sig, &vis, &companion_attrs, &block);
    let invalidate = invalidate_fn(&parts, &key_args, &vis, &companion_attrs, krate, region, &namespace);

    // Mixed-site names cannot clash with anything the body names.
    let cache = Ident::new("__beaker_cache", Span::mixed_site());
    let body = Ident::new("__beaker_body", Span::mixed_site());
    let region_var = Ident::new("__beaker_region", Span::mixed_site());
    let key_var = Ident::new("__beaker_key", Span::mixed_site());
    let value = Ident::new("__beaker_value", Span::mixed_site());
    let never = Ident::new("__beaker_never", Span::mixed_site());

    let rebinds = parts.args.iter().filter_map(|a| {
        let ident = &a.ident;
        a.rebind.as_ref().map(|pat| quote!(let #pat = #ident;))
    });
    // The statements are spliced, not the block: `{ { x } }` would trip `unused_braces`.
    let stmts = &block.stmts;
    let is_async = parts.sig.asyncness.is_some();
    let body_closure = if is_async {
        quote!(move || #private::async_body::<#ret, _>(async move { #(#rebinds)* #(#stmts)* }))
    } else {
        quote!(move || -> #ret { #(#rebinds)* #(#stmts)* })
    };
    let (call_body, get_or_create, wait) = if is_async {
        (quote!(#body().await), quote!(get_or_create_with), quote!(.await))
    } else {
        (quote!(#body()), quote!(get_or_create_blocking), quote!())
    };
    let creator = match returns {
        Returns::Result => quote!(#body),
        Returns::Option if is_async => quote!(move || async move { #call_body.ok_or(#private::NotCached) }),
        Returns::Option => quote!(move || #call_body.ok_or(#private::NotCached)),
        Returns::Value if is_async => {
            quote!(move || async move { ::core::result::Result::Ok::<_, ::core::convert::Infallible>(#call_body) })
        }
        Returns::Value => quote!(move || ::core::result::Result::Ok::<_, ::core::convert::Infallible>(#call_body)),
    };
    let lookup = quote!(#region_var.#get_or_create(&#key_var, #expire, #creator)#wait);
    let cached_call = match returns {
        Returns::Result => lookup,
        Returns::Option => quote!(#lookup.ok()),
        Returns::Value => quote! {
            match #lookup {
                ::core::result::Result::Ok(#value) => #value,
                ::core::result::Result::Err(#never) => match #never {},
            }
        },
    };

    let outer_sig = outer_signature(&parts);
    Ok(quote! {
        #(#attrs)*
        #vis #outer_sig {
            let #cache = match #private::region(#source_ref, #region, #namespace) {
                ::core::option::Option::Some(#region_var) => {
                    #private::args_key(&#key_tuple).map(|#key_var| (#region_var, #key_var))
                }
                ::core::option::Option::None => ::core::option::Option::None,
            };
            // `mut`: a body that mutates an argument makes the closure `FnMut`.
            #[allow(unused_mut)]
            let mut #body = #body_closure;
            match #cache {
                ::core::option::Option::Some((#region_var, #key_var)) => #cached_call,
                ::core::option::Option::None => #call_body,
            }
        }

        #uncached

        #invalidate
    })
}

/// Rejects what cannot be memoised.
fn check_signature(sig: &Signature) -> syn::Result<()> {
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(c.span(), "#[cached] cannot memoise a `const fn`"));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(v.span(), "#[cached] cannot memoise a variadic function"));
    }
    Ok(())
}

/// Takes the `#[cache]` markers off the arguments, names every argument and finds the
/// cache source.
fn split(mut sig: Signature) -> syn::Result<Parts> {
    let mut receiver = None;
    let mut args = Vec::new();
    let mut marked: Option<(Span, Option<usize>)> = None;
    for input in &mut sig.inputs {
        let (attrs, index) = match input {
            FnArg::Receiver(r) => {
                receiver = Some(r.clone());
                (&mut r.attrs, None)
            }
            FnArg::Typed(t) => {
                let index = args.len();
                let (ident, name, rebind) = match &*t.pat {
                    // `x` and `mut x` bind as they are: the body runs where they are bound.
                    Pat::Ident(PatIdent { by_ref: None, subpat: None, ident, .. }) => {
                        (ident.clone(), Some(ident.unraw().to_string()), None)
                    }
                    pat => (format_ident!("__beaker_arg{}", index), None, Some(pat.clone())),
                };
                args.push(Arg { ident, name, ty: (*t.ty).clone(), rebind });
                (&mut t.attrs, Some(index))
            }
        };
        if let Some(span) = take_cache_marker(attrs)? {
            if marked.is_some() {
                return Err(syn::Error::new(span, "#[cached]: only one argument can be marked #[cache]"));
            }
            marked = Some((span, index));
        }
    }
    if let Some(r) = &mut receiver {
        r.attrs.retain(|a| !a.path().is_ident("cache"));
    }
    let source = match (marked, &receiver) {
        (Some((_, Some(index))), _) => Source::Arg(index),
        (Some((_, None)), Some(r)) | (None, Some(r)) => Source::Receiver(r.clone()),
        (None, None) if !args.is_empty() => Source::Arg(0),
        _ => {
            return Err(syn::Error::new(
                sig.paren_token.span.join(),
                "#[cached] needs an argument to take the cache from: a `&CacheManager` or anything \
                 implementing `CacheSource` (the first argument, `self`, or the one marked #[cache])",
            ))
        }
    };
    Ok(Parts { sig, receiver, args, source })
}

/// Removes a `#[cache]` marker from `attrs`; its span if there was one.
fn take_cache_marker(attrs: &mut Vec<Attribute>) -> syn::Result<Option<Span>> {
    let Some(pos) = attrs.iter().position(|a| a.path().is_ident("cache")) else { return Ok(None) };
    let attr = attrs.remove(pos);
    if !matches!(attr.meta, Meta::Path(_)) {
        return Err(syn::Error::new(attr.span(), "#[cache] takes no arguments"));
    }
    if attrs.iter().any(|a| a.path().is_ident("cache")) {
        return Err(syn::Error::new(attr.span(), "#[cache] is given twice"));
    }
    Ok(Some(attr.span()))
}

/// The arguments that form the key: all but the source and the skipped ones.
fn key_args<'a>(options: &Options, parts: &'a Parts) -> syn::Result<Vec<&'a Arg>> {
    for skipped in &options.skip {
        if !parts.args.iter().any(|a| a.name.as_deref() == Some(skipped.as_str())) {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("#[cached]: `skip` names `{skipped}`, which is not an argument of this function"),
            ));
        }
    }
    let source = match parts.source {
        Source::Arg(i) => Some(i),
        Source::Receiver(_) => None,
    };
    Ok(parts
        .args
        .iter()
        .enumerate()
        .filter(|(i, a)| Some(*i) != source && !a.name.as_ref().is_some_and(|n| options.skip.contains(n)))
        .map(|(_, a)| a)
        .collect())
}

/// The written return type (`()` when none) and what it means for caching.
fn return_type(output: &ReturnType) -> syn::Result<(TokenStream, Returns)> {
    let ty = match output {
        ReturnType::Default => return Ok((quote!(()), Returns::Value)),
        ReturnType::Type(_, ty) => &**ty,
    };
    if let Type::ImplTrait(t) = ty {
        return Err(syn::Error::new(
            t.span(),
            "#[cached] needs a concrete return type: the value is stored and handed out again",
        ));
    }
    Ok((ty.to_token_stream(), classify(ty)))
}

/// `Result` and `Option` by the last segment of the written path, as documented.
fn classify(ty: &Type) -> Returns {
    match ty {
        Type::Group(g) => classify(&g.elem),
        Type::Paren(p) => classify(&p.elem),
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(s) if s.ident == "Result" => Returns::Result,
            Some(s) if s.ident == "Option" => Returns::Option,
            _ => Returns::Value,
        },
        _ => Returns::Value,
    }
}

/// Attributes that must follow the function onto its companions: conditional compilation,
/// lint levels and deprecation. Others (`#[instrument]`, docs, ...) belong to it alone.
fn is_companion_attr(attr: &Attribute) -> bool {
    ["cfg", "allow", "expect", "warn", "deny", "forbid", "deprecated"].iter().any(|name| attr.path().is_ident(name))
}

/// The cached function's signature: arguments written as patterns get plain names.
fn outer_signature(parts: &Parts) -> Signature {
    let mut sig = parts.sig.clone();
    let mut args = parts.args.iter();
    for input in &mut sig.inputs {
        if let (FnArg::Typed(t), Some(arg)) = (input, args.next()) {
            if arg.rebind.is_some() {
                *t.pat = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: arg.ident.clone(),
                    subpat: None,
                });
            }
        }
    }
    sig
}

/// `fname_uncached`: the original function under another name.
fn uncached_fn(sig: &Signature, vis: &syn::Visibility, attrs: &[&Attribute], block: &Block) -> TokenStream {
    let mut sig = sig.clone();
    let fname = sig.ident.unraw();
    sig.ident = format_ident!("{}_uncached", fname, span = sig.ident.span());
    let doc = format!("`{fname}` without its cache: runs the body every time and stores nothing (from `#[cached]`).");
    // The cached function holds the same body and reports its lints; the source argument
    // is often unused by the body itself.
    quote! {
        #[doc = #doc]
        #(#attrs)*
        #[allow(dead_code, unused_variables, clippy::missing_const_for_fn)]
        #vis #sig #block
    }
}

/// `fname_invalidate(source, key arguments)`: removes one argument tuple's entry.
fn invalidate_fn(
    parts: &Parts,
    key_args: &[&Arg],
    vis: &syn::Visibility,
    attrs: &[&Attribute],
    krate: &syn::Path,
    region: &str,
    namespace: &TokenStream,
) -> TokenStream {
    let private = quote!(#krate::cache::__private);
    let sig = &parts.sig;
    let fname = sig.ident.unraw();
    let name = format_ident!("{}_invalidate", fname, span = sig.ident.span());
    let source_param = match &parts.source {
        Source::Receiver(r) => invalidate_receiver(r),
        Source::Arg(i) => {
            let Arg { ident, ty, .. } = &parts.args[*i];
            quote!(#ident: #ty)
        }
    };
    let key_params = key_args.iter().map(|Arg { ident, ty, .. }| quote!(#ident: #ty));
    let key_idents = key_args.iter().map(|a| &a.ident);
    let asyncness = &sig.asyncness;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let region_var = Ident::new("__beaker_region", Span::mixed_site());
    let key_var = Ident::new("__beaker_key", Span::mixed_site());
    let remove = if asyncness.is_some() { quote!(remove(&#key_var).await) } else { quote!(remove_blocking(&#key_var)) };
    let source_ref = parts.source_ref();
    let doc = format!(
        "Removes what `{fname}` cached for these arguments; `Ok(true)` when there was an entry \
         (from `#[cached]`).\n\n# Errors\n\nWhen region `{region}` is not configured or its backend fails{}.",
        if asyncness.is_some() { "" } else { ", or it is not a memory region (synchronous access)" }
    );
    quote! {
        #[doc = #doc]
        #(#attrs)*
        #[allow(dead_code)]
        #vis #asyncness fn #name #generics (#source_param, #(#key_params),*)
            -> ::core::result::Result<bool, #private::Error> #where_clause
        {
            let #region_var =
                #krate::cache::CacheSource::cache_manager(#source_ref).region(#region)?.namespace(#namespace);
            match #private::args_key(&(#(&#key_idents,)*)) {
                ::core::option::Option::Some(#key_var) => #region_var.#remove,
                // Such arguments bypass the cache: nothing can be stored under them.
                ::core::option::Option::None => ::core::result::Result::Ok(false),
            }
        }
    }
}

/// The receiver of `fname_invalidate`: a shared borrow for any borrowed `self` (removing an
/// entry needs no `&mut`), `self` without `mut` otherwise.
fn invalidate_receiver(r: &Receiver) -> TokenStream {
    let self_token = &r.self_token;
    match (&r.reference, &r.colon_token) {
        (Some((and, lifetime)), None) => quote!(#and #lifetime #self_token),
        (None, None) => quote!(#self_token),
        (_, Some(colon)) => {
            let ty = &r.ty;
            quote!(#self_token #colon #ty)
        }
    }
}

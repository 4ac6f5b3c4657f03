//! Runtime i18n (API.md "i18n"): the message bundle of each offered locale
//! for the admin frontend, with an ETag and 304, and administrators'
//! overrides of single keys.
//!
//! A locale's bundle is, later layers winning:
//! 1. the bundled messages (`i18n/<locale>.json`, flat `key → text`,
//!    embedded in the binary); a locale without a file of its own starts
//!    from the default locale's file, else from `en-US`'s;
//! 2. the contributions of every [`MessageSource`] (plugins);
//! 3. the overrides stored in `sys_i18n_override` for that locale.
//!
//! Bundles live in the revisioned cache domain `i18n`, one scope per locale,
//! policy `serve_stale` (an old message is better than none). The answer's
//! body and its ETag are rendered once per load and then served from memory,
//! with no database or Redis round trip while fresh. An override of one
//! locale, like [`I18n::changed`], bumps that locale's scope only: every node
//! reloads that locale and no other.
//!
//! The locale of a request is the `lang` query parameter when it names an
//! offered locale, else the best match of `Accept-Language` (q-values
//! respected), else `i18n.default`. As in LinaPro, an unsupported `lang` is
//! not an error: it is ignored, and the answer says which locale it serves
//! (`data.locale` and `Content-Language`). Tags compare case-insensitively,
//! `_` reads as `-`, and a tag without an exact match takes the first offered
//! locale of the same language (`zh`, `zh-Hans` → `zh-CN`; `en-GB` → `en-US`).
//!
//! Messages are answered nested, as LinaPro's runtime loader expects: the
//! key `menu.user` is `{"menu": {"user": "…"}}`. A key that is also the
//! prefix of another key (`a.b` next to `a.b.c`) cannot be nested; it is
//! left out of the answer and logged, and overrides that would create one
//! are refused.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::{Context, anyhow};
use lina_cache::{RevisionedCache, StalePolicy};
use lina_config::I18nConfig;
use lina_coord_api::unix_millis;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::request::{kind, parse_body};
use super::{AppState, RouteDoc};
use crate::entity::i18n_override;
use crate::node::Node;

/// The cache domain of the bundles (scope: the locale).
pub const DOMAIN: &str = "i18n";
/// Permission needed to override messages.
pub const EDIT_PERMISSION: &str = "system:config:edit";
/// Most keys one `PUT` may set or remove.
pub const MAX_KEYS_PER_REQUEST: usize = 500;
/// Longest key (the column is `VARCHAR(191)`).
pub const MAX_KEY_CHARS: usize = 191;
/// Longest text of one message.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Largest `PUT` body.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest language tag (RFC 5646 recommends supporting 35 characters).
const MAX_TAG_CHARS: usize = 35;

/// The bundled message files, by locale.
const BUNDLED: &[(&str, &str)] = &[
    ("en-US", include_str!("../../i18n/en-US.json")),
    ("zh-CN", include_str!("../../i18n/zh-CN.json")),
];

/// Locale whose bundled file a locale without its own file starts from when
/// the default locale has none either.
const FALLBACK_LOCALE: &str = "en-US";

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/i18n/runtime/locales",
        permission: None,
        summary: "offered locales {locale, default, items[{locale, name, nativeName, isDefault}]}; names in the request's locale",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/i18n/runtime/messages",
        permission: None,
        summary: "the message bundle {locale, messages (nested)} of lang, else Accept-Language, else the default; ETag, 304 on If-None-Match",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/i18n/runtime/messages/{locale}",
        permission: Some(EDIT_PERMISSION),
        summary: "override messages of one locale: body {messages: {key: text}}; an empty text or null removes the override; reloads that locale only",
    },
];

/// Registers the routes of this module (under `/api/v1`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/i18n/runtime/locales", web::get().to(locales))
        .route("/i18n/runtime/messages", web::get().to(messages))
        .route(
            "/i18n/runtime/messages/{locale}",
            web::put().to(put_messages),
        );
}

// ---------------------------------------------------------------------------
// Message sources.
// ---------------------------------------------------------------------------

/// Messages contributed to the bundles by something other than the host (a
/// plugin), without this module knowing what it is.
///
/// [`MessageSource::messages`] runs on every load of a locale's bundle, that
/// is once per change of the locale on each node, so it should answer from
/// memory. When a source's messages change (a plugin was enabled, upgraded or
/// disabled), call [`I18n::changed`] for each locale it affects — once, on
/// any node, after the new messages are what the sources of every node
/// return — and every node reloads those locales, and only those.
///
/// ```
/// use lina_server::api::i18n::MessageSource;
///
/// struct Greetings;
///
/// impl MessageSource for Greetings {
///     fn messages(&self, locale: &str) -> Vec<(String, String)> {
///         match locale {
///             "en-US" => vec![("plugin.greet.hello".into(), "Hello".into())],
///             "zh-CN" => vec![("plugin.greet.hello".into(), "你好".into())],
///             _ => Vec::new(),
///         }
///     }
/// }
///
/// assert_eq!(Greetings.messages("en-US").len(), 1);
/// ```
pub trait MessageSource: Send + Sync {
    /// `(key, text)` pairs for `locale`; empty when it has none.
    fn messages(&self, locale: &str) -> Vec<(String, String)>;
}

// ---------------------------------------------------------------------------
// Locales.
// ---------------------------------------------------------------------------

/// One offered locale.
#[derive(Debug, Clone)]
pub struct Locale {
    /// Language tag as configured, `_` written `-` (`en-US`).
    pub code: String,
    /// The language's own name (`English`); may be empty.
    pub native_name: String,
    header: HeaderValue,
}

impl Locale {
    fn new(code: &str, native_name: &str) -> anyhow::Result<Locale> {
        Ok(Locale {
            code: code.to_string(),
            native_name: native_name.to_string(),
            header: HeaderValue::from_str(code)
                .with_context(|| format!("locale {code:?} is not a header value"))?,
        })
    }

    /// The `Content-Language` value.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }
}

/// The offered locales — `i18n.locales` in their order, or only
/// `i18n.default` when `i18n.enabled` is false — and the default, which is
/// always offered.
#[derive(Debug, Clone)]
pub struct Locales {
    list: Vec<Locale>,
    default: usize,
}

/// Whether `tag` looks like a language tag: 1 to 35 characters of ASCII
/// letters, digits, `-` or `_`.
fn is_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG_CHARS
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Equal as tags: case-insensitive, `_` and `-` alike.
fn same_tag(a: &str, b: &str) -> bool {
    let norm = |b: u8| {
        if b == b'_' {
            b'-'
        } else {
            b.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// The language subtag (`zh` of `zh-CN`).
fn language(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or(tag)
}

/// A `q` parameter in thousandths; `None` when it is not a number in 0..=1.
fn parse_q(value: &str) -> Option<u16> {
    let q: f32 = value.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

impl Locales {
    /// From the `i18n` section. Fails when a tag is not a language tag.
    pub fn from_config(config: &I18nConfig) -> anyhow::Result<Locales> {
        let default_code = config.default_locale.trim().replace('_', "-");
        if !is_tag(&default_code) {
            return Err(anyhow!(
                "i18n.default {:?} is not a language tag such as en-US",
                config.default_locale
            ));
        }
        let mut list: Vec<Locale> = Vec::new();
        if config.enabled {
            for (i, entry) in config.locales.iter().enumerate() {
                let code = entry.locale.trim().replace('_', "-");
                if !is_tag(&code) {
                    return Err(anyhow!(
                        "i18n.locales[{i}].locale {:?} is not a language tag such as en-US",
                        entry.locale
                    ));
                }
                if !list.iter().any(|l| same_tag(&l.code, &code)) {
                    list.push(Locale::new(&code, entry.native_name.trim())?);
                }
            }
        }
        let default = match list.iter().position(|l| same_tag(&l.code, &default_code)) {
            Some(i) => i,
            None => {
                let native = config
                    .locales
                    .iter()
                    .find(|l| same_tag(l.locale.trim(), &default_code))
                    .map(|l| l.native_name.trim())
                    .unwrap_or_default();
                list.insert(0, Locale::new(&default_code, native)?);
                0
            }
        };
        Ok(Locales { list, default })
    }

    /// Every offered locale, in order.
    pub fn list(&self) -> &[Locale] {
        &self.list
    }

    /// The default locale.
    pub fn default_locale(&self) -> &Locale {
        &self.list[self.default]
    }

    /// The offered locale `tag` names exactly (case-insensitive, `_` as `-`).
    pub fn exact(&self, tag: &str) -> Option<&Locale> {
        let tag = tag.trim();
        if !is_tag(tag) {
            return None;
        }
        self.list.iter().find(|l| same_tag(&l.code, tag))
    }

    /// The offered locale for `tag`: the exact one, else the first of the
    /// same language.
    pub fn find(&self, tag: &str) -> Option<&Locale> {
        let tag = tag.trim();
        if !is_tag(tag) {
            return None;
        }
        self.exact(tag).or_else(|| {
            let lang = language(tag);
            self.list
                .iter()
                .find(|l| language(&l.code).eq_ignore_ascii_case(lang))
        })
    }

    /// The best offered locale for an `Accept-Language` header: ranges by
    /// falling `q` (ties in header order, `q=0` excluded), each matched as
    /// [`Locales::find`] does; `*` means the default.
    pub fn negotiate(&self, accept_language: &str) -> Option<&Locale> {
        let mut ranges: Vec<(u16, &str)> = Vec::new();
        'ranges: for part in accept_language.split(',').take(32) {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or_default().trim();
            if tag.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in pieces {
                match param.split_once('=') {
                    Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                        match parse_q(value) {
                            Some(v) => q = v,
                            None => continue 'ranges,
                        }
                    }
                    _ => {}
                }
            }
            if q > 0 {
                ranges.push((q, tag));
            }
        }
        ranges.sort_by_key(|range| std::cmp::Reverse(range.0));
        ranges.into_iter().find_map(|(_, tag)| {
            if tag == "*" {
                Some(self.default_locale())
            } else {
                self.find(tag)
            }
        })
    }

    /// The locale of a request: `lang` when it names an offered locale, else
    /// the best match of `accept_language`, else the default.
    pub fn resolve(&self, lang: Option<&str>, accept_language: Option<&str>) -> &Locale {
        lang.and_then(|l| self.find(l))
            .or_else(|| accept_language.and_then(|a| self.negotiate(a)))
            .unwrap_or_else(|| self.default_locale())
    }

    /// `en-US, zh-CN`, for error messages.
    fn codes(&self) -> String {
        self.list
            .iter()
            .map(|l| l.code.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The raw `lang` query parameter, if present and not empty. Language tags
/// need no percent-encoding, so the value is taken as written.
fn lang_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "lang")
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

// ---------------------------------------------------------------------------
// Bundles.
// ---------------------------------------------------------------------------

/// One locale's effective messages, with the answers rendered from them.
#[derive(Debug)]
pub struct Bundle {
    locale: String,
    messages: BTreeMap<String, String>,
    body: web::Bytes,
    etag: String,
    locales_body: web::Bytes,
}

impl Bundle {
    /// The locale.
    pub fn locale(&self) -> &str {
        &self.locale
    }

    /// The text of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.messages.get(key).map(String::as_str)
    }

    /// Every effective message, flat, by key.
    pub fn messages(&self) -> &BTreeMap<String, String> {
        &self.messages
    }

    /// The strong ETag of the messages answer (quoted).
    pub fn etag(&self) -> &str {
        &self.etag
    }

    fn render(locale: &Locale, messages: BTreeMap<String, String>, locales: &Locales) -> Bundle {
        let envelope = json!({
            "code": 0,
            "message": "ok",
            "data": {"locale": locale.code, "messages": nest(&messages, &locale.code)},
        });
        let body = web::Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default());
        let digest = Sha256::digest(&body);
        let mut etag = String::with_capacity(2 + 2 * digest.len());
        etag.push('"');
        for byte in digest {
            let _ = write!(etag, "{byte:02x}");
        }
        etag.push('"');
        let items: Vec<Value> = locales
            .list()
            .iter()
            .map(|l| {
                let name = messages
                    .get(&format!("locale.{}.name", l.code))
                    .map(String::as_str)
                    .filter(|n| !n.is_empty())
                    .or(Some(l.native_name.as_str()).filter(|n| !n.is_empty()))
                    .unwrap_or(&l.code);
                json!({
                    "locale": l.code,
                    "name": name,
                    "nativeName": if l.native_name.is_empty() { name } else { l.native_name.as_str() },
                    "isDefault": l.code == locales.default_locale().code,
                })
            })
            .collect();
        let locales_envelope = json!({
            "code": 0,
            "message": "ok",
            "data": {
                "locale": locale.code,
                "default": locales.default_locale().code,
                "items": items,
            },
        });
        Bundle {
            locale: locale.code.clone(),
            messages,
            body,
            etag,
            locales_body: web::Bytes::from(
                serde_json::to_vec(&locales_envelope).unwrap_or_default(),
            ),
        }
    }
}

/// Whether `key` is the prefix of another key of `messages` (`a.b` of `a.b.c`).
fn is_prefix_of_another(messages: &BTreeMap<String, String>, key: &str) -> bool {
    let prefix = format!("{key}.");
    messages
        .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
        .next()
        .is_some_and(|(k, _)| k.starts_with(&prefix))
}

/// The flat messages as nested objects; keys with an empty segment and keys
/// that prefix another key are left out (and logged).
fn nest(messages: &BTreeMap<String, String>, locale: &str) -> Value {
    let mut root = Map::new();
    'keys: for (key, text) in messages {
        if key.split('.').any(str::is_empty) || is_prefix_of_another(messages, key) {
            tracing::warn!(locale, key, "message key cannot be nested; left out");
            continue;
        }
        let mut node = &mut root;
        let mut segments = key.split('.').peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                node.insert(segment.to_string(), Value::String(text.clone()));
                continue 'keys;
            }
            let child = node
                .entry(segment.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            match child {
                Value::Object(map) => node = map,
                _ => continue 'keys,
            }
        }
    }
    Value::Object(root)
}

/// Parses a bundled file: a flat JSON object of strings.
fn parse_bundled(locale: &str, text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    serde_json::from_str(text).with_context(|| {
        format!("bundled messages i18n/{locale}.json are not a flat object of strings")
    })
}

/// What loading a bundle needs.
struct Loader {
    db: DatabaseConnection,
    locales: Arc<Locales>,
    bundled: HashMap<&'static str, BTreeMap<String, String>>,
    sources: RwLock<Vec<Arc<dyn MessageSource>>>,
    /// Loads per offered locale on this node.
    loads: HashMap<String, AtomicU64>,
}

impl Loader {
    /// The bundled layer of `locale`.
    fn bundled(&self, locale: &str) -> BTreeMap<String, String> {
        let own = BUNDLED
            .iter()
            .find(|(code, _)| same_tag(code, locale))
            .map(|(code, _)| *code);
        let base = own
            .or_else(|| {
                let default = &self.locales.default_locale().code;
                BUNDLED
                    .iter()
                    .find(|(code, _)| same_tag(code, default))
                    .map(|(code, _)| *code)
            })
            .unwrap_or(FALLBACK_LOCALE);
        self.bundled.get(base).cloned().unwrap_or_default()
    }

    async fn load(&self, locale: &Locale) -> Result<Arc<Bundle>, DbErr> {
        let mut messages = self.bundled(&locale.code);
        let sources = self.sources.read().expect("i18n sources lock").clone();
        for source in sources {
            for (key, text) in source.messages(&locale.code) {
                if !key.is_empty() {
                    messages.insert(key, text);
                }
            }
        }
        let overrides = i18n_override::Entity::find()
            .filter(i18n_override::Column::Locale.eq(&locale.code))
            .all(&self.db)
            .await?;
        let overridden = overrides.len();
        for o in overrides {
            messages.insert(o.msg_key, o.msg_value);
        }
        let bundle = Bundle::render(locale, messages, &self.locales);
        if let Some(loads) = self.loads.get(&locale.code) {
            loads.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            locale = %locale.code,
            messages = bundle.messages.len(),
            overridden,
            etag = %bundle.etag,
            "i18n bundle loaded"
        );
        Ok(Arc::new(bundle))
    }
}

/// The runtime messages of this node: offered locales, a revisioned bundle
/// per locale, and the message sources.
pub struct I18n {
    locales: Arc<Locales>,
    cache: RevisionedCache<Arc<Bundle>>,
    loader: Arc<Loader>,
}

impl I18n {
    /// Registers the `i18n` cache domain of `node` (`serve_stale`) with the
    /// offered locales of its configuration and the given message sources.
    pub fn new(node: &Node, sources: Vec<Arc<dyn MessageSource>>) -> anyhow::Result<I18n> {
        let locales = Arc::new(Locales::from_config(&node.config.i18n)?);
        let mut bundled = HashMap::new();
        for (locale, text) in BUNDLED {
            bundled.insert(*locale, parse_bundled(locale, text)?);
        }
        let loads = locales
            .list()
            .iter()
            .map(|l| (l.code.clone(), AtomicU64::new(0)))
            .collect();
        Ok(I18n {
            cache: node.caches.domain(DOMAIN, StalePolicy::ServeStale)?,
            loader: Arc::new(Loader {
                db: node.db.clone(),
                locales: locales.clone(),
                bundled,
                sources: RwLock::new(sources),
                loads,
            }),
            locales,
        })
    }

    /// Adds a message source. Its messages reach a locale's bundle at the
    /// locale's next load: follow with [`I18n::changed`] for the locales it
    /// contributes to.
    pub fn add_source(&self, source: Arc<dyn MessageSource>) {
        self.loader
            .sources
            .write()
            .expect("i18n sources lock")
            .push(source);
    }

    /// The offered locales.
    pub fn locales(&self) -> &Locales {
        &self.locales
    }

    /// The locale of a request (`lang`, else `Accept-Language`, else the default).
    pub fn request_locale(&self, req: &HttpRequest) -> &Locale {
        let accept = req
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        self.locales.resolve(lang_param(req.query_string()), accept)
    }

    /// The bundle of `locale`, from memory while fresh.
    pub async fn bundle(&self, locale: &Locale) -> Result<Arc<Bundle>, ApiError> {
        let loader = &self.loader;
        Ok(self
            .cache
            .get_or_load(&locale.code, || loader.load(locale))
            .await?)
    }

    /// Announces that the messages of `locale` changed (an override, a
    /// source's contribution): every node reloads that locale, and only it,
    /// on its next request. A locale that is not offered is ignored.
    pub async fn changed(&self, locale: &str) -> lina_coord_api::Result<()> {
        match self.locales.exact(locale) {
            Some(l) => {
                self.cache.bump(&l.code).await?;
            }
            None => tracing::debug!(locale, "i18n change of a locale not offered ignored"),
        }
        Ok(())
    }

    /// [`I18n::changed`] for every offered locale.
    pub async fn changed_all(&self) -> lina_coord_api::Result<()> {
        for locale in self.locales.list() {
            self.cache.bump(&locale.code).await?;
        }
        Ok(())
    }

    /// Bundle loads on this node, per offered locale.
    pub fn loads(&self) -> Vec<(String, u64)> {
        self.locales
            .list()
            .iter()
            .map(|l| {
                let loads = self
                    .loader
                    .loads
                    .get(&l.code)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                (l.code.clone(), loads)
            })
            .collect()
    }

    /// Appends `lina_i18n_bundle_loads_total` to a `/metrics` answer
    /// (`node` already escaped).
    pub fn write_metrics(&self, out: &mut String, node: &str) {
        let _ = writeln!(
            out,
            "# HELP lina_i18n_bundle_loads_total Loads of each locale's message bundle on this node.\n# TYPE lina_i18n_bundle_loads_total counter"
        );
        for (locale, loads) in self.loads() {
            let _ = writeln!(
                out,
                "lina_i18n_bundle_loads_total{{node=\"{node}\",locale=\"{locale}\"}} {loads}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Handlers.
// ---------------------------------------------------------------------------

/// Whether an `If-None-Match` of `req` matches `etag` (weak comparison:
/// `W/` ignored; lists and `*` understood).
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `GET /api/v1/i18n/runtime/locales` (public): names in the request's locale.
async fn locales(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let locale = state.i18n.request_locale(&req);
    let bundle = state.i18n.bundle(locale).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_LANGUAGE, locale.header().clone()))
        .insert_header((header::VARY, "Accept-Language"))
        .content_type("application/json")
        .body(bundle.locales_body.clone()))
}

/// `GET /api/v1/i18n/runtime/messages?lang=` (public): the bundle with its
/// ETag; 304 without a body when `If-None-Match` matches.
async fn messages(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let locale = state.i18n.request_locale(&req);
    let bundle = state.i18n.bundle(locale).await?;
    let unchanged = not_modified(&req, &bundle.etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, bundle.etag.as_str()))
        .insert_header((header::CONTENT_LANGUAGE, locale.header().clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Language"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response
        .content_type("application/json")
        .body(bundle.body.clone()))
}

/// Whether `key` is a message key: segments of ASCII letters, digits, `_`
/// and `-` joined by `.`.
fn is_key(key: &str) -> bool {
    key.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// The validated changes of a `PUT` body: texts to set, keys to remove.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    set: BTreeMap<String, String>,
    remove: Vec<String>,
}

/// Reads `{messages: {key: text | "" | null}}`.
fn parse_changes(body: Value) -> Result<Changes, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::invalid_parameter(format!(
            "the body must be a JSON object, got {}",
            kind(&body)
        )));
    };
    let messages = match fields.remove("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::validation(
                "messages is required: an object of message keys and texts",
            ));
        }
        Some(Value::Object(messages)) => messages,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "messages must be an object of message keys and texts, got {}",
                kind(&other)
            )));
        }
    };
    if messages.is_empty() {
        return Err(ApiError::validation("messages must hold at least one key"));
    }
    if messages.len() > MAX_KEYS_PER_REQUEST {
        return Err(ApiError::validation(format!(
            "messages may hold at most {MAX_KEYS_PER_REQUEST} keys, got {}",
            messages.len()
        )));
    }
    let mut changes = Changes::default();
    for (key, value) in messages {
        let chars = key.chars().count();
        if chars > MAX_KEY_CHARS {
            return Err(ApiError::validation(format!(
                "message keys must be at most {MAX_KEY_CHARS} characters, got {chars}"
            )));
        }
        if !is_key(&key) {
            return Err(ApiError::validation(format!(
                "message key {key:?} must be segments of letters, digits, _ and - joined by dots"
            )));
        }
        match value {
            Value::Null => changes.remove.push(key),
            Value::String(text) if text.is_empty() => changes.remove.push(key),
            Value::String(text) => {
                let chars = text.chars().count();
                if chars > MAX_TEXT_CHARS {
                    return Err(ApiError::validation(format!(
                        "the text of {key} must be at most {MAX_TEXT_CHARS} characters, got {chars}"
                    )));
                }
                if text.contains('\0') {
                    return Err(ApiError::validation(format!(
                        "the text of {key} must not contain NUL characters"
                    )));
                }
                changes.set.insert(key, text);
            }
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "the text of {key} must be a string, or empty or null to remove the override, got {}",
                    kind(&other)
                )));
            }
        }
    }
    Ok(changes)
}

/// 400 when a key to set and another key of the bundle would prefix one
/// another (`a.b` and `a.b.c`): the nested answer could not hold both.
fn check_nesting(current: &BTreeMap<String, String>, changes: &Changes) -> Result<(), ApiError> {
    let mut keys: BTreeMap<String, String> = current
        .iter()
        .filter(|(k, _)| !changes.remove.contains(k))
        .map(|(k, _)| (k.clone(), String::new()))
        .collect();
    keys.extend(changes.set.keys().map(|k| (k.clone(), String::new())));
    for key in changes.set.keys() {
        if is_prefix_of_another(&keys, key) {
            return Err(ApiError::validation(format!(
                "message key {key} is the prefix of other keys, so it cannot hold a text"
            )));
        }
        let mut end = 0;
        for segment in key.split('.') {
            end += segment.len();
            if end < key.len() && keys.contains_key(&key[..end]) {
                return Err(ApiError::validation(format!(
                    "message key {key} lies under {}, which holds a text",
                    &key[..end]
                )));
            }
            end += 1;
        }
    }
    Ok(())
}

/// `PUT /api/v1/i18n/runtime/messages/{locale}` (`system:config:edit`):
/// body `{messages: {key: text}}`; an empty text or `null` removes the
/// override of that key. Written in one transaction, then that locale's
/// revision is bumped: every node reloads it, and only it.
async fn put_messages(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, EDIT_PERMISSION)
        .await?;
    let locales = state.i18n.locales();
    let locale = locales.exact(&path).ok_or_else(|| {
        ApiError::validation(format!(
            "locale {:?} is not offered; supported locales: {}",
            path.as_str(),
            locales.codes()
        ))
    })?;
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::validation(format!("the body must be at most {MAX_BODY_BYTES} bytes"))
        })?
        .map_err(|e| ApiError::invalid_parameter(format!("cannot read the body: {e}")))?;
    let changes = parse_changes(parse_body(&body)?)?;
    let current = state.i18n.bundle(locale).await?;
    check_nesting(current.messages(), &changes)?;

    let db = &state.node.db;
    let now = unix_millis();
    let txn = db.begin().await?;
    let removed = if changes.remove.is_empty() {
        0
    } else {
        i18n_override::Entity::delete_many()
            .filter(i18n_override::Column::Locale.eq(&locale.code))
            .filter(i18n_override::Column::MsgKey.is_in(changes.remove.iter().cloned()))
            .exec(&txn)
            .await?
            .rows_affected
    };
    if !changes.set.is_empty() {
        i18n_override::Entity::insert_many(changes.set.iter().map(|(key, text)| {
            i18n_override::ActiveModel {
                locale: Set(locale.code.clone()),
                msg_key: Set(key.clone()),
                msg_value: Set(text.clone()),
                updated_at: Set(now),
            }
        }))
        .on_conflict(
            OnConflict::columns([i18n_override::Column::Locale, i18n_override::Column::MsgKey])
                .update_columns([
                    i18n_override::Column::MsgValue,
                    i18n_override::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    state.i18n.changed(&locale.code).await?;
    tracing::info!(
        locale = %locale.code,
        set = changes.set.len(),
        removed,
        by = auth.user_id,
        "i18n overrides changed"
    );
    ok(json!({
        "locale": locale.code,
        "updated": changes.set.len(),
        "removed": removed,
    }))
}

/// Middleware for `/api/v1`: answers carry `Content-Language`, the locale
/// of the request, unless the handler set one.
pub async fn content_language(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let locale = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.i18n.request_locale(req.request()).header().clone());
    let mut response = next.call(req).await?;
    if let Some(locale) = locale
        && !response.headers().contains_key(header::CONTENT_LANGUAGE)
    {
        response
            .headers_mut()
            .insert(header::CONTENT_LANGUAGE, locale);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lina_config::LocaleEntry;

    fn bundled(locale: &str) -> BTreeMap<String, String> {
        let (_, text) = BUNDLED.iter().find(|(l, _)| *l == locale).unwrap();
        parse_bundled(locale, text).unwrap()
    }

    fn locales(default: &str, codes: &[&str]) -> Locales {
        Locales::from_config(&I18nConfig {
            default_locale: default.into(),
            enabled: true,
            locales: codes
                .iter()
                .map(|c| LocaleEntry {
                    locale: c.to_string(),
                    native_name: String::new(),
                })
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn bundled_files_have_the_same_keys_and_nest_cleanly() {
        let en = bundled("en-US");
        let zh = bundled("zh-CN");
        let only_en: Vec<_> = en.keys().filter(|k| !zh.contains_key(*k)).collect();
        let only_zh: Vec<_> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(
            only_en.is_empty() && only_zh.is_empty(),
            "only in en-US: {only_en:?}; only in zh-CN: {only_zh:?}"
        );
        for (locale, messages) in [("en-US", &en), ("zh-CN", &zh)] {
            for (key, text) in messages.iter() {
                assert!(is_key(key), "{locale}: bad key {key:?}");
                assert!(!text.trim().is_empty(), "{locale}: empty text of {key}");
                assert!(
                    !is_prefix_of_another(messages, key),
                    "{locale}: {key} prefixes another key"
                );
            }
        }
        let nested = nest(&en, "en-US");
        assert_eq!(nested["menu"]["user"], "Users");
        assert_eq!(
            nested["error"]["auth"]["token"]["missing"],
            "Please log in first"
        );
    }

    #[test]
    fn bundled_files_cover_the_error_keys_of_the_api() {
        let source = include_str!("error.rs").to_string()
            + include_str!("auth.rs")
            + include_str!("permission.rs");
        let en = bundled("en-US");
        let mut found = 0;
        for (at, _) in source.match_indices("\"error.") {
            let rest = &source[at + 1..];
            let key = &rest[..rest.find('"').unwrap_or(rest.len())];
            if is_key(key) {
                found += 1;
                assert!(en.contains_key(key), "{key} is not in i18n/en-US.json");
            }
        }
        assert!(found >= 10, "only {found} error keys found");
    }

    #[test]
    fn tags_match_exactly_then_by_language() {
        let l = locales("zh-CN", &["en-US", "zh-CN"]);
        assert_eq!(l.find("en-us").unwrap().code, "en-US");
        assert_eq!(l.find("zh_CN").unwrap().code, "zh-CN");
        assert_eq!(l.find("zh").unwrap().code, "zh-CN");
        assert_eq!(l.find("zh-Hans-CN").unwrap().code, "zh-CN");
        assert_eq!(l.find("en-GB").unwrap().code, "en-US");
        assert!(l.find("fr-FR").is_none());
        assert!(l.find("en US").is_none());
        assert!(l.find("").is_none());
        assert!(l.exact("en").is_none());
        assert_eq!(l.exact("EN-us").unwrap().code, "en-US");
    }

    #[test]
    fn accept_language_respects_q_values() {
        let l = locales("en-US", &["en-US", "zh-CN"]);
        let pick = |h: &str| l.negotiate(h).map(|l| l.code.as_str());
        assert_eq!(pick("zh-CN,zh;q=0.9"), Some("zh-CN"));
        assert_eq!(pick("en;q=0.5, zh-CN;q=0.8"), Some("zh-CN"));
        assert_eq!(pick("fr-FR, zh;q=0.3, en;q=0.2"), Some("zh-CN"));
        assert_eq!(pick("zh-CN;q=0, en-US;q=0.1"), Some("en-US"));
        assert_eq!(pick("zh-CN;q=bogus, en-US;q=0.1"), Some("en-US"));
        assert_eq!(pick("fr, de;q=0.9"), None);
        assert_eq!(pick("fr, *;q=0.1"), Some("en-US"));
        assert_eq!(pick(""), None);
        assert_eq!(
            l.resolve(Some("zh-CN"), Some("en-US")).code,
            "zh-CN",
            "lang wins"
        );
        assert_eq!(
            l.resolve(Some("xx"), Some("zh")).code,
            "zh-CN",
            "an unsupported lang is ignored"
        );
        assert_eq!(l.resolve(None, None).code, "en-US");
    }

    #[test]
    fn locales_follow_the_config() {
        let l = locales("zh-CN", &["en-US", "en_us", "zh-CN"]);
        let codes: Vec<_> = l.list().iter().map(|l| l.code.as_str()).collect();
        assert_eq!(codes, ["en-US", "zh-CN"], "duplicates dropped");
        assert_eq!(l.default_locale().code, "zh-CN");
        let l = locales("ja-JP", &["en-US"]);
        let codes: Vec<_> = l.list().iter().map(|l| l.code.as_str()).collect();
        assert_eq!(codes, ["ja-JP", "en-US"], "the default is always offered");
        let single = Locales::from_config(&I18nConfig {
            enabled: false,
            ..I18nConfig::default()
        })
        .unwrap();
        let codes: Vec<_> = single.list().iter().map(|l| l.code.as_str()).collect();
        assert_eq!(
            codes,
            ["zh-CN"],
            "i18n.enabled false offers the default only"
        );
        assert_eq!(single.list()[0].native_name, "简体中文");
        assert!(
            Locales::from_config(&I18nConfig {
                default_locale: "en US".into(),
                ..I18nConfig::default()
            })
            .is_err()
        );
    }

    #[test]
    fn lang_parameter_is_read_from_the_query() {
        assert_eq!(lang_param("lang=en-US"), Some("en-US"));
        assert_eq!(lang_param("a=1&lang=zh-CN&b"), Some("zh-CN"));
        assert_eq!(lang_param("lang="), None);
        assert_eq!(lang_param("language=en"), None);
        assert_eq!(lang_param(""), None);
    }

    #[test]
    fn nesting_leaves_out_keys_that_prefix_others() {
        let messages: BTreeMap<String, String> = [
            ("a.b", "leaf"),
            ("a.b.c", "deeper"),
            ("a.b-x", "sibling"),
            ("x..y", "empty segment"),
            ("z", "top"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let nested = nest(&messages, "en-US");
        assert_eq!(
            nested,
            json!({"a": {"b": {"c": "deeper"}, "b-x": "sibling"}, "z": "top"})
        );
    }

    #[test]
    fn put_bodies_are_validated() {
        let changes = parse_changes(
            json!({"messages": {"menu.user": "People", "menu.role": "", "menu.menu": null}}),
        )
        .unwrap();
        assert_eq!(changes.set.len(), 1);
        assert_eq!(changes.remove, ["menu.menu", "menu.role"]);
        for (body, code) in [
            (json!([]), 53),
            (json!({}), 51),
            (json!({"messages": []}), 53),
            (json!({"messages": {}}), 51),
            (json!({"messages": {"a b": "x"}}), 51),
            (json!({"messages": {"a..b": "x"}}), 51),
            (json!({"messages": {"a": 5}}), 53),
            (json!({"messages": {"a": {"b": "c"}}}), 53),
            (
                json!({"messages": {"a": "x".repeat(MAX_TEXT_CHARS + 1)}}),
                51,
            ),
            (
                json!({"messages": {"k".repeat(MAX_KEY_CHARS + 1): "x"}}),
                51,
            ),
        ] {
            let error = parse_changes(body.clone()).unwrap_err();
            assert_eq!(error.code, code, "{body}: {error}");
        }
        let many: Map<String, Value> = (0..=MAX_KEYS_PER_REQUEST)
            .map(|i| (format!("k.{i}"), json!("x")))
            .collect();
        assert!(parse_changes(json!({ "messages": many })).is_err());
    }

    #[test]
    fn overrides_that_would_not_nest_are_refused() {
        let current = bundled("en-US");
        let check = |body: Value| check_nesting(&current, &parse_changes(body).unwrap());
        assert!(check(json!({"messages": {"menu.user": "People"}})).is_ok());
        assert!(check(json!({"messages": {"menu.new_page": "New"}})).is_ok());
        assert!(check(json!({"messages": {"menu": "x"}})).is_err());
        assert!(check(json!({"messages": {"menu.user.extra": "x"}})).is_err());
        assert!(check(json!({"messages": {"p.q": "x", "p.q.r": "y"}})).is_err());
    }

    #[test]
    fn if_none_match_understands_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        let req = |value: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::IF_NONE_MATCH, value))
                .to_http_request()
        };
        assert!(not_modified(&req("\"abc\""), etag));
        assert!(not_modified(&req("W/\"abc\""), etag));
        assert!(not_modified(&req("\"x\", W/\"abc\""), etag));
        assert!(not_modified(&req("*"), etag));
        assert!(!not_modified(&req("\"abcd\""), etag));
        assert!(!not_modified(
            &actix_web::test::TestRequest::default().to_http_request(),
            etag
        ));
    }
}

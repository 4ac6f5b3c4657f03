//! Runtime i18n and the public frontend config, on one node (SQLite) and
//! on a three-node cluster (PostgreSQL + Redis).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, SECRET, Server};

const MESSAGES: &str = "/api/v1/i18n/runtime/messages";
const LOCALES: &str = "/api/v1/i18n/runtime/locales";

/// One answer: status, headers, body text and its JSON (Null if none).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The flat messages of a messages answer.
    fn messages(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        flatten(&self.body["data"]["messages"], "", &mut out);
        out
    }
}

fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(child, &path, out);
            }
        }
        Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => panic!("{prefix}: a message must be a string, got {other}"),
    }
}

async fn get(s: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = s.http.get(format!("{}{path}", s.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = req.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        body,
    }
}

/// `GET …/messages?lang=…`, asserting a 200 in that locale.
async fn messages(s: &Server, lang: &str) -> Answer {
    let answer = get(s, &format!("{MESSAGES}?lang={lang}"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["code"], 0);
    assert_eq!(answer.body["data"]["locale"], lang);
    assert_eq!(answer.header("content-language"), lang);
    answer
}

async fn put(s: &Server, token: &str, locale: &str, body: Value) -> (StatusCode, Value) {
    s.call(
        Method::PUT,
        &format!("{MESSAGES}/{locale}"),
        Some(token),
        Some(body),
    )
    .await
}

/// `lina_i18n_bundle_loads_total` of `locale` in the node's `/metrics`.
async fn loads(s: &Server, locale: &str) -> u64 {
    let text = get(s, "/metrics", &[]).await.text;
    let needle = format!("locale=\"{locale}\"}} ");
    text.lines()
        .filter(|l| l.starts_with("lina_i18n_bundle_loads_total{"))
        .find_map(|l| l.split_once(&needle).map(|(_, n)| n.trim().to_string()))
        .unwrap_or_else(|| panic!("no bundle loads of {locale} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn locales_messages_negotiation_and_etags() {
    let s = Server::start(&[]).await;

    // Locales: names in the request's locale, the default flagged.
    let zh = get(&s, LOCALES, &[]).await;
    assert_eq!(zh.status, StatusCode::OK, "{}", zh.text);
    assert_eq!(zh.header("content-language"), "zh-CN");
    assert_eq!(zh.body["data"]["default"], "zh-CN");
    assert_eq!(
        zh.body["data"]["items"],
        json!([
            {"locale": "en-US", "name": "英语", "nativeName": "English", "isDefault": false},
            {"locale": "zh-CN", "name": "简体中文", "nativeName": "简体中文", "isDefault": true},
        ])
    );
    let en = get(&s, &format!("{LOCALES}?lang=en-US"), &[]).await;
    assert_eq!(en.header("content-language"), "en-US");
    assert_eq!(en.body["data"]["items"][1]["name"], "Simplified Chinese");

    // Messages in both locales, nested, with strong ETags.
    let en = messages(&s, "en-US").await;
    let zh = messages(&s, "zh-CN").await;
    assert_eq!(en.body["data"]["messages"]["menu"]["user"], "Users");
    assert_eq!(zh.body["data"]["messages"]["menu"]["user"], "用户管理");
    assert_eq!(
        en.messages().keys().collect::<Vec<_>>(),
        zh.messages().keys().collect::<Vec<_>>(),
        "both locales hold the same keys"
    );
    for answer in [&en, &zh] {
        let etag = answer.header("etag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 20,
            "a strong ETag: {etag:?}"
        );
        assert_eq!(answer.header("cache-control"), "no-cache");
    }
    assert_ne!(en.header("etag"), zh.header("etag"));

    // Negotiation: lang, else Accept-Language by q, else the default.
    for (path, accept, expected) in [
        (MESSAGES.to_string(), "zh-CN,zh;q=0.9", "zh-CN"),
        (
            MESSAGES.to_string(),
            "fr;q=1, en;q=0.8, zh-CN;q=0.5",
            "en-US",
        ),
        (MESSAGES.to_string(), "en-US;q=0.2, zh;q=0.7", "zh-CN"),
        (MESSAGES.to_string(), "de-DE", "zh-CN"),
        (format!("{MESSAGES}?lang=en_us"), "zh-CN", "en-US"),
        // An unsupported lang is ignored, as in LinaPro.
        (format!("{MESSAGES}?lang=fr-FR"), "en-US,en;q=0.9", "en-US"),
        (format!("{MESSAGES}?lang=fr-FR"), "", "zh-CN"),
    ] {
        let answer = get(&s, &path, &[("Accept-Language", accept)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path} {accept}");
        assert_eq!(answer.body["data"]["locale"], expected, "{path} {accept}");
        assert_eq!(
            answer.header("content-language"),
            expected,
            "{path} {accept}"
        );
        let etag = if expected == "en-US" { &en } else { &zh }.header("etag");
        assert_eq!(answer.header("etag"), etag, "{path} {accept}");
    }

    // If-None-Match: 304 without a body; lists and W/ understood.
    let etag = en.header("etag").to_string();
    for value in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_string(),
    ] {
        let answer = get(
            &s,
            &format!("{MESSAGES}?lang=en-US"),
            &[("If-None-Match", &value)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_MODIFIED, "{value}");
        assert!(answer.text.is_empty(), "{value}: a 304 has no body");
        assert_eq!(answer.header("etag"), etag);
        assert_eq!(answer.header("content-language"), "en-US");
    }
    let answer = get(
        &s,
        &format!("{MESSAGES}?lang=en-US"),
        &[("If-None-Match", zh.header("etag"))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "another locale's ETag");

    // Every /api/v1 answer says its locale, errors included.
    let answer = get(&s, "/api/v1/user/info", &[("Accept-Language", "en")]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.header("content-language"), "en-US");
    let answer = get(&s, "/api/v1/no/such/route?lang=zh-CN", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("content-language"), "zh-CN");

    // Bundle loads are counted per locale; 304s and hits load nothing.
    assert_eq!(loads(&s, "en-US").await, 1);
    assert_eq!(loads(&s, "zh-CN").await, 1);
}

/// Every menu i18n key the seed writes, and every error messageKey the API
/// answers with, has a text in both locales.
#[tokio::test]
async fn seeded_menus_and_errors_have_messages_in_both_locales() {
    let s = Server::start(&[]).await;
    let (token, _) = s.login("admin", "admin123").await;
    let (status, menus) = s.get("/api/v1/menu", &token).await;
    assert_eq!(status, StatusCode::OK, "{menus}");
    let mut keys = Vec::new();
    let mut stack: Vec<&Value> = menus["data"]["list"].as_array().unwrap().iter().collect();
    while let Some(menu) = stack.pop() {
        keys.push(menu["i18nKey"].as_str().unwrap().to_string());
        if let Some(children) = menu["children"].as_array() {
            stack.extend(children.iter());
        }
    }
    assert!(keys.len() >= 40, "only {} seeded menus", keys.len());
    let (_, wrong) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "wrong"})),
        )
        .await;
    let (_, missing) = s.call(Method::GET, "/api/v1/user/info", None, None).await;
    for answer in [&wrong, &missing] {
        keys.push(answer["messageKey"].as_str().unwrap().to_string());
    }
    for locale in ["en-US", "zh-CN"] {
        let bundle = messages(&s, locale).await.messages();
        let absent: Vec<_> = keys.iter().filter(|k| !bundle.contains_key(*k)).collect();
        assert!(absent.is_empty(), "{locale} lacks {absent:?}");
    }
}

#[tokio::test]
async fn overrides_change_one_locale_and_are_validated() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let en = messages(&s, "en-US").await;
    let zh = messages(&s, "zh-CN").await;

    // Override one key and add one.
    let (status, body) = put(
        &s,
        &admin,
        "en-US",
        json!({"messages": {"menu.user": "People", "custom.greeting": "Hi there"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"locale": "en-US", "updated": 2, "removed": 0})
    );
    let changed = messages(&s, "en-US").await;
    assert_eq!(changed.body["data"]["messages"]["menu"]["user"], "People");
    assert_eq!(
        changed.body["data"]["messages"]["custom"]["greeting"],
        "Hi there"
    );
    assert_ne!(changed.header("etag"), en.header("etag"));
    let stale = get(
        &s,
        &format!("{MESSAGES}?lang=en-US"),
        &[("If-None-Match", en.header("etag"))],
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "the old ETag no longer matches"
    );
    let other = messages(&s, "zh-CN").await;
    assert_eq!(other.header("etag"), zh.header("etag"));
    assert_eq!(other.body["data"]["messages"]["menu"]["user"], "用户管理");

    // Replace an override; the path's locale is matched case-insensitively.
    let (status, body) = put(
        &s,
        &admin,
        "EN-us",
        json!({"messages": {"menu.user": "Members"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        messages(&s, "en-US").await.body["data"]["messages"]["menu"]["user"],
        "Members"
    );

    // Remove both: the bundle is the bundled one again, ETag included.
    let (status, body) = put(
        &s,
        &admin,
        "en-US",
        json!({"messages": {"menu.user": "", "custom.greeting": null}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["removed"], 2);
    let restored = messages(&s, "en-US").await;
    assert_eq!(restored.body["data"]["messages"]["menu"]["user"], "Users");
    assert!(restored.body["data"]["messages"].get("custom").is_none());
    assert_eq!(restored.header("etag"), en.header("etag"));
    assert_eq!(loads(&s, "zh-CN").await, 1, "zh-CN was never reloaded");

    // Validation: 400 with the envelope, nothing written.
    let long_text = "x".repeat(4001);
    let long_key = format!("k.{}", "y".repeat(200));
    let many: serde_json::Map<String, Value> = (0..501)
        .map(|i| (format!("bulk.k{i}"), json!("v")))
        .collect();
    for (locale, body, code) in [
        ("fr-FR", json!({"messages": {"menu.user": "x"}}), 51),
        ("en", json!({"messages": {"menu.user": "x"}}), 51),
        ("en-US", json!(["menu.user"]), 53),
        ("en-US", json!({}), 51),
        ("en-US", json!({"messages": "menu.user"}), 53),
        ("en-US", json!({"messages": {}}), 51),
        ("en-US", json!({"messages": {"bad key": "x"}}), 51),
        ("en-US", json!({"messages": {"menu..user": "x"}}), 51),
        ("en-US", json!({"messages": {&long_key: "x"}}), 51),
        ("en-US", json!({"messages": {"menu.user": long_text}}), 51),
        ("en-US", json!({"messages": {"menu.user": 5}}), 53),
        ("en-US", json!({"messages": {"menu.user": {"a": "b"}}}), 53),
        ("en-US", json!({"messages": {"menu.user.extra": "x"}}), 51),
        ("en-US", json!({"messages": {"menu": "x"}}), 51),
        ("en-US", json!({ "messages": many }), 51),
    ] {
        let (status, answer) = put(&s, &admin, locale, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{locale} {body}: {answer}");
        assert_eq!(answer["code"], code, "{locale} {body}: {answer}");
        assert!(answer["errorCode"].is_string(), "{answer}");
        assert!(answer["messageKey"].is_string(), "{answer}");
    }
    let (_, answer) = put(&s, &admin, "fr-FR", json!({"messages": {"a": "b"}})).await;
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("en-US") && message.contains("zh-CN"),
        "the supported locales are listed: {message}"
    );
    let response = s
        .http
        .put(format!("{}{MESSAGES}/en-US", s.base))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{\"messages\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errorCode"], "INVALID_PARAMETER");
    let after = messages(&s, "en-US").await;
    assert_eq!(
        after.header("etag"),
        en.header("etag"),
        "nothing was written"
    );

    // 401 without a token, 403 without system:config:edit.
    let body = json!({"messages": {"menu.user": "x"}});
    let (status, answer) = s
        .call(
            Method::PUT,
            &format!("{MESSAGES}/en-US"),
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, answer) = s
        .call(
            Method::POST,
            "/api/v1/user",
            Some(&admin),
            Some(json!({"username": "reader", "password": "secret-123", "roleIds": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (reader, _) = s.login("reader", "secret-123").await;
    let (status, answer) = put(&s, &reader, "en-US", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errorCode"], "PERMISSION_DENIED");
    assert_eq!(
        messages(&s, "en-US").await.header("etag"),
        en.header("etag")
    );
}

#[tokio::test]
async fn public_frontend_config_needs_no_token_and_holds_no_secret() {
    let s = Server::start(&[
        ("LINA_JWT__EXPIRE", "2h".to_string()),
        ("LINA_WORKSPACE__BASEPATH", "/console".to_string()),
    ])
    .await;
    let answer = get(&s, "/api/v1/config/public/frontend", &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let data = &answer.body["data"];
    assert_eq!(data["app"]["name"], "Lina");
    assert!(data["app"]["version"].is_string());
    assert_eq!(data["i18n"]["enabled"], true);
    assert_eq!(data["i18n"]["default"], "zh-CN");
    assert_eq!(
        data["i18n"]["locales"],
        json!([
            {"locale": "en-US", "nativeName": "English", "isDefault": false},
            {"locale": "zh-CN", "nativeName": "简体中文", "isDefault": true},
        ])
    );
    assert_eq!(data["auth"]["tokenExpireSeconds"], 7200);
    assert_eq!(data["auth"]["refreshEnabled"], true);
    assert_eq!(data["auth"]["captchaEnabled"], false);
    assert_eq!(data["cron"]["timezone"]["current"], "UTC");
    assert_eq!(data["workspace"]["basePath"], "/console");
    assert_eq!(data["cluster"]["enabled"], false);
    assert!(!answer.text.contains(SECRET), "the JWT secret leaked");
    assert!(!answer.text.to_lowercase().contains("password"));
    assert!(!answer.text.contains("sqlite"), "the database link leaked");
}

/// A single-locale deployment (`i18n.enabled: false`) offers the default
/// only, whatever the request asks for.
#[tokio::test]
async fn disabled_i18n_offers_the_default_locale_only() {
    let s = Server::start(&[
        ("LINA_I18N__ENABLED", "false".to_string()),
        ("LINA_I18N__DEFAULT", "en-US".to_string()),
    ])
    .await;
    let answer = get(&s, LOCALES, &[("Accept-Language", "zh-CN")]).await;
    assert_eq!(answer.body["data"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(answer.body["data"]["items"][0]["locale"], "en-US");
    let answer = get(
        &s,
        &format!("{MESSAGES}?lang=zh-CN"),
        &[("Accept-Language", "zh-CN")],
    )
    .await;
    assert_eq!(answer.body["data"]["locale"], "en-US");
    assert_eq!(answer.header("content-language"), "en-US");
}

/// The acceptance test of the i18n cache: an override of `en-US` on node A
/// reaches node B within 200 ms, and node B does not reload `zh-CN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_override_reloads_one_locale_on_every_node() {
    let cluster = Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (token, _) = a.login("admin", "admin123").await;

    let en = messages(b, "en-US").await;
    let zh = messages(b, "zh-CN").await;
    messages(c, "en-US").await;
    let en_loads = loads(b, "en-US").await;
    let zh_loads = loads(b, "zh-CN").await;
    assert!(en_loads >= 1 && zh_loads >= 1);

    let (status, body) = put(
        a,
        &token,
        "en-US",
        json!({"messages": {"menu.user": "Team members"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let written = Instant::now();
    let written_ms = lina_coord_api::unix_millis();
    let deadline = written + Duration::from_millis(200);
    for node in [b, c] {
        loop {
            let answer = messages(node, "en-US").await;
            if answer.body["data"]["messages"]["menu"]["user"] == "Team members" {
                assert_ne!(answer.header("etag"), en.header("etag"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the override on A must reach every node within 200ms"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "en-US override on node A served by nodes B and C after {:?}",
        written.elapsed()
    );
    assert!(loads(b, "en-US").await > en_loads, "B reloaded en-US");

    // B's zh-CN stays loaded, also past a revision sweep that confirmed
    // every revision after the write.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, info) = b.get("/api/v1/system/info", &token).await;
        assert_eq!(status, StatusCode::OK, "{info}");
        let confirmed = info["data"]["cacheDomains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["domain"] == "i18n")
            .and_then(|d| d["freshAt"].as_i64())
            .unwrap_or_default();
        if confirmed > written_ms {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no revision sweep on B within 5s: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = messages(b, "zh-CN").await;
    assert_eq!(again.header("etag"), zh.header("etag"));
    assert_eq!(again.body["data"]["messages"]["menu"]["user"], "用户管理");
    assert_eq!(
        loads(b, "zh-CN").await,
        zh_loads,
        "B must not reload zh-CN for an en-US change"
    );
}

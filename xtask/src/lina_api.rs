//! A small client of a Lina node's HTTP API (the envelope of API.md), shared
//! by `run-cluster` (watching roles) and `verify` (the checklist).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One base URL (`http://127.0.0.1:9121`, no trailing slash) and a client.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A status and the JSON body (`Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The parsed body.
    pub body: Value,
}

impl Reply {
    /// 200 with envelope code 0.
    pub fn is_ok(&self) -> bool {
        self.status == StatusCode::OK && self.body["code"] == json!(0)
    }

    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `404 NOT_FOUND no such route` style summary for messages.
    pub fn brief(&self) -> String {
        let mut parts = vec![self.status.to_string()];
        if let Some(code) = self.body["errorCode"].as_str() {
            parts.push(code.to_string());
        }
        match self.body["message"].as_str() {
            Some(message) => parts.push(message.to_string()),
            None if !self.body.is_null() => {
                let text = self.body.to_string();
                parts.push(text.chars().take(200).collect());
            }
            None => {}
        }
        parts.join(" ")
    }
}

/// `url` without a trailing slash, with `http://` when it has no scheme.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

impl Api {
    /// A client of `base` whose requests time out after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("build the HTTP client")?;
        Ok(Api {
            http,
            base: normalize_url(base),
        })
    }

    /// The same client for another base URL (sharing its connection pool).
    pub fn with_base(&self, base: &str) -> Api {
        Api {
            http: self.http.clone(),
            base: normalize_url(base),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; fails only when no HTTP answer arrived.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("{method} {url}: {}", error_chain(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {url}: read the body"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    /// `GET path` with an optional token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Result<Reply> {
        self.call(Method::GET, path, token, None).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String> {
        let body = json!({"username": username, "password": password, "clientType": "web"});
        let reply = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(&body))
            .await?;
        if !reply.is_ok() {
            bail!("login as {username} at {}: {}", self.base, reply.brief());
        }
        reply.data()["accessToken"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no data.accessToken in the login answer of {}", self.base))
    }
}

/// An error with its sources, short (`connection refused` rather than the
/// whole hyper chain).
fn error_chain(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("127.0.0.1:9121/"), "http://127.0.0.1:9121");
        assert_eq!(
            normalize_url(" https://lb.example:443 "),
            "https://lb.example:443"
        );
    }

    #[test]
    fn replies_summarize_the_envelope() {
        let reply = Reply {
            status: StatusCode::NOT_FOUND,
            body: json!({"code": 65, "errorCode": "NOT_FOUND", "message": "no such route"}),
        };
        assert!(!reply.is_ok());
        assert_eq!(reply.brief(), "404 Not Found NOT_FOUND no such route");
        let ok = Reply {
            status: StatusCode::OK,
            body: json!({"code": 0, "message": "ok", "data": {"id": 3}}),
        };
        assert!(ok.is_ok());
        assert_eq!(ok.data()["id"], 3);
    }
}

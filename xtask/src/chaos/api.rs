//! Calls to a node's API with the envelope read, timed; logins remember
//! their tokens as secrets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::util::Secrets;

/// How long one control request may take before the client gives up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, JSON body (`Null` when none), time taken.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON, or `Null`.
    pub body: Value,
    /// Send to end of body.
    pub took: Duration,
}

impl Answer {
    /// `errorCode` of an error envelope.
    pub fn error_code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or("")
    }

    /// 503 with the envelope (`errorCode` `SERVICE_UNAVAILABLE`).
    pub fn is_unavailable_envelope(&self) -> bool {
        self.status == 503 && self.error_code() == "SERVICE_UNAVAILABLE"
    }
}

/// A client for the control requests of a scenario (not the load).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    secrets: Secrets,
}

impl Api {
    /// A client remembering tokens in `secrets`.
    pub fn new(secrets: Secrets) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("an HTTP client"),
            secrets,
        }
    }

    /// Sends a request; a transport error (refused, timed out) is an `Err`.
    pub async fn call(
        &self,
        method: Method,
        base: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let started = Instant::now();
        let mut request = self.http.request(method.clone(), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {base}{path}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {base}{path}: read the body"))?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            took: started.elapsed(),
        })
    }

    /// GET with a token.
    pub async fn get(&self, base: &str, path: &str, token: Option<&str>) -> Result<Answer> {
        self.call(Method::GET, base, path, token, None).await
    }

    /// `call`, failing unless the answer is 200; returns `data`.
    pub async fn ok(
        &self,
        method: Method,
        base: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value> {
        let answer = self.call(method.clone(), base, path, token, body).await?;
        if answer.status != 200 {
            bail!(
                "{method} {path} on {base}: {} {}",
                answer.status,
                answer.body
            );
        }
        Ok(answer.body["data"].clone())
    }

    /// `POST /api/v1/auth/login`, any answer.
    pub async fn try_login(&self, base: &str, username: &str, password: &str) -> Result<Answer> {
        let answer = self
            .call(
                Method::POST,
                base,
                "/api/v1/auth/login",
                None,
                Some(&json!({"username": username, "password": password, "clientType": "web"})),
            )
            .await?;
        for key in ["accessToken", "refreshToken"] {
            if let Some(token) = answer.body["data"][key].as_str() {
                self.secrets
                    .add_token(&format!("{key} of {username}"), token);
            }
        }
        Ok(answer)
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, base: &str, username: &str, password: &str) -> Result<String> {
        let answer = self.try_login(base, username, password).await?;
        if answer.status != 200 {
            bail!(
                "login of {username} on {base}: {} {}",
                answer.status,
                answer.body
            );
        }
        answer.body["data"]["accessToken"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no data.accessToken in {}", answer.body))
    }

    /// The permission codes of `/api/v1/user/info` for `token`.
    pub async fn permissions(&self, base: &str, token: &str) -> Result<BTreeSet<String>> {
        let data = self
            .ok(Method::GET, base, "/api/v1/user/info", Some(token), None)
            .await?;
        Ok(permission_set(&data))
    }
}

/// `data.permissions` of a `/api/v1/user/info` answer as a set.
pub fn permission_set(data: &Value) -> BTreeSet<String> {
    data["permissions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every `(id, perms)` of a `/api/v1/menu` tree.
pub fn flatten_menus(list: &Value, out: &mut Vec<(i64, String)>) {
    for item in list.as_array().into_iter().flatten() {
        if let Some(id) = item["id"].as_i64() {
            out.push((id, item["perms"].as_str().unwrap_or("").to_string()));
        }
        flatten_menus(&item["children"], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menus_and_permissions_are_read_from_their_shapes() {
        let tree = json!([
            {"id": 1, "perms": "", "children": [
                {"id": 2, "perms": "system:user:query", "children": [
                    {"id": 3, "perms": "system:user:add"}
                ]}
            ]},
            {"id": 4, "perms": "about:system:list"}
        ]);
        let mut menus = Vec::new();
        flatten_menus(&tree, &mut menus);
        assert_eq!(
            menus,
            vec![
                (1, String::new()),
                (2, "system:user:query".into()),
                (3, "system:user:add".into()),
                (4, "about:system:list".into())
            ]
        );
        let info = json!({"permissions": ["b", "a"]});
        assert_eq!(
            permission_set(&info),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        assert!(permission_set(&json!({})).is_empty());
    }
}

//! User and role administration (`/api/v1/user…`, `/api/v1/role…`) and
//! how they drive permissions: on one node (SQLite) and across a
//! three-node cluster (PostgreSQL + Redis).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Server};

async fn post(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, path, Some(token), Some(body)).await
}

async fn put(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::PUT, path, Some(token), Some(body)).await
}

async fn delete(s: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    s.call(Method::DELETE, path, Some(token), None).await
}

/// Creates through `POST path` and returns the new id.
async fn create(s: &Server, path: &str, token: &str, body: Value) -> i64 {
    let (status, created) = post(s, path, token, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["code"], 0, "{created}");
    created["data"]["id"].as_i64().expect("an id")
}

/// The id of the page at `path` in the route tree of `GET /api/v1/menus/all`.
async fn page_id(s: &Server, token: &str, path: &str) -> i64 {
    fn find(list: &Value, path: &str) -> Option<i64> {
        list.as_array()?.iter().find_map(|m| {
            if m["path"] == path {
                m["id"].as_i64()
            } else {
                find(&m["children"], path)
            }
        })
    }
    let (status, menus) = s.get("/api/v1/menus/all", token).await;
    assert_eq!(status, StatusCode::OK, "{menus}");
    find(&menus["data"]["list"], path).unwrap_or_else(|| panic!("no page {path} in {menus}"))
}

/// The sorted permission codes of `/api/v1/user/info`.
async fn permissions(s: &Server, token: &str) -> (StatusCode, Vec<String>) {
    let (status, info) = s.get("/api/v1/user/info", token).await;
    let mut codes: Vec<String> = info["data"]["permissions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    codes.sort();
    (status, codes)
}

/// Every permission code of the seed and the menu ids (pages and buttons)
/// that carry it, found through the API alone: a probe role gets one menu
/// at a time and a probe user holding it reports its permissions.
async fn menu_ids_by_code(s: &Server, admin: &str) -> BTreeMap<String, Vec<i64>> {
    let (status, roles) = s.get("/api/v1/role?name=Administrator", admin).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let all: Vec<i64> = roles["data"]["list"][0]["menuIds"]
        .as_array()
        .expect("menu ids of the admin role")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(all.len() > 20, "the admin role holds every menu: {roles}");
    let probe = create(
        s,
        "/api/v1/role",
        admin,
        json!({"name": "Probe", "key": "probe", "menuIds": []}),
    )
    .await;
    let user = create(
        s,
        "/api/v1/user",
        admin,
        json!({"username": "probe", "password": "probe-pass", "roleIds": [probe]}),
    )
    .await;
    let (token, _) = s.login("probe", "probe-pass").await;
    let mut by_code: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for id in all {
        let path = format!("/api/v1/role/{probe}");
        let (status, body) = put(s, &path, admin, json!({"menuIds": [id]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, codes) = permissions(s, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(codes.len() <= 1, "one menu, one code: {codes:?}");
        for code in codes {
            by_code.entry(code).or_default().push(id);
        }
    }
    let (status, body) = delete(s, &format!("/api/v1/user/{user}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = delete(s, &format!("/api/v1/role/{probe}"), admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    by_code
}

#[tokio::test]
async fn roles_and_users_drive_permissions_on_one_node() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let codes = menu_ids_by_code(&s, &admin).await;
    let ids = |code: &str| -> Vec<i64> {
        codes
            .get(code)
            .unwrap_or_else(|| panic!("no menu carries {code}: {codes:?}"))
            .clone()
    };
    assert_eq!(
        ids("system:user:query").len(),
        2,
        "the User page and its Query button"
    );
    assert!(codes.contains_key("system:user:add"), "{codes:?}");

    // A role that may list users, and a user holding it.
    let user_page = page_id(&s, &admin, "/system/user").await;
    let auditor = create(
        &s,
        "/api/v1/role",
        &admin,
        json!({"name": "Auditor", "key": "auditor", "sort": 3, "dataScope": 1,
               "status": 1, "remark": "reads users", "menuIds": ids("system:user:query")}),
    )
    .await;
    let (status, role) = s.get(&format!("/api/v1/role/{auditor}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{role}");
    assert_eq!(role["data"]["key"], "auditor");
    assert_eq!(role["data"]["sort"], 3);
    let mut expected = ids("system:user:query");
    expected.sort();
    assert_eq!(role["data"]["menuIds"], json!(expected));
    assert!(expected.contains(&user_page));

    let alice = create(
        &s,
        "/api/v1/user",
        &admin,
        json!({"username": "alice", "password": "alice-pass", "nickname": "Alice",
               "email": "alice@example.com", "phone": "+1 555-0100", "sex": 1,
               "status": 1, "remark": "auditor", "roleIds": [auditor]}),
    )
    .await;
    let (status, shown) = s.get(&format!("/api/v1/user/{alice}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let shown = &shown["data"];
    assert_eq!(shown["username"], "alice");
    assert_eq!(shown["nickname"], "Alice");
    assert_eq!(shown["email"], "alice@example.com");
    assert_eq!(shown["sex"], 1);
    assert_eq!(shown["status"], 1);
    assert_eq!(shown["roleIds"], json!([auditor]));
    assert!(shown["createdAt"].as_i64().unwrap() > 0);
    let text = shown.to_string().to_lowercase();
    assert!(
        !text.contains("password") && !text.contains("argon2"),
        "{shown}"
    );

    // Alice sees what her role grants and nothing more.
    let (token, _) = s.login("alice", "alice-pass").await;
    let (status, info) = s.get("/api/v1/user/info", &token).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["data"]["roles"], json!(["auditor"]));
    assert_eq!(info["data"]["permissions"], json!(["system:user:query"]));
    assert_eq!(info["data"]["realName"], "Alice");
    let (status, body) = s.get("/api/v1/user", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/api/v1/role", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errorCode"], "PERMISSION_DENIED");
    assert_eq!(body["code"], 61);
    let (status, body) = post(
        &s,
        "/api/v1/user",
        &token,
        json!({"username": "mallory", "password": "mallory-pass"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["errorCode"], "PERMISSION_DENIED");

    // New menus on the role: Alice's permissions change at once.
    let mut granted = ids("system:user:query");
    granted.extend(ids("system:role:query"));
    granted.extend(ids("system:user:add"));
    let (status, body) = put(
        &s,
        &format!("/api/v1/role/{auditor}"),
        &admin,
        json!({"menuIds": granted}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, codes) = permissions(&s, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        codes,
        ["system:role:query", "system:user:add", "system:user:query"]
    );
    let (status, body) = s.get("/api/v1/role", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob = create(
        &s,
        "/api/v1/user",
        &token,
        json!({"username": "bob", "password": "bob-pass"}),
    )
    .await;
    let (_, shown) = s.get(&format!("/api/v1/user/{bob}"), &admin).await;
    assert_eq!(
        shown["data"]["nickname"], "bob",
        "nickname defaults to the name"
    );
    assert_eq!(shown["data"]["roleIds"], json!([]));

    // A disabled role grants nothing; enabled again, it does.
    let status_path = format!("/api/v1/role/{auditor}/status");
    let (status, body) = put(&s, &status_path, &admin, json!({"status": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(permissions(&s, &token).await.1, Vec::<String>::new());
    let (status, options) = s.get("/api/v1/role/options", &admin).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let keys: Vec<&str> = options["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["admin", "user"], "only enabled roles: {options}");
    let (status, body) = put(&s, &status_path, &admin, json!({"status": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(permissions(&s, &token).await.1.len(), 3);

    // Editing the user: a password change clears nothing else; roles replaced.
    let (status, body) = put(
        &s,
        &format!("/api/v1/user/{alice}"),
        &admin,
        json!({"password": "alice-pass-2", "remark": "moved", "roleIds": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(permissions(&s, &token).await.1, Vec::<String>::new());
    let (_, shown) = s.get(&format!("/api/v1/user/{alice}"), &admin).await;
    assert_eq!(shown["data"]["remark"], "moved");
    assert_eq!(shown["data"]["nickname"], "Alice", "absent fields are kept");
    assert_eq!(shown["data"]["roleIds"], json!([]));
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "alice-pass"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password is gone");
    let (token, _) = s.login("alice", "alice-pass-2").await;
    let (status, body) = put(
        &s,
        &format!("/api/v1/user/{alice}"),
        &admin,
        json!({"roleIds": [auditor]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(permissions(&s, &token).await.1.len(), 3);

    // Disabling Alice ends her sessions and refuses her logins.
    let (status, body) = put(
        &s,
        &format!("/api/v1/user/{alice}/status"),
        &admin,
        json!({"status": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/api/v1/user/info", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "alice", "password": "alice-pass-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errorCode"], "AUTH_USER_DISABLED");
    let (status, listed) = s.get("/api/v1/user?status=0", &admin).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"]["total"], 1);
    assert_eq!(listed["data"]["list"][0]["username"], "alice");

    // Enabled again she can log in; deleted, her session ends.
    let (status, body) = put(
        &s,
        &format!("/api/v1/user/{alice}/status"),
        &admin,
        json!({"status": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (token, _) = s.login("alice", "alice-pass-2").await;
    assert_eq!(permissions(&s, &token).await.0, StatusCode::OK);
    let (status, body) = delete(&s, &format!("/api/v1/user/{alice}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s.get("/api/v1/user/info", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s.get(&format!("/api/v1/user/{alice}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 65);
}

/// `(status, code, message)` of a request that must fail.
async fn failure(
    s: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, i64, String) {
    let (status, body) = s.call(method, path, Some(token), body).await;
    assert_ne!(status, StatusCode::OK, "{path} must fail: {body}");
    assert!(body["errorCode"].is_string(), "envelope: {body}");
    (
        status,
        body["code"].as_i64().unwrap_or_default(),
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_conflicts_are_409() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let role = create(
        &s,
        "/api/v1/role",
        &admin,
        json!({"name": "Editors", "key": "editor"}),
    )
    .await;

    let bad_users = [
        (json!({"username": "a", "password": "secret-1"}), "username"),
        (json!({"password": "secret-1"}), "username"),
        (
            json!({"username": "has space", "password": "secret-1"}),
            "username",
        ),
        (
            json!({"username": "carol", "password": "12345"}),
            "password",
        ),
        (json!({"username": "carol"}), "password"),
        (
            json!({"username": "carol", "password": "x".repeat(33)}),
            "password",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "status": 5}),
            "status",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "status": "x"}),
            "status",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "roleIds": [999_999]}),
            "roleIds",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "roleIds": "1"}),
            "roleIds",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "email": "nope"}),
            "email",
        ),
        (
            json!({"username": "carol", "password": "secret-1", "sex": 7}),
            "sex",
        ),
        (json!({"username": 5, "password": "secret-1"}), "username"),
    ];
    for (body, field) in bad_users {
        let (status, code, message) =
            failure(&s, Method::POST, "/api/v1/user", &admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(code == 51 || code == 53, "{body}: code {code}");
        assert!(
            message.contains(field),
            "{body}: {message} must name {field}"
        );
    }
    let (status, code, _) = failure(
        &s,
        Method::POST,
        "/api/v1/user",
        &admin,
        Some(json!(["not", "an", "object"])),
    )
    .await;
    assert_eq!((status, code), (StatusCode::BAD_REQUEST, 53));

    let carol = create(
        &s,
        "/api/v1/user",
        &admin,
        json!({"username": "carol", "password": "secret-1", "roleIds": [role]}),
    )
    .await;
    for name in ["carol", "admin"] {
        let (status, code, message) = failure(
            &s,
            Method::POST,
            "/api/v1/user",
            &admin,
            Some(json!({"username": name, "password": "secret-1"})),
        )
        .await;
        assert_eq!((status, code), (StatusCode::CONFLICT, 60), "{message}");
        assert!(message.contains(name), "{message}");
    }
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &format!("/api/v1/user/{carol}"),
        &admin,
        Some(json!({"username": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, message) = failure(
        &s,
        Method::PUT,
        &format!("/api/v1/user/{carol}"),
        &admin,
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("password"), "{message}");
    let (status, _, message) = failure(
        &s,
        Method::PUT,
        &format!("/api/v1/user/{carol}/status"),
        &admin,
        Some(json!({"status": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("status"), "{message}");

    // The admin user is protected.
    let (status, info) = s.get("/api/v1/user/info", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let admin_id = info["data"]["userId"].as_i64().unwrap();
    let admin_path = format!("/api/v1/user/{admin_id}");
    let (status, code, _) = failure(&s, Method::DELETE, &admin_path, &admin, None).await;
    assert_eq!((status, code), (StatusCode::CONFLICT, 60));
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &format!("{admin_path}/status"),
        &admin,
        Some(json!({"status": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &admin_path,
        &admin,
        Some(json!({"status": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &admin_path,
        &admin,
        Some(json!({"username": "root"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(permissions(&s, &admin).await.1, ["*:*:*"]);

    // Paths and queries.
    let (status, code, _) = failure(&s, Method::GET, "/api/v1/user/abc", &admin, None).await;
    assert_eq!((status, code), (StatusCode::BAD_REQUEST, 53));
    let (status, code, _) = failure(&s, Method::GET, "/api/v1/user/999999", &admin, None).await;
    assert_eq!((status, code), (StatusCode::NOT_FOUND, 65));
    let (status, code, _) = failure(&s, Method::DELETE, "/api/v1/user/999999", &admin, None).await;
    assert_eq!((status, code), (StatusCode::NOT_FOUND, 65));
    let (status, _, message) =
        failure(&s, Method::GET, "/api/v1/user?pageSize=501", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("pageSize"), "{message}");
    let (status, _, message) =
        failure(&s, Method::GET, "/api/v1/user?pageNum=0", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("pageNum"), "{message}");
    let (status, _, message) =
        failure(&s, Method::GET, "/api/v1/user?status=x", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("status"), "{message}");
    let (status, _, message) = failure(&s, Method::GET, "/api/v1/role?size=0", &admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("size"), "{message}");

    // Roles.
    let bad_roles = [
        (json!({"key": "k1"}), "name"),
        (json!({"name": "R1"}), "key"),
        (json!({"name": "R1", "key": "k 1"}), "key"),
        (json!({"name": "R1", "key": "k1", "status": 3}), "status"),
        (
            json!({"name": "R1", "key": "k1", "dataScope": 9}),
            "dataScope",
        ),
        (json!({"name": "R1", "key": "k1", "sort": -1}), "sort"),
        (
            json!({"name": "R1", "key": "k1", "menuIds": [999_999]}),
            "menuIds",
        ),
        (
            json!({"name": "R1", "key": "k1", "menuIds": ["x"]}),
            "menuIds",
        ),
    ];
    for (body, field) in bad_roles {
        let (status, code, message) =
            failure(&s, Method::POST, "/api/v1/role", &admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
        assert!(code == 51 || code == 53, "{body}: code {code}");
        assert!(
            message.contains(field),
            "{body}: {message} must name {field}"
        );
    }
    for body in [
        json!({"name": "Editors", "key": "other"}),
        json!({"name": "Other", "key": "editor"}),
        json!({"name": "Admins", "key": "admin"}),
    ] {
        let (status, code, _) =
            failure(&s, Method::POST, "/api/v1/role", &admin, Some(body.clone())).await;
        assert_eq!((status, code), (StatusCode::CONFLICT, 60), "{body}");
    }
    let (status, roles) = s.get("/api/v1/role?name=Administrator", &admin).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let admin_role = roles["data"]["list"][0]["id"].as_i64().unwrap();
    let admin_role_path = format!("/api/v1/role/{admin_role}");
    let (status, _, _) = failure(&s, Method::DELETE, &admin_role_path, &admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &format!("{admin_role_path}/status"),
        &admin,
        Some(json!({"status": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &admin_role_path,
        &admin,
        Some(json!({"key": "boss"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = failure(
        &s,
        Method::PUT,
        &format!("/api/v1/role/{role}"),
        &admin,
        Some(json!({"name": "Administrator"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, code, _) = failure(&s, Method::GET, "/api/v1/role/abc", &admin, None).await;
    assert_eq!((status, code), (StatusCode::BAD_REQUEST, 53));
    let (status, code, _) = failure(&s, Method::GET, "/api/v1/role/999999", &admin, None).await;
    assert_eq!((status, code), (StatusCode::NOT_FOUND, 65));
    let (status, options) = s.get("/api/v1/role/options", &admin).await;
    assert_eq!(status, StatusCode::OK, "options is not an id: {options}");
    assert_eq!(options["data"]["list"].as_array().unwrap().len(), 3);
    let (status, _, message) = failure(
        &s,
        Method::POST,
        &format!("/api/v1/role/{role}/users"),
        &admin,
        Some(json!({"userIds": [999_999]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("userIds"), "{message}");
    let (status, _, _) = failure(
        &s,
        Method::POST,
        &format!("/api/v1/role/{role}/users"),
        &admin,
        Some(json!({"userIds": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn listings_page_filter_and_follow_assignments() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let mut pagers = Vec::new();
    for i in 1..=12 {
        pagers.push(
            create(
                &s,
                "/api/v1/user",
                &admin,
                json!({"username": format!("pager_{i:02}"), "password": "pager-pass"}),
            )
            .await,
        );
    }
    let page = |query: &str| format!("/api/v1/user?username=PAGER_&{query}");
    let (status, first) = s.get(&page("pageNum=1&pageSize=5"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["data"]["total"], 12);
    let list = first["data"]["list"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    assert_eq!(list[0]["username"], "pager_01");
    let (_, last) = s.get(&page("pageNum=3&pageSize=5"), &admin).await;
    assert_eq!(last["data"]["total"], 12);
    assert_eq!(last["data"]["list"].as_array().unwrap().len(), 2);
    assert_eq!(last["data"]["list"][1]["username"], "pager_12");
    let (_, beyond) = s.get(&page("pageNum=9&pageSize=5"), &admin).await;
    assert_eq!(beyond["data"]["total"], 12);
    assert_eq!(beyond["data"]["list"], json!([]));
    let (_, default) = s.get("/api/v1/user", &admin).await;
    assert_eq!(default["data"]["total"], 13, "12 pagers and admin");
    assert_eq!(default["data"]["list"].as_array().unwrap().len(), 10);
    let (_, literal) = s.get("/api/v1/user?username=%25", &admin).await;
    assert_eq!(literal["data"]["total"], 0, "% is taken literally");
    let (_, one) = s.get("/api/v1/user?username=er_1", &admin).await;
    assert_eq!(one["data"]["total"], 3, "pager_10..12: {one}");

    for id in &pagers[..2] {
        let (status, body) = put(
            &s,
            &format!("/api/v1/user/{id}/status"),
            &admin,
            json!({"status": 0}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, disabled) = s.get("/api/v1/user?status=0", &admin).await;
    assert_eq!(disabled["data"]["total"], 2);
    let (_, enabled) = s.get(&page("status=1"), &admin).await;
    assert_eq!(enabled["data"]["total"], 10);

    // Roles page with page/size.
    let mut roles = Vec::new();
    for i in 1..=3 {
        roles.push(
            create(
                &s,
                "/api/v1/role",
                &admin,
                json!({"name": format!("Team {i}"), "key": format!("team{i}"), "sort": 10 + i}),
            )
            .await,
        );
    }
    let (status, listed) = s.get("/api/v1/role?page=1&size=2", &admin).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"]["total"], 5);
    assert_eq!(listed["data"]["list"].as_array().unwrap().len(), 2);
    assert_eq!(listed["data"]["list"][0]["key"], "admin");
    let (_, teams) = s.get("/api/v1/role?name=team&page=2&size=2", &admin).await;
    assert_eq!(teams["data"]["total"], 3);
    assert_eq!(teams["data"]["list"][0]["key"], "team3");
    let item = &teams["data"]["list"][0];
    for field in [
        "id",
        "name",
        "key",
        "sort",
        "dataScope",
        "status",
        "remark",
        "menuIds",
        "createdAt",
    ] {
        assert!(item.get(field).is_some(), "role item lacks {field}: {item}");
    }

    // Holders of a role: assign, page, unassign.
    let team = roles[0];
    let holders = format!("/api/v1/role/{team}/users");
    let (status, body) = post(
        &s,
        &holders,
        &admin,
        json!({"userIds": [pagers[2], pagers[3], pagers[4]]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&s, &holders, &admin, json!({"userIds": [pagers[2]]})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "assigning twice is harmless: {body}"
    );
    let (status, held) = s.get(&format!("{holders}?page=1&size=2"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["data"]["total"], 3);
    assert_eq!(held["data"]["list"].as_array().unwrap().len(), 2);
    assert_eq!(held["data"]["list"][0]["roleIds"], json!([team]));
    let (status, shown) = s.get(&format!("/api/v1/user/{}", pagers[3]), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["data"]["roleIds"], json!([team]));
    let one_holder = format!("{holders}/{}", pagers[3]);
    let (status, body) = delete(&s, &one_holder, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = delete(&s, &one_holder, &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, held) = s.get(&holders, &admin).await;
    assert_eq!(held["data"]["total"], 2);

    // Deleting a role takes it from its holders.
    let (status, body) = delete(&s, &format!("/api/v1/role/{team}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = s.get(&format!("/api/v1/user/{}", pagers[2]), &admin).await;
    assert_eq!(shown["data"]["roleIds"], json!([]));
    let (status, _) = s.get(&holders, &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Three nodes on PostgreSQL + Redis: a role's menus changed on node A
/// change the permissions of its holders on B and C within 200 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_role_change_reaches_every_node_within_200ms() {
    let cluster = Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (admin, _) = a.login("admin", "admin123").await;
    let role_page = page_id(a, &admin, "/system/role").await;
    let viewer = create(
        a,
        "/api/v1/role",
        &admin,
        json!({"name": "Viewer", "key": "viewer", "menuIds": []}),
    )
    .await;
    create(
        a,
        "/api/v1/user",
        &admin,
        json!({"username": "dave", "password": "dave-pass", "roleIds": [viewer]}),
    )
    .await;
    let (dave, _) = a.login("dave", "dave-pass").await;
    for node in [&b, &c] {
        let (status, codes) = permissions(node, &dave).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(codes, Vec::<String>::new());
        let (status, body) = node.get("/api/v1/role", &dave).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["errorCode"], "PERMISSION_DENIED");
    }

    let (status, body) = put(
        a,
        &format!("/api/v1/role/{viewer}"),
        &admin,
        json!({"menuIds": [role_page]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed = Instant::now();
    let deadline = changed + Duration::from_millis(200);
    for (name, node) in [("B", &b), ("C", &c)] {
        loop {
            let (_, codes) = permissions(node, &dave).await;
            let (status, _) = node.get("/api/v1/role", &dave).await;
            if codes == ["system:role:query"] && status == StatusCode::OK {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {name} still shows {codes:?} / {status} {:?} after the change",
                changed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // And back: the permission disappears everywhere.
    let (status, body) = put(
        b,
        &format!("/api/v1/role/{viewer}"),
        &admin,
        json!({"menuIds": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + Duration::from_millis(200);
    for (name, node) in [("A", &a), ("C", &c)] {
        loop {
            let (status, _) = node.get("/api/v1/role", &dave).await;
            if status == StatusCode::FORBIDDEN {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {name} still grants the role"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

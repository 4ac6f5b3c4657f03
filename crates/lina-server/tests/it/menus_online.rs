//! Menu administration and online sessions, on one node (SQLite) and on a
//! three-node cluster (PostgreSQL + Redis).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Server};

/// Depth-first search of a tree of `{…, children}` nodes.
fn find<'a>(nodes: &'a Value, pred: &dyn Fn(&Value) -> bool) -> Option<&'a Value> {
    for node in nodes.as_array()? {
        if pred(node) {
            return Some(node);
        }
        if let Some(found) = node.get("children").and_then(|c| find(c, pred)) {
            return Some(found);
        }
    }
    None
}

fn by_id(id: i64) -> impl Fn(&Value) -> bool {
    move |n: &Value| n["id"] == id
}

fn ids_of(children: &Value) -> Vec<i64> {
    children
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

async fn create(s: &Server, token: &str, body: Value) -> i64 {
    let (status, res) = s
        .call(Method::POST, "/api/v1/menu", Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["code"], 0);
    res["data"]["id"].as_i64().expect("created id")
}

async fn rejected(s: &Server, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (status, res) = s.call(method, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {res}");
    assert_ne!(res["code"], 0);
    res
}

#[tokio::test]
async fn menu_admin_crud_tree_and_validation() {
    let s = Server::start(&[]).await;
    let (token, _) = s.login("admin", "admin123").await;

    let (status, _) = s.call(Method::GET, "/api/v1/menu", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Authentication comes before reading the path or the body.
    let (status, _) = s.call(Method::GET, "/api/v1/menu/abc", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s
        .call(Method::POST, "/api/v1/menu", None, Some(json!({"type": 1})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let dir = create(
        &s,
        &token,
        json!({"type": "D", "name": "Reports", "path": "/reports", "icon": "lucide:chart", "sort": 9}),
    )
    .await;
    let page = create(
        &s,
        &token,
        json!({"parentId": dir, "type": "M", "name": "Sales", "path": "/reports/sales",
               "component": "reports/sales/index", "perms": "report:sales:query", "isCache": 1}),
    )
    .await;
    let button = create(
        &s,
        &token,
        json!({"parentId": page, "type": "B", "name": "Export sales", "perms": "report:sales:export"}),
    )
    .await;

    // The new page is a route of admin; the button is not.
    let (status, menus) = s.get("/api/v1/menus/all", &token).await;
    assert_eq!(status, StatusCode::OK, "{menus}");
    let list = &menus["data"]["list"];
    let reports = find(list, &by_id(dir)).expect("new directory in /menus/all");
    assert_eq!(reports["path"], "/reports");
    let sales = find(&reports["children"], &by_id(page)).expect("new page under it");
    assert_eq!(sales["path"], "/reports/sales");
    assert_eq!(sales["meta"]["keepAlive"], true);
    assert!(sales.get("children").is_none(), "buttons are no routes");

    // The admin list shows everything, buttons included, as a tree.
    let (status, all) = s.get("/api/v1/menu", &token).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let tree = &all["data"]["list"];
    let listed = find(tree, &by_id(dir)).expect("directory in /menu");
    assert_eq!(listed["type"], "D");
    assert_eq!(listed["parentId"], 0);
    let listed_page = find(&listed["children"], &by_id(page)).unwrap();
    assert_eq!(ids_of(&listed_page["children"]), vec![button]);
    let listed_button = &listed_page["children"][0];
    assert_eq!(listed_button["perms"], "report:sales:export");
    assert_eq!(listed_button["type"], "B");
    assert_eq!(listed_button["status"], 1);
    assert_eq!(listed_button["visible"], 1);
    for key in [
        "component",
        "icon",
        "sort",
        "isFrame",
        "isCache",
        "queryParam",
        "remark",
        "i18nKey",
    ] {
        assert!(listed_button.get(key).is_some(), "{key} missing");
    }
    assert!(listed_button["createdAt"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(
        find(tree, &|n| n["perms"] == "system:menu:remove").is_some(),
        "seeded buttons are listed"
    );

    // Filters.
    let (_, filtered) = s.get("/api/v1/menu?name=export%20SAL", &token).await;
    let roots = filtered["data"]["list"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{filtered}");
    assert_eq!(roots[0]["id"], button);
    let (_, disabled) = s.get("/api/v1/menu?status=0&name=", &token).await;
    assert_eq!(disabled["data"]["list"], json!([]), "{disabled}");
    let (status, _) = s.get("/api/v1/menu?status=x", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // One menu.
    let (status, one) = s.get(&format!("/api/v1/menu/{button}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["data"]["parentId"], page);
    assert_eq!(one["data"]["name"], "Export sales");
    let (status, body) = s.get("/api/v1/menu/abc", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 53);
    let (status, body) = s.get("/api/v1/menu/999999", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 65);

    // Invalid menus.
    let post = |body| rejected(&s, &token, Method::POST, "/api/v1/menu", body);
    let res = post(json!({"type": "X", "name": "Bad", "path": "/bad"})).await;
    assert_eq!(res["code"], 51);
    post(json!({"name": "No type", "path": "/bad"})).await;
    post(json!({"parentId": page, "type": "B", "name": "No perms"})).await;
    post(json!({"parentId": page, "type": "B", "name": "Blank perms", "perms": "  "})).await;
    post(json!({"parentId": 999999, "type": "M", "name": "Orphan", "path": "/orphan"})).await;
    post(json!({"parentId": button, "type": "B", "name": "Under a button", "perms": "x:y:z"}))
        .await;
    post(json!({"type": "D", "name": "", "path": "/empty"})).await;
    post(json!({"type": "D", "name": "x".repeat(65), "path": "/long"})).await;
    post(json!({"type": "D", "name": "Flag", "path": "/flag", "visible": 2})).await;
    post(json!({"type": "D", "name": "Wrong type", "path": 5})).await;
    let (status, _) = s
        .http
        .post(format!("{}/api/v1/menu", s.base))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Updates: own ancestor, own parent, button with children.
    let dir_path = format!("/api/v1/menu/{dir}");
    let res = rejected(
        &s,
        &token,
        Method::PUT,
        &dir_path,
        json!({"parentId": button}),
    )
    .await;
    assert_eq!(res["code"], 51);
    rejected(
        &s,
        &token,
        Method::PUT,
        &dir_path,
        json!({"parentId": page}),
    )
    .await;
    rejected(&s, &token, Method::PUT, &dir_path, json!({"parentId": dir})).await;
    rejected(
        &s,
        &token,
        Method::PUT,
        &format!("/api/v1/menu/{page}"),
        json!({"type": "B"}),
    )
    .await;
    rejected(&s, &token, Method::PUT, "/api/v1/menu/abc", json!({})).await;
    let (status, _) = s
        .call(
            Method::PUT,
            "/api/v1/menu/999999",
            Some(&token),
            Some(json!({"name": "Ghost"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, res) = s
        .call(
            Method::PUT,
            &format!("/api/v1/menu/{page}"),
            Some(&token),
            Some(json!({"name": "Sales report", "sort": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let (_, one) = s.get(&format!("/api/v1/menu/{page}"), &token).await;
    assert_eq!(one["data"]["name"], "Sales report");
    assert_eq!(one["data"]["sort"], 3);
    assert_eq!(
        one["data"]["path"], "/reports/sales",
        "fields not given keep their values"
    );
    let (_, menus) = s.get("/api/v1/menus/all", &token).await;
    let renamed = find(&menus["data"]["list"], &by_id(page)).unwrap();
    assert_eq!(
        renamed["name"], "Sales report",
        "routes reload after an edit"
    );

    // Move the page to the root and back: a legal re-parenting.
    for parent in [0, dir] {
        let (status, res) = s
            .call(
                Method::PUT,
                &format!("/api/v1/menu/{page}"),
                Some(&token),
                Some(json!({"parentId": parent})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
    }

    // Select tree.
    let (status, select) = s.get("/api/v1/menu/treeselect", &token).await;
    assert_eq!(status, StatusCode::OK, "{select}");
    let select = &select["data"]["list"];
    for root in select.as_array().unwrap() {
        assert!(root["id"].is_i64() && root["label"].is_string());
        assert!(root["children"].is_array());
    }
    let node = find(select, &by_id(dir)).unwrap();
    assert_eq!(node["label"], "Reports");
    let node = find(&node["children"], &by_id(page)).unwrap();
    assert_eq!(node["label"], "Sales report");
    assert_eq!(node["children"][0]["id"], button);
    assert_eq!(node["children"][0]["label"], "Export sales");
    assert_eq!(node["children"][0]["children"], json!([]));

    // The role's menus: the seeded admin role is id 1 and has every seeded
    // menu, none of the new ones.
    let (status, role) = s.get("/api/v1/menu/role/1", &token).await;
    assert_eq!(status, StatusCode::OK, "{role}");
    let checked: Vec<i64> = role["data"]["checkedKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let seeded_remove = find(select, &|n| n["label"] == "Uninstall plugin")
        .expect("seeded button in the select tree")["id"]
        .as_i64()
        .unwrap();
    assert!(checked.contains(&seeded_remove), "{checked:?}");
    assert!(!checked.contains(&dir) && !checked.contains(&button));
    assert!(find(&role["data"]["menus"], &by_id(button)).is_some());
    let (status, _) = s.get("/api/v1/menu/role/999999", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/api/v1/menu/role/abc", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Delete: a menu with children is a conflict; a leaf goes with its
    // role assignments.
    let (status, res) = s.call(Method::DELETE, &dir_path, Some(&token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{res}");
    assert_eq!(res["code"], 60);
    let (status, _) = s
        .call(Method::DELETE, "/api/v1/menu/abc", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .call(Method::DELETE, "/api/v1/menu/999999", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, res) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/menu/{seeded_remove}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let (_, role) = s.get("/api/v1/menu/role/1", &token).await;
    assert!(
        !role["data"]["checkedKeys"]
            .as_array()
            .unwrap()
            .contains(&json!(seeded_remove)),
        "the role assignment goes with the menu"
    );
    for id in [button, page, dir] {
        let (status, res) = s
            .call(
                Method::DELETE,
                &format!("/api/v1/menu/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
    }
    let (status, _) = s.get(&dir_path, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, menus) = s.get("/api/v1/menus/all", &token).await;
    assert!(find(&menus["data"]["list"], &by_id(dir)).is_none());
}

/// Logs in with a distinct client type, so the session can be found in
/// the online list.
async fn login_as(s: &Server, client_type: &str) -> String {
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "admin123", "clientType": client_type})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["accessToken"].as_str().unwrap().to_string()
}

async fn online(s: &Server, token: &str, query: &str) -> Value {
    let (status, body) = s
        .get(&format!("/api/v1/monitor/online{query}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], 0);
    body["data"].clone()
}

fn session_of<'a>(data: &'a Value, client_type: &str) -> Option<&'a Value> {
    data["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["clientType"] == client_type)
}

#[tokio::test]
async fn online_sessions_list_and_force_logout() {
    let s = Server::start(&[]).await;
    let (_, health) = s.call(Method::GET, "/health", None, None).await;
    let node_id = health["nodeId"].as_str().unwrap().to_string();
    let caller = login_as(&s, "web").await;
    let other = login_as(&s, "app").await;

    let data = online(&s, &caller, "").await;
    assert!(data["total"].as_u64().unwrap() >= 2, "{data}");
    let victim = session_of(&data, "app").expect("the other login is listed");
    assert!(session_of(&data, "web").is_some());
    assert_eq!(victim["username"], "admin");
    assert_eq!(victim["nodeId"], node_id.as_str());
    assert_eq!(victim["ip"], "127.0.0.1");
    for key in ["browser", "os"] {
        assert!(victim[key].is_string(), "{key}");
    }
    assert!(victim["loginTime"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(victim["lastActiveTime"].as_i64().unwrap() >= victim["loginTime"].as_i64().unwrap());
    let victim_id = victim["tokenId"].as_str().unwrap().to_string();

    // Filters and paging.
    let data = online(&s, &caller, "?username=adm&ip=127.0").await;
    assert_eq!(data["total"], 2, "{data}");
    let data = online(&s, &caller, "?username=nobody").await;
    assert_eq!(data["total"], 0);
    assert_eq!(data["items"], json!([]));
    let data = online(&s, &caller, "?username=a%25").await;
    assert_eq!(data["total"], 0, "LIKE wildcards are literal");
    let data = online(&s, &caller, "?pageNum=1&pageSize=1").await;
    assert_eq!(data["total"], 2);
    assert_eq!(data["items"].as_array().unwrap().len(), 1);
    let data = online(&s, &caller, "?pageNum=3&pageSize=1").await;
    assert_eq!(data["items"], json!([]));
    for bad in ["?pageNum=abc", "?pageSize=0", "?pageSize=100000"] {
        let (status, body) = s
            .get(&format!("/api/v1/monitor/online{bad}"), &caller)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // Force logout of the other session.
    let path = format!("/api/v1/monitor/online/{victim_id}");
    let (status, body) = s.call(Method::DELETE, &path, Some(&caller), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/api/v1/user/info", &other).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errorCode"], "AUTH_SESSION_REVOKED");
    let (status, _) = s.get("/api/v1/user/info", &caller).await;
    assert_eq!(status, StatusCode::OK, "the caller's session keeps working");
    let data = online(&s, &caller, "").await;
    assert!(session_of(&data, "app").is_none(), "{data}");
    assert_eq!(data["total"], 1);

    // Unknown sessions.
    let (status, body) = s.call(Method::DELETE, &path, Some(&caller), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 65);
    for unknown in ["0123456789abcdef0123456789abcdef", "not%20a%20token", "x"] {
        let (status, body) = s
            .call(
                Method::DELETE,
                &format!("/api/v1/monitor/online/{unknown}"),
                Some(&caller),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {body}");
    }
    let (status, _) = s.call(Method::DELETE, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Three nodes on PostgreSQL + Redis: a page added on A is a route on B and
/// C within 200 ms; a forced logout on C ends a session of A everywhere
/// within 200 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_menus_and_forced_logout_reach_every_node() {
    let cluster = Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let caller = login_as(a, "web").await;
    let victim = login_as(a, "app").await;

    // Every node loads its topology before the change.
    for node in [&a, &b, &c] {
        let (status, menus) = node.get("/api/v1/menus/all", &caller).await;
        assert_eq!(status, StatusCode::OK, "{menus}");
        assert!(find(&menus["data"]["list"], &|m| m["path"] == "/cluster-page").is_none());
    }
    let page = create(
        a,
        &caller,
        json!({"type": "M", "name": "Cluster page", "path": "/cluster-page",
               "component": "cluster/index"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_millis(200);
    for node in [&b, &c] {
        loop {
            let (status, menus) = node.get("/api/v1/menus/all", &caller).await;
            assert_eq!(status, StatusCode::OK, "{menus}");
            if find(&menus["data"]["list"], &by_id(page)).is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the new page is not a route within 200ms",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // The session of A, force-logged-out on C.
    let data = online(c, &caller, "?pageSize=100").await;
    let session = session_of(&data, "app").expect("A's session is listed on C");
    assert_eq!(session["nodeId"], "node-a");
    let token_id = session["tokenId"].as_str().unwrap().to_string();
    for node in [&a, &b] {
        let (status, _) = node.get("/api/v1/user/info", &victim).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/api/v1/monitor/online/{token_id}"),
            Some(&caller),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + Duration::from_millis(200);
    for node in [&a, &b] {
        loop {
            let (status, _) = node.get("/api/v1/user/info", &victim).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: a forced logout on C must end the session within 200ms",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (status, _) = node.get("/api/v1/user/info", &caller).await;
        assert_eq!(status, StatusCode::OK);
    }
    let data = online(b, &caller, "").await;
    assert!(session_of(&data, "app").is_none(), "{data}");
}

//! Plugins: the demo source plugin's lifecycle and effects, dynamic
//! packages (install, files, upgrade, uninstall), and the cluster guarantees
//! (a disable on one node reaches the others within 200 ms; concurrent
//! upgrades run once).

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Server};

/// Writes package `id` at `version` into `storage` (frontend text carries
/// the version, so an upgrade is visible in the served bytes).
fn write_package(storage: &Path, id: &str, version: &str) {
    let dir = storage.join(id);
    std::fs::create_dir_all(dir.join("frontend/assets")).unwrap();
    let manifest = json!({
        "id": id,
        "name": "Report viewer",
        "version": version,
        "description": "a dynamic plugin for tests",
        "menus": [{
            "name": "Reports", "type": "M", "path": "/reports", "component": "reports/index",
            "perms": "reports:view", "i18nKey": "menu.reports",
        }],
    });
    std::fs::write(dir.join("plugin.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("frontend/index.html"),
        format!("<h1>reports {version}</h1>"),
    )
    .unwrap();
    std::fs::write(dir.join("frontend/assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("plugin.wasm"), format!("\0asm{version}")).unwrap();
}

async fn plugin_call(s: &Server, method: Method, path: &str, token: &str) -> (StatusCode, Value) {
    s.call(method, path, Some(token), None).await
}

fn menu_names(menus: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = menus["data"]["list"].as_array().unwrap().iter().collect();
    while let Some(m) = stack.pop() {
        out.push(m["name"].as_str().unwrap_or_default().to_string());
        if let Some(children) = m["children"].as_array() {
            stack.extend(children);
        }
    }
    out
}

fn dynamic_entry(body: &Value, id: &str) -> Value {
    body["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls `check` every 5 ms until it holds; returns the time it took, or
/// panics with `what` after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Loads of the `plugin-runtime` domain on `node`, from `/metrics`.
async fn runtime_loads(node: &Server) -> i64 {
    let text = node
        .http
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("lina_cache_events_total{")
                && l.contains("domain=\"plugin-runtime\"")
                && l.contains("kind=\"load\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no plugin-runtime loads in /metrics:\n{text}"))
}

#[tokio::test]
async fn demo_plugin_lifecycle_on_a_single_node() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;

    // Discovered at start, not installed: its routes and menus are absent.
    let (status, body) = s
        .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let demo = dynamic_entry(&body, "demo");
    assert_eq!(demo["installed"], 0, "{body}");
    assert_eq!(demo["enabled"], 0);
    let (status, _) = plugin_call(&s, Method::GET, "/x/demo/api/v1/greeting", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its messages are part of the runtime bundles.
    let (status, body) = s
        .call(
            Method::GET,
            "/api/v1/i18n/runtime/messages?lang=zh-CN",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["messages"]["menu"]["demo"]["title"], "演示",
        "{body}"
    );

    // Install: menus, routes and the job appear.
    let (status, body) =
        plugin_call(&s, Method::POST, "/api/v1/plugins/demo/install", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["executed"], true);
    assert_eq!(body["data"]["plugin"]["installed"], 1);
    assert_eq!(body["data"]["plugin"]["enabled"], 1);
    assert_eq!(body["data"]["plugin"]["runtimeState"], "normal");
    let (_, again) = plugin_call(&s, Method::POST, "/api/v1/plugins/demo/install", &admin).await;
    assert_eq!(again["data"]["executed"], false, "{again}");

    let (_, menus) = s.get("/api/v1/menus/all", &admin).await;
    assert!(menu_names(&menus).contains(&"Demo".to_string()), "{menus}");
    let (status, first) = plugin_call(&s, Method::GET, "/x/demo/api/v1/greeting", &admin).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["data"]["cached"], false);
    let (_, second) = plugin_call(&s, Method::GET, "/x/demo/api/v1/greeting", &admin).await;
    assert_eq!(second["data"]["cached"], true);
    assert_eq!(second["data"]["greeting"], first["data"]["greeting"]);
    let mut fences = Vec::new();
    for expected in 1..=3 {
        let (status, body) = plugin_call(&s, Method::POST, "/x/demo/api/v1/counter", &admin).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["value"], expected);
        fences.push(body["data"]["fencingToken"].as_u64().unwrap());
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "{fences:?}");
    let (status, body) = plugin_call(&s, Method::GET, "/x/demo/api/v1/missing", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Disable: routes 404, menus gone; the plugin stays installed.
    let (status, body) = plugin_call(&s, Method::PUT, "/api/v1/plugins/demo/disable", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["plugin"]["enabled"], 0);
    let (status, body) = plugin_call(&s, Method::GET, "/x/demo/api/v1/greeting", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errorCode"], "NOT_FOUND");
    let (_, menus) = s.get("/api/v1/menus/all", &admin).await;
    assert!(!menu_names(&menus).contains(&"Demo".to_string()), "{menus}");
    let (_, info) = s.get("/api/v1/user/info", &admin).await;
    assert!(!info.to_string().contains("demo:counter:add"));
    // Its job pauses (still enabled, never failed) and its handler is gone.
    within(Duration::from_secs(2), "the demo job pauses", || async {
        let (_, jobs) = s.get("/api/v1/job?name=demo", &admin).await;
        let job = &jobs["data"]["list"][0];
        job["status"] == "enabled" && job["pausedReason"].is_string()
    })
    .await;
    let (_, handlers) = s.get("/api/v1/job/handler", &admin).await;
    assert!(!handlers.to_string().contains("demo:tick"), "{handlers}");
    let (_, logs) = s.get("/api/v1/job/log?status=failed", &admin).await;
    assert_eq!(logs["data"]["total"], 0, "{logs}");

    // Enable again: everything is back, the counter kept its value.
    let (status, _) = plugin_call(&s, Method::PUT, "/api/v1/plugins/demo/enable", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = plugin_call(&s, Method::POST, "/x/demo/api/v1/counter", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["value"], 4);
    let (_, menus) = s.get("/api/v1/menus/all", &admin).await;
    assert!(menu_names(&menus).contains(&"Demo".to_string()));
    within(Duration::from_secs(2), "the demo job resumes", || async {
        let (_, jobs) = s.get("/api/v1/job?name=demo", &admin).await;
        jobs["data"]["list"][0]["pausedReason"].is_null()
    })
    .await;

    // Uninstall: menus deleted, routes gone, still discovered.
    let (status, body) = plugin_call(&s, Method::DELETE, "/api/v1/plugins/demo", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["plugin"]["installed"], 0);
    let (status, _) = plugin_call(&s, Method::GET, "/x/demo/api/v1/greeting", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, jobs) = s.get("/api/v1/job?name=demo", &admin).await;
    assert_eq!(jobs["data"]["total"], 0, "{jobs}");
    let (_, list) = plugin_call(&s, Method::GET, "/api/v1/plugins", &admin).await;
    assert_eq!(list["data"]["list"][0]["id"], "demo", "{list}");
    assert_eq!(list["data"]["list"][0]["installed"], 0);

    // Client mistakes.
    for (method, path, expected) in [
        (
            Method::GET,
            "/api/v1/plugins/Bad_Id",
            StatusCode::BAD_REQUEST,
        ),
        (Method::GET, "/api/v1/plugins/nope", StatusCode::NOT_FOUND),
        (
            Method::POST,
            "/api/v1/plugins/nope/install",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/api/v1/plugins/demo/enable",
            StatusCode::CONFLICT,
        ),
    ] {
        let (status, body) = plugin_call(&s, method.clone(), path, &admin).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert!(body["errorCode"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn dynamic_packages_install_serve_upgrade_and_uninstall() {
    let storage = tempfile::tempdir().unwrap();
    write_package(storage.path(), "reports", "1.0.0");
    let s = Server::start(&[(
        "LINA_PLUGIN__DYNAMIC__STORAGEPATH",
        storage.path().display().to_string(),
    )])
    .await;
    let (admin, _) = s.login("admin", "admin123").await;
    let (status, body) =
        plugin_call(&s, Method::POST, "/api/v1/plugins/reports/install", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["plugin"]["type"], "dynamic");
    assert_eq!(body["data"]["plugin"]["effectiveVersion"], "1.0.0");

    let get = |path: &str| {
        let url = format!("{}{path}", s.base);
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (status, kind, r.bytes().await.unwrap())
        }
    };
    let (status, kind, bytes) = get("/x/reports/assets/index.html").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind.as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(&bytes[..], b"<h1>reports 1.0.0</h1>");
    let (status, kind, _) = get("/x/reports/assets/assets/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind.as_deref(), Some("text/javascript; charset=utf-8"));
    let (status, _, bytes) = get("/x/reports/wasm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..], b"\0asm1.0.0");
    assert_eq!(
        get("/x/reports/assets/nope.js").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/x/nothing/wasm").await.0, StatusCode::NOT_FOUND);

    // The package on disk changes; the installed version is still served
    // until an upgrade (its files were copied into the database).
    write_package(storage.path(), "reports", "1.1.0");
    assert_eq!(
        &get("/x/reports/assets/index.html").await.2[..],
        b"<h1>reports 1.0.0</h1>"
    );
    let (status, body) = plugin_call(&s, Method::POST, "/api/v1/plugins/sync", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, one) = plugin_call(&s, Method::GET, "/api/v1/plugins/reports", &admin).await;
    assert_eq!(one["data"]["upgradeAvailable"], 1, "{one}");
    assert_eq!(one["data"]["runtimeState"], "pending_upgrade");
    assert_eq!(one["data"]["discoveredVersion"], "1.1.0");

    let (status, body) =
        plugin_call(&s, Method::POST, "/api/v1/plugins/reports/upgrade", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["executed"], true);
    assert_eq!(body["data"]["plugin"]["effectiveVersion"], "1.1.0");
    assert_eq!(body["data"]["plugin"]["runtimeState"], "normal");
    assert_eq!(
        &get("/x/reports/assets/index.html").await.2[..],
        b"<h1>reports 1.1.0</h1>"
    );
    assert_eq!(&get("/x/reports/wasm").await.2[..], b"\0asm1.1.0");
    let (_, again) = plugin_call(&s, Method::POST, "/api/v1/plugins/reports/upgrade", &admin).await;
    assert_eq!(again["data"]["executed"], false, "{again}");
    let (_, menus) = s.get("/api/v1/menus/all", &admin).await;
    assert!(
        menu_names(&menus).contains(&"Reports".to_string()),
        "{menus}"
    );

    // A broken package is reported by sync without hiding the others.
    std::fs::create_dir_all(storage.path().join("broken")).unwrap();
    std::fs::write(storage.path().join("broken/plugin.json"), "{").unwrap();
    let (status, body) = plugin_call(&s, Method::POST, "/api/v1/plugins/sync", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["list"].to_string().contains("reports"));

    let (status, body) = plugin_call(&s, Method::DELETE, "/api/v1/plugins/reports", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get("/x/reports/wasm").await.0, StatusCode::NOT_FOUND);
    let (_, menus) = s.get("/api/v1/menus/all", &admin).await;
    assert!(!menu_names(&menus).contains(&"Reports".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plugin_changes_reach_every_node_and_upgrades_run_once() {
    let storage = tempfile::tempdir().unwrap();
    write_package(storage.path(), "reports", "1.0.0");
    let cluster = Cluster::start_with(&[(
        "LINA_PLUGIN__DYNAMIC__STORAGEPATH",
        storage.path().display().to_string(),
    )])
    .await;
    let [a, b, c] = &cluster.nodes;
    let (admin, _) = a.login("admin", "admin123").await;
    let (status, body) = plugin_call(a, Method::POST, "/api/v1/plugins/demo/install", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for node in [a, b, c] {
        within(
            Duration::from_millis(500),
            "install reaches every node",
            || async {
                node.call(Method::GET, "/x/demo/api/v1/greeting", Some(&admin), None)
                    .await
                    .0
                    == StatusCode::OK
            },
        )
        .await;
    }

    // A second plugin, installed and loaded on A: the disable below must
    // not reload it.
    let (status, body) =
        plugin_call(a, Method::POST, "/api/v1/plugins/reports/install", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    within(
        Duration::from_millis(500),
        "A sees reports installed",
        || async {
            let (_, dynamic) = a
                .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
                .await;
            dynamic_entry(&dynamic, "reports")["installed"] == 1
                && dynamic_entry(&dynamic, "demo")["enabled"] == 1
        },
    )
    .await;
    let loads_before = runtime_loads(a).await;

    // Disable on B: A's view, menus and the plugin's routes follow.
    let (status, body) = plugin_call(b, Method::PUT, "/api/v1/plugins/demo/disable", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let limit = Duration::from_millis(200);
    let took = within(limit, "A sees the disable", || async {
        let (_, dynamic) = a
            .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
            .await;
        let (_, menus) = a.get("/api/v1/menus/all", &admin).await;
        let (route, _) = a
            .call(Method::GET, "/x/demo/api/v1/greeting", Some(&admin), None)
            .await;
        dynamic_entry(&dynamic, "demo")["enabled"] == 0
            && !menu_names(&menus).contains(&"Demo".to_string())
            && route == StatusCode::NOT_FOUND
    })
    .await;
    eprintln!("disable on B reached A in {took:?}");
    // Only demo's entry was reloaded on A (reports' stayed in memory).
    assert_eq!(runtime_loads(a).await - loads_before, 1);
    let (status, _) = plugin_call(c, Method::PUT, "/api/v1/plugins/demo/enable", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let took = within(limit, "A sees the enable", || async {
        let (_, dynamic) = a
            .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
            .await;
        let (_, menus) = a.get("/api/v1/menus/all", &admin).await;
        let (route, _) = a
            .call(Method::GET, "/x/demo/api/v1/greeting", Some(&admin), None)
            .await;
        dynamic_entry(&dynamic, "demo")["enabled"] == 1
            && menu_names(&menus).contains(&"Demo".to_string())
            && route == StatusCode::OK
    })
    .await;
    eprintln!("enable on C reached A in {took:?}");

    // Ten concurrent upgrades over three nodes: one executes.
    write_package(storage.path(), "reports", "1.1.0");
    let (status, body) = plugin_call(b, Method::POST, "/api/v1/plugins/sync", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let node = &cluster.nodes[i % 3];
        let request = node
            .http
            .post(format!("{}/api/v1/plugins/reports/upgrade", node.base))
            .bearer_auth(&admin);
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let mut executed = 0;
    for (status, body) in &answers {
        match *status {
            StatusCode::OK if body["data"]["executed"] == true => executed += 1,
            StatusCode::OK => assert_eq!(body["data"]["plugin"]["effectiveVersion"], "1.1.0"),
            StatusCode::CONFLICT => {
                assert_eq!(body["errorCode"], "PLUGIN_OPERATION_IN_PROGRESS", "{body}");
            }
            other => panic!("upgrade answered {other}: {body}"),
        }
    }
    assert_eq!(executed, 1, "{answers:?}");
    let mut generations = Vec::new();
    for node in [a, b, c] {
        within(
            Duration::from_millis(200),
            "the upgrade is seen everywhere",
            || async {
                let (_, dynamic) = node
                    .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
                    .await;
                let entry = dynamic_entry(&dynamic, "reports");
                entry["version"] == "1.1.0" && entry["runtimeState"] == "normal"
            },
        )
        .await;
        let (_, dynamic) = node
            .call(Method::GET, "/api/v1/plugins/dynamic", None, None)
            .await;
        generations.push(dynamic_entry(&dynamic, "reports")["generation"].clone());
        let body = node
            .http
            .get(format!("{}/x/reports/assets/index.html", node.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "<h1>reports 1.1.0</h1>");
    }
    assert!(
        generations.windows(2).all(|w| w[0] == w[1]),
        "{generations:?}"
    );
}

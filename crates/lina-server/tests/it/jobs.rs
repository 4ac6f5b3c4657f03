//! Jobs, job groups, job logs and handlers (`/api/v1/job…`,
//! `/api/v1/job-group…`): on one node (SQLite) and across a three-node
//! cluster (PostgreSQL + Redis), where a master_only job runs once per fire
//! on the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Cluster, Server};

async fn post(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, path, Some(token), Some(body)).await
}

async fn put(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::PUT, path, Some(token), Some(body)).await
}

/// Creates through `POST path` and returns the new id.
async fn create(s: &Server, path: &str, token: &str, body: Value) -> i64 {
    let (status, created) = post(s, path, token, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["code"], 0, "{created}");
    created["data"]["id"].as_i64().expect("an id")
}

/// Asserts a 400 with the envelope whose message names `field`; returns
/// the body.
fn assert_400(status: StatusCode, body: &Value, field: &str, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert!(
        body["errorCode"] == "VALIDATION_FAILED" || body["errorCode"] == "INVALID_PARAMETER",
        "{what}: {body}"
    );
    assert!(
        [51, 53].contains(&body["code"].as_i64().unwrap_or_default()),
        "{what}: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "{what}: the message should name {field}: {body}"
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Ids of a `{list}` answer.
fn ids(body: &Value) -> Vec<i64> {
    body["data"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("no list in {body}"))
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// No ids.
const NONE: Vec<i64> = Vec::new();

/// A job that only runs when triggered.
fn manual_job(name: &str, params: Value) -> Value {
    json!({"name": name, "handlerRef": "host:wait", "params": params,
           "cronExpr": "0 0 1 1 *", "status": "disabled"})
}

#[tokio::test]
async fn jobs_and_groups_crud_with_validation_on_one_node() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;

    // Handlers: the built-ins, each with a params schema.
    let (status, handlers) = s.get("/api/v1/job/handler", &admin).await;
    assert_eq!(status, StatusCode::OK, "{handlers}");
    let list = handlers["data"]["list"].as_array().unwrap();
    for name in [
        "host:wait",
        "host:cleanup-job-logs",
        "host:session-cleanup",
        "host:cache-self-check",
    ] {
        let h = list
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {handlers}"));
        assert_eq!(h["paramsSchema"]["type"], "object", "{h}");
        assert!(h["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(h["source"], "host");
        assert!(h["pluginId"].is_null());
    }
    let wait = list.iter().find(|h| h["name"] == "host:wait").unwrap();
    assert_eq!(wait["paramsSchema"]["properties"]["ms"]["type"], "integer");

    // Groups: the protected default group, a new one.
    let (status, groups) = s.get("/api/v1/job-group", &admin).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let default = groups["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["isDefault"] == true)
        .unwrap_or_else(|| panic!("no default group in {groups}"))
        .clone();
    let default_id = default["id"].as_i64().unwrap();
    let reports = create(
        &s,
        "/api/v1/job-group",
        &admin,
        json!({"name": "Reports", "code": "reports", "sort": 3, "remark": "monthly"}),
    )
    .await;
    let (status, body) = post(&s, "/api/v1/job-group", &admin, json!({"name": "Reports"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "duplicate group name: {body}");
    let (status, body) = post(&s, "/api/v1/job-group", &admin, json!({"sort": 1})).await;
    assert_400(status, &body, "name", "group without a name");
    let (status, body) = post(&s, "/api/v1/job-group", &admin, json!({"name": 7})).await;
    assert_400(status, &body, "name", "group name of the wrong type");
    let (status, body) = post(
        &s,
        "/api/v1/job-group",
        &admin,
        json!({"name": "x".repeat(65)}),
    )
    .await;
    assert_400(status, &body, "name", "group name too long");
    let (status, body) = put(
        &s,
        &format!("/api/v1/job-group/{reports}"),
        &admin,
        json!({"sort": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, group) = s.get(&format!("/api/v1/job-group/{reports}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["data"]["sort"], 5);
    assert_eq!(group["data"]["name"], "Reports", "absent fields are kept");
    assert_eq!(group["data"]["remark"], "monthly");
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job-group?ids[]={default_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(status.is_client_error(), "default group deleted: {body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("default"),
        "{body}"
    );
    let (status, body) = put(
        &s,
        &format!("/api/v1/job-group/{default_id}"),
        &admin,
        json!({"code": "other"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "default code changed: {body}");

    // A job with every field.
    let full = json!({
        "groupId": reports, "name": "Monthly report", "description": "sums up",
        "handlerRef": "host:wait", "params": {"ms": 5}, "timeoutSeconds": 30,
        "cronExpr": "0 9 1 * *", "timezone": "Europe/Berlin", "scope": "all_node",
        "concurrency": "parallel", "maxConcurrency": 3, "misfirePolicy": "skip",
        "status": "disabled",
    });
    let job = create(&s, "/api/v1/job", &admin, full.clone()).await;
    let (status, got) = s.get(&format!("/api/v1/job/{job}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    for (key, value) in full.as_object().unwrap() {
        assert_eq!(&got["data"][key], value, "{key} in {got}");
    }
    assert_eq!(got["data"]["id"], job);
    assert_eq!(got["data"]["groupName"], "Reports");
    assert_eq!(got["data"]["isBuiltin"], false);
    assert!(got["data"]["createdAt"].as_i64().unwrap() > 1_600_000_000_000);

    // Defaults, params as JSON text, default group.
    let other = create(
        &s,
        "/api/v1/job",
        &admin,
        json!({"name": "monthly cleanup", "handlerRef": "host:cleanup-job-logs",
               "params": "{\"retentionDays\": 7}", "cronExpr": "@every 1h"}),
    )
    .await;
    let (_, got) = s.get(&format!("/api/v1/job/{other}"), &admin).await;
    let d = &got["data"];
    assert_eq!(d["groupId"], default_id, "{got}");
    assert_eq!(d["params"], json!({"retentionDays": 7}));
    assert_eq!(
        (&d["scope"], &d["concurrency"], &d["maxConcurrency"]),
        (&json!("master_only"), &json!("singleton"), &json!(1))
    );
    assert_eq!(
        (&d["misfirePolicy"], &d["status"], &d["timezone"]),
        (&json!("fire_once"), &json!("enabled"), &json!(""))
    );

    // Filters and paging.
    let list = |query: &str| {
        let path = format!("/api/v1/job?{query}");
        let s = &s;
        let admin = &admin;
        async move {
            let (status, body) = s.get(&path, admin).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    assert_eq!(ids(&list("name=MONTHLY").await), vec![job, other]);
    assert_eq!(ids(&list(&format!("groupId={reports}")).await), vec![job]);
    assert_eq!(ids(&list("name=monthly&status=disabled").await), vec![job]);
    assert_eq!(ids(&list("name=monthly&status=1").await), vec![other]);
    assert_eq!(
        ids(&list("handlerRef=host:cleanup-job-logs&name=monthly").await),
        vec![other]
    );
    let paged = list("name=monthly&pageNum=2&pageSize=1").await;
    assert_eq!(ids(&paged), vec![other]);
    assert_eq!(paged["data"]["total"], 2);
    let all = list("pageSize=100").await;
    assert!(
        all["data"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["isBuiltin"] == true),
        "the built-in jobs are listed: {all}"
    );
    for bad in [
        "status=maybe",
        "groupId=x",
        "pageSize=0",
        "pageSize=501",
        "pageNum=0",
    ] {
        let (status, body) = s.get(&format!("/api/v1/job?{bad}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["errorCode"].is_string(), "{bad}: {body}");
    }

    // Update: absent fields are kept.
    let (status, body) = put(
        &s,
        &format!("/api/v1/job/{job}"),
        &admin,
        json!({"description": "sums up more", "cronExpr": "0 */5 * * * *", "id": job, "createdAt": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = s.get(&format!("/api/v1/job/{job}"), &admin).await;
    assert_eq!(got["data"]["description"], "sums up more");
    assert_eq!(got["data"]["cronExpr"], "0 */5 * * * *");
    assert_eq!(got["data"]["params"], json!({"ms": 5}));
    assert_eq!(got["data"]["timezone"], "Europe/Berlin");
    assert_eq!(got["data"]["scope"], "all_node");
    assert_eq!(got["data"]["groupId"], reports);

    // Validation: 400 naming the field, nothing saved.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"handlerRef": "nope:missing"}), "handlerRef"),
        (json!({"cronExpr": "* * *"}), "cronExpr"),
        (json!({"cronExpr": "61 * * * *"}), "cronExpr"),
        (json!({"cronExpr": "@every 5"}), "cronExpr"),
        (json!({"timezone": "Mars/Base"}), "timezone"),
        (json!({"params": [1, 2]}), "params"),
        (json!({"params": "not json"}), "params"),
        (json!({"params": {"ms": "soon"}}), "params"),
        (json!({"params": {"unknown": 1}}), "params"),
        (json!({"timeoutSeconds": -1}), "timeoutSeconds"),
        (json!({"timeoutSeconds": 86_401}), "timeoutSeconds"),
        (json!({"timeoutSeconds": "x"}), "timeoutSeconds"),
        (json!({"maxConcurrency": 0}), "maxConcurrency"),
        (json!({"maxConcurrency": 101}), "maxConcurrency"),
        (json!({"scope": "everywhere"}), "scope"),
        (json!({"concurrency": 2}), "concurrency"),
        (json!({"misfirePolicy": "later"}), "misfirePolicy"),
        (json!({"status": "maybe"}), "status"),
        (json!({"status": 7}), "status"),
        (json!({"name": ""}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "x".repeat(129)}), "name"),
        (json!({"groupId": 999_999}), "groupId"),
        (json!({"groupId": -1}), "groupId"),
        (json!({"groupId": "abc"}), "groupId"),
    ];
    let base = json!({"name": "Validated", "handlerRef": "host:wait", "cronExpr": "@every 1h"});
    for (patch, field) in &cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = post(&s, "/api/v1/job", &admin, body.clone()).await;
        assert_400(status, &answer, field, &format!("create with {patch}"));
        let (status, answer) = put(&s, &format!("/api/v1/job/{job}"), &admin, patch.clone()).await;
        assert_400(status, &answer, field, &format!("update with {patch}"));
    }
    for missing in ["name", "handlerRef", "cronExpr"] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(missing);
        let (status, answer) = post(&s, "/api/v1/job", &admin, body).await;
        assert_400(
            status,
            &answer,
            missing,
            &format!("create without {missing}"),
        );
    }
    let (status, answer) = post(&s, "/api/v1/job", &admin, json!([1])).await;
    assert_400(status, &answer, "object", "an array body");
    let response = s
        .http
        .post(format!("{}/api/v1/job", s.base))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errorCode"], "INVALID_PARAMETER", "{answer}");
    let (_, after) = s.get(&format!("/api/v1/job/{job}"), &admin).await;
    assert_eq!(after["data"], got["data"], "failed updates changed nothing");
    assert_eq!(ids(&list("name=Validated").await), NONE);
    let (status, body) = post(
        &s,
        "/api/v1/job",
        &admin,
        json!({"name": "Monthly report", "handlerRef": "host:wait", "cronExpr": "@every 1h"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "duplicate job name: {body}");

    // Concurrent creates of one name: one wins, the others get 409, never
    // a 500 (the unique index catches what the store's check misses).
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, admin) = (s.http.clone(), format!("{}/api/v1/job", s.base), admin.clone());
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(admin)
                    .json(&json!({"name": "Raced", "handlerRef": "host:wait", "cronExpr": "@every 1h"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let raced = ids(&list("name=Raced").await);
    assert_eq!(raced.len(), 1);
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job?ids[]={}", raced[0]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Unknown ids and ids that are not numbers.
    for (method, path) in [
        (Method::GET, "/api/v1/job/999999"),
        (Method::PUT, "/api/v1/job/999999"),
        (Method::PUT, "/api/v1/job/999999/status"),
        (Method::POST, "/api/v1/job/999999/trigger"),
        (Method::GET, "/api/v1/job/log/999999"),
        (Method::GET, "/api/v1/job-group/999999"),
        (Method::PUT, "/api/v1/job-group/999999"),
    ] {
        let body = json!({"status": "enabled"});
        let (status, answer) = s.call(method.clone(), path, Some(&admin), Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["code"], 65);
    }
    for (method, path) in [
        (Method::GET, "/api/v1/job/abc"),
        (Method::PUT, "/api/v1/job/1x/status"),
        (Method::POST, "/api/v1/job/99999999999999999999/trigger"),
        (Method::GET, "/api/v1/job/log/x"),
        (Method::PUT, "/api/v1/job-group/x"),
    ] {
        let (status, answer) = s
            .call(method.clone(), path, Some(&admin), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["errorCode"], "INVALID_PARAMETER");
    }

    // Status.
    let status_path = format!("/api/v1/job/{other}/status");
    let (status, body) = put(&s, &status_path, &admin, json!({"status": "disabled"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = s.get(&format!("/api/v1/job/{other}"), &admin).await;
    assert_eq!(got["data"]["status"], "disabled");
    let (status, body) = put(&s, &status_path, &admin, json!({"status": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = s.get(&format!("/api/v1/job/{other}"), &admin).await;
    assert_eq!(got["data"]["status"], "enabled");
    let (status, body) = put(&s, &status_path, &admin, json!({})).await;
    assert_400(status, &body, "status", "status missing");
    let (status, body) = put(&s, &status_path, &admin, json!({"status": "paused"})).await;
    assert_400(status, &body, "status", "status unknown");

    // Deletes: groups holding jobs and built-in jobs are refused; ids in
    // the query (bracket form) or in the body.
    let (status, body) = s
        .call(
            Method::DELETE,
            "/api/v1/job-group",
            Some(&admin),
            Some(json!({"ids": [reports]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "group with jobs: {body}");
    let builtin = all["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["isBuiltin"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job?ids[]={builtin}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "built-in job: {body}");
    for (query, body) in [
        ("", None),
        ("", Some(json!({}))),
        ("", Some(json!({"ids": []}))),
        ("?ids[]=abc", None),
        ("", Some(json!({"ids": "1"}))),
        ("", Some(json!({"ids": ["x"]}))),
    ] {
        let path = format!("/api/v1/job{query}");
        let (status, answer) = s
            .call(Method::DELETE, &path, Some(&admin), body.clone())
            .await;
        assert_400(status, &answer, "ids", &format!("DELETE {path} {body:?}"));
    }
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job?ids%5B%5D={job}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["deleted"], 1);
    let (status, _) = s.get(&format!("/api/v1/job/{job}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .call(
            Method::DELETE,
            "/api/v1/job",
            Some(&admin),
            Some(json!({"ids": [other]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s.get(&format!("/api/v1/job/{other}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job-group?ids[]={reports}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "empty group: {body}");
    let (status, _) = s.get(&format!("/api/v1/job-group/{reports}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, groups) = s.get("/api/v1/job-group", &admin).await;
    assert_eq!(ids(&groups), vec![default_id]);
}

#[tokio::test]
async fn trigger_logs_and_cron_preview_on_one_node() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let quick = create(
        &s,
        "/api/v1/job",
        &admin,
        manual_job("Quick", json!({"ms": 50})),
    )
    .await;
    let slow = create(
        &s,
        "/api/v1/job",
        &admin,
        json!({"name": "Slow", "handlerRef": "host:wait", "params": {"ms": 30_000},
               "timeoutSeconds": 1, "cronExpr": "0 0 1 1 *", "status": "disabled"}),
    )
    .await;

    // Manual triggers return the log id at once; the row becomes final.
    let trigger = |id: i64| {
        let (s, admin) = (&s, &admin);
        async move {
            let (status, body) = s
                .call(
                    Method::POST,
                    &format!("/api/v1/job/{id}/trigger"),
                    Some(admin),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["data"]["logId"].as_i64().expect("a log id")
        }
    };
    let started = now_ms();
    let quick_log = trigger(quick).await;
    let slow_log = trigger(slow).await;
    let final_row = |log: i64| {
        let (s, admin) = (&s, &admin);
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (status, body) = s.get(&format!("/api/v1/job/log/{log}"), admin).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                if body["data"]["status"] != "running" {
                    return body["data"].clone();
                }
                assert!(Instant::now() < deadline, "log {log} still running: {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let row = final_row(quick_log).await;
    assert_eq!(row["status"], "success", "{row}");
    assert_eq!(row["id"], quick_log);
    assert_eq!(row["jobId"], quick);
    assert_eq!(row["trigger"], "manual");
    assert_eq!(row["resultJson"], json!({"sleptMs": 50}));
    assert_eq!(row["errMsg"], "");
    assert_eq!(row["term"], 1, "a single node leads under term 1");
    let node_id = row["nodeId"].as_str().expect("a node id").to_string();
    assert!(!node_id.is_empty());
    let (scheduled, start, end) = (
        row["scheduledAt"].as_i64().unwrap(),
        row["startAt"].as_i64().unwrap(),
        row["endAt"].as_i64().unwrap(),
    );
    assert!(
        scheduled >= started - 1000 && start >= scheduled && end >= start + 50,
        "{row}"
    );
    assert!(row["durationMs"].as_i64().unwrap() >= 50, "{row}");
    let row = final_row(slow_log).await;
    assert_eq!(row["status"], "timeout", "{row}");
    assert!(row["errMsg"].as_str().unwrap().contains("timeout"), "{row}");

    // Filters; /job/log is not read as a job id.
    let logs = |query: String| {
        let (s, admin) = (&s, &admin);
        async move {
            let (status, body) = s.get(&format!("/api/v1/job/log?{query}"), admin).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    assert_eq!(ids(&logs(format!("jobId={quick}")).await), vec![quick_log]);
    let success = logs("status=success&pageSize=500".into()).await;
    assert!(ids(&success).contains(&quick_log) && !ids(&success).contains(&slow_log));
    assert_eq!(
        ids(&logs(format!("jobId={slow}&status=timeout")).await),
        vec![slow_log]
    );
    assert_eq!(
        ids(&logs(format!("jobId={slow}&status=success")).await),
        NONE
    );
    let both = logs(format!(
        "trigger=manual&nodeId={node_id}&beginTime={}&endTime={}",
        started - 1000,
        now_ms()
    ))
    .await;
    assert_eq!(ids(&both), vec![slow_log, quick_log], "newest first");
    assert_eq!(both["data"]["total"], 2);
    assert_eq!(
        ids(&logs(format!("jobId={quick}&trigger=cron")).await),
        NONE
    );
    assert_eq!(
        ids(&logs(format!("jobId={quick}&nodeId=elsewhere")).await),
        NONE
    );
    assert_eq!(
        ids(&logs(format!("jobId={quick}&beginTime={}", now_ms() + 60_000)).await),
        NONE
    );
    let paged = logs("trigger=manual&pageNum=2&pageSize=1".into()).await;
    assert_eq!(ids(&paged), vec![quick_log]);
    for bad in [
        "status=done",
        "trigger=cronjob",
        "jobId=x",
        "beginTime=yesterday",
    ] {
        let (status, body) = s.get(&format!("/api/v1/job/log?{bad}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["errorCode"].is_string());
    }

    // Delete log rows (bracket form, and a body).
    let (status, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/job/log?ids[]={quick_log}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["deleted"], 1);
    let (status, _) = s.get(&format!("/api/v1/job/log/{quick_log}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s
        .call(
            Method::DELETE,
            "/api/v1/job/log",
            Some(&admin),
            Some(json!({"ids": [slow_log]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&logs(format!("jobId={slow}")).await), NONE);
    let (status, body) = s
        .call(Method::DELETE, "/api/v1/job/log", Some(&admin), None)
        .await;
    assert_400(status, &body, "ids", "delete logs without ids");

    // Cron preview: Mondays 09:00 in Berlin, whatever the offset.
    let (status, body) = s
        .get(
            "/api/v1/job/cron-preview?expr=0%209%20*%20*%201&timezone=Europe/Berlin&count=8",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["timezone"], "Europe/Berlin");
    let fires = body["data"]["list"].as_array().unwrap();
    assert_eq!(fires.len(), 8, "{body}");
    let now = now_ms();
    let mut previous = now;
    for fire in fires {
        let ms = fire["time"].as_i64().unwrap();
        assert!(ms > previous, "{body}");
        let iso = fire["iso"].as_str().unwrap();
        // 2026-03-23T09:00:00+01:00
        assert_eq!(&iso[10..19], "T09:00:00", "{iso}");
        let offset_hours: i64 = match &iso[19..] {
            "+01:00" => 1,
            "+02:00" => 2,
            other => panic!("Berlin offset {other} in {iso}"),
        };
        // The wall clock in Berlin, counted like Unix ms.
        let local_ms = ms + offset_hours * 3_600_000;
        assert_eq!(local_ms % 86_400_000, 9 * 3_600_000, "{iso} is {ms}");
        // 1970-01-01 was a Thursday (day 4 with Sunday = 0).
        assert_eq!((local_ms / 86_400_000 + 4) % 7, 1, "{iso} is not a Monday");
        previous = ms;
    }
    assert!(previous - now <= 8 * 7 * 86_400_000 + 3_600_000, "{body}");
    let (status, body) = s
        .get("/api/v1/job/cron-preview?expr=%40every%201s", &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let times: Vec<i64> = body["data"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["time"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 5, "five by default: {body}");
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "{times:?}");
    assert_eq!(body["data"]["timezone"], "UTC", "the default zone");
    for (query, field) in [
        ("expr=*%20*%20*", "expr"),
        ("expr=61%20*%20*%20*%20*", "expr"),
        ("expr=%40every%20soon", "expr"),
        ("", "expr"),
        ("expr=0%209%20*%20*%201&timezone=Mars/Base", "timezone"),
        ("expr=0%209%20*%20*%201&count=0", "count"),
        ("expr=0%209%20*%20*%201&count=51", "count"),
        ("expr=0%209%20*%20*%201&count=many", "count"),
    ] {
        let (status, body) = s
            .get(&format!("/api/v1/job/cron-preview?{query}"), &admin)
            .await;
        assert_400(status, &body, field, &format!("cron preview {query}"));
    }
}

/// The menu id of the first menu carrying `code` (from the full tree).
async fn menu_with_code(s: &Server, admin: &str, code: &str) -> i64 {
    fn find(list: &Value, code: &str) -> Option<i64> {
        list.as_array()?.iter().find_map(|m| {
            if m["perms"] == code {
                m["id"].as_i64()
            } else {
                find(&m["children"], code)
            }
        })
    }
    let (status, menus) = s.get("/api/v1/menu", admin).await;
    assert_eq!(status, StatusCode::OK, "{menus}");
    find(&menus["data"]["list"], code).unwrap_or_else(|| panic!("no menu carries {code}"))
}

#[tokio::test]
async fn job_routes_check_the_token_then_the_permission() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    let list_menu = menu_with_code(&s, &admin, "system:job:list").await;
    let role = create(
        &s,
        "/api/v1/role",
        &admin,
        json!({"name": "Job viewer", "key": "job-viewer", "menuIds": [list_menu]}),
    )
    .await;
    create(
        &s,
        "/api/v1/user",
        &admin,
        json!({"username": "viewer", "password": "viewer-123", "roleIds": [role]}),
    )
    .await;
    let (viewer, _) = s.login("viewer", "viewer-123").await;
    let job = create(&s, "/api/v1/job", &admin, manual_job("Viewed", json!({}))).await;

    // The viewer may read jobs, logs, handlers and previews …
    for path in [
        "/api/v1/job".to_string(),
        format!("/api/v1/job/{job}"),
        "/api/v1/job/log".to_string(),
        "/api/v1/job/handler".to_string(),
        "/api/v1/job/cron-preview?expr=%40every%201m".to_string(),
    ] {
        let (status, body) = s.get(&path, &viewer).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // … but not change them or see groups; a bad id or body never hides a
    // 401 or a 403.
    let forbidden = [
        (Method::POST, "/api/v1/job".to_string(), "system:job:add"),
        (Method::PUT, format!("/api/v1/job/{job}"), "system:job:edit"),
        (
            Method::PUT,
            "/api/v1/job/abc".to_string(),
            "system:job:edit",
        ),
        (
            Method::DELETE,
            format!("/api/v1/job?ids[]={job}"),
            "system:job:remove",
        ),
        (
            Method::DELETE,
            "/api/v1/job?ids[]=x".to_string(),
            "system:job:remove",
        ),
        (
            Method::PUT,
            format!("/api/v1/job/{job}/status"),
            "system:job:status",
        ),
        (
            Method::POST,
            format!("/api/v1/job/{job}/trigger"),
            "system:job:trigger",
        ),
        (
            Method::POST,
            "/api/v1/job/x/trigger".to_string(),
            "system:job:trigger",
        ),
        (
            Method::DELETE,
            "/api/v1/job/log?ids[]=1".to_string(),
            "system:job:remove",
        ),
        (
            Method::GET,
            "/api/v1/job-group".to_string(),
            "system:jobgroup:list",
        ),
        (
            Method::GET,
            "/api/v1/job-group/x".to_string(),
            "system:jobgroup:list",
        ),
        (
            Method::POST,
            "/api/v1/job-group".to_string(),
            "system:jobgroup:add",
        ),
        (
            Method::PUT,
            "/api/v1/job-group/1".to_string(),
            "system:jobgroup:edit",
        ),
        (
            Method::DELETE,
            "/api/v1/job-group?ids[]=1".to_string(),
            "system:jobgroup:remove",
        ),
    ];
    for (method, path, code) in &forbidden {
        let response = s
            .http
            .request(method.clone(), format!("{}{path}", s.base))
            .bearer_auth(&viewer)
            .header("Content-Type", "application/json")
            .body("{\"broken\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errorCode"], "PERMISSION_DENIED", "{method} {path}");
        assert!(
            body["message"].as_str().unwrap().contains(code),
            "{method} {path}: {body}"
        );
        let (status, body) = s.call(method.clone(), path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(body["errorCode"], "AUTH_TOKEN_MISSING");
    }
    // Every route is in /api.json with its code, so the table-driven checks
    // of api.rs cover it too.
    let (_, doc) = s.call(Method::GET, "/api.json", None, None).await;
    for (method, path, code) in [
        ("get", "/api/v1/job", "system:job:list"),
        ("post", "/api/v1/job", "system:job:add"),
        ("delete", "/api/v1/job", "system:job:remove"),
        ("get", "/api/v1/job/{id}", "system:job:list"),
        ("put", "/api/v1/job/{id}", "system:job:edit"),
        ("put", "/api/v1/job/{id}/status", "system:job:status"),
        ("post", "/api/v1/job/{id}/trigger", "system:job:trigger"),
        ("get", "/api/v1/job/cron-preview", "system:job:list"),
        ("get", "/api/v1/job/handler", "system:job:list"),
        ("get", "/api/v1/job/log", "system:job:list"),
        ("get", "/api/v1/job/log/{id}", "system:job:list"),
        ("delete", "/api/v1/job/log", "system:job:remove"),
        ("get", "/api/v1/job-group", "system:jobgroup:list"),
        ("post", "/api/v1/job-group", "system:jobgroup:add"),
        ("put", "/api/v1/job-group/{id}", "system:jobgroup:edit"),
        ("delete", "/api/v1/job-group", "system:jobgroup:remove"),
    ] {
        assert_eq!(
            doc["paths"][path][method]["x-permission"], code,
            "{method} {path} in /api.json"
        );
    }

    let (status, body) = s.call(Method::GET, "/api/v1/job/abc", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = s
        .call(Method::GET, "/api/v1/job/log", Some("garbage"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nothing changed.
    let (_, got) = s.get(&format!("/api/v1/job/{job}"), &admin).await;
    assert_eq!(got["data"]["status"], "disabled");
    let (_, logs) = s.get(&format!("/api/v1/job/log?jobId={job}"), &admin).await;
    assert_eq!(logs["data"]["total"], 0, "{logs}");
}

/// The cluster's leader as every node reports it (polled until they agree).
async fn agreed_leader(cluster: &Cluster, token: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut leaders = Vec::new();
        for node in &cluster.nodes {
            let (_, sys) = node.get("/api/v1/system/info", token).await;
            leaders.push(sys["data"]["cluster"]["leader"].clone());
        }
        if leaders.iter().all(|l| l.is_string() && *l == leaders[0]) {
            return leaders[0].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "nodes disagree on the leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every log row of `job`, as seen from `node`.
async fn job_logs(node: &Server, token: &str, job: i64) -> Vec<Value> {
    let (status, body) = node
        .get(&format!("/api/v1/job/log?jobId={job}&pageSize=500"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["list"].as_array().unwrap().clone()
}

/// Rows by fire instant.
fn by_fire(rows: &[Value]) -> BTreeMap<i64, Vec<&Value>> {
    let mut map: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for row in rows {
        map.entry(row["scheduledAt"].as_i64().unwrap())
            .or_default()
            .push(row);
    }
    map
}

/// The acceptance test: a master_only job created on node C, firing
/// every second, runs once per fire, on the leader; the two other nodes
/// record `skipped_not_primary`; every node lists the same rows; disabling
/// it stops the firing everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_master_only_job_runs_once_per_fire_on_the_leader() {
    let cluster = Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (token, _) = c.login("admin", "admin123").await;
    let leader = agreed_leader(&cluster, &token).await;
    let job = create(
        c,
        "/api/v1/job",
        &token,
        json!({"name": "Every second", "handlerRef": "host:wait", "params": {"ms": 20},
               "cronExpr": "@every 1s", "scope": "master_only", "misfirePolicy": "skip"}),
    )
    .await;
    let created = now_ms();

    // Wait for three fires, each with its run on the leader and a skip
    // recorded by each of the two other nodes.
    let complete = |rows: &[&Value]| {
        let success: Vec<_> = rows.iter().filter(|r| r["status"] == "success").collect();
        let skipped: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r["status"] == "skipped_not_primary")
            .filter_map(|r| r["nodeId"].as_str())
            .collect();
        success.len() == 1 && skipped.len() == 2
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = job_logs(a, &token, job).await;
        let complete_fires = by_fire(&rows).values().filter(|r| complete(r)).count();
        if complete_fires >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than three complete fires within 15s: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same rows from A and from B (B may already see later ones).
    let from_a = job_logs(a, &token, job).await;
    let from_b = job_logs(b, &token, job).await;
    let ids_b: BTreeSet<i64> = from_b.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    for row in &from_a {
        assert!(
            ids_b.contains(&row["id"].as_i64().unwrap()),
            "node B does not list {row}"
        );
    }
    for (at, rows) in by_fire(&from_b) {
        assert!(
            at >= created - 1000,
            "a fire before the job existed: {rows:?}"
        );
        let runs: Vec<_> = rows
            .iter()
            .filter(|r| r["status"] != "skipped_not_primary")
            .collect();
        assert!(
            runs.len() <= 1,
            "more than one run for the fire at {at}: {rows:#?}"
        );
        for run in runs {
            assert!(
                run["status"] == "success" || run["status"] == "running",
                "{run}"
            );
            assert_eq!(
                run["nodeId"],
                leader.as_str(),
                "a run off the leader: {run}"
            );
            assert!(run["term"].as_i64().is_some_and(|t| t > 0), "{run}");
            assert_eq!(run["trigger"], "cron");
        }
        let mut nodes = BTreeSet::new();
        for row in &rows {
            let node = row["nodeId"].as_str().unwrap();
            assert!(
                nodes.insert(node),
                "two rows of {node} for the fire at {at}"
            );
            if row["status"] == "skipped_not_primary" {
                assert_ne!(node, leader, "the leader skipped: {row}");
                assert!(["node-a", "node-b", "node-c"].contains(&node), "{row}");
            }
        }
    }
    assert_eq!(
        agreed_leader(&cluster, &token).await,
        leader,
        "the leader changed during the test"
    );

    // Disabled on A: no fire past the change (plus the convergence bound
    // and a fire that was already due) on any node.
    let (status, body) = put(
        a,
        &format!("/api/v1/job/{job}/status"),
        &token,
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cutoff = now_ms() + 1000;
    let watch_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < watch_until {
        let rows = job_logs(b, &token, job).await;
        let late: Vec<_> = rows
            .iter()
            .filter(|r| r["scheduledAt"].as_i64().unwrap() > cutoff)
            .collect();
        assert!(
            late.is_empty(),
            "fires after the job was disabled: {late:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, got) = c.get(&format!("/api/v1/job/{job}"), &token).await;
    assert_eq!(got["data"]["status"], "disabled");
}

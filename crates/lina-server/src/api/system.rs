//! `/health`, `/ready` and `GET /api/v1/system/info`.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use lina_coord_api::{BackendKind, Leadership};
use serde_json::json;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiError, ok};

/// `GET /health`: liveness; touches nothing.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "nodeId": state.node.node_id}))
}

/// `GET /ready`: 200 when the database (and Redis in cluster mode) answer,
/// else 503 naming what failed.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let limit = state
        .node
        .config
        .health
        .timeout
        .max(Duration::from_millis(100));
    let database = matches!(
        tokio::time::timeout(limit, state.node.db.ping()).await,
        Ok(Ok(()))
    );
    let coordinator = state.node.coordinator.as_ref();
    let redis = match coordinator.backend() {
        BackendKind::Local => None,
        BackendKind::Redis => Some(matches!(
            tokio::time::timeout(limit, coordinator.revisions().epoch()).await,
            Ok(Ok(_))
        )),
    };
    let healthy = database && redis.unwrap_or(true);
    let body = json!({
        "status": if healthy { "ready" } else { "unavailable" },
        "nodeId": state.node.node_id,
        "checks": {
            "database": if database { "ok" } else { "failed" },
            "redis": match redis { None => "not used", Some(true) => "ok", Some(false) => "failed" },
        },
    });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /api/v1/system/info` (`about:system:list`).
pub async fn info(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "about:system:list")
        .await?;
    let node = &state.node;
    let coordinator = node.coordinator.as_ref();
    let election = coordinator.election();
    // This node's own term when it leads right now; a follower reports the
    // leader's term as it last saw it.
    let own_term = election.leader_term();
    let (leader, term) = match &*election.leadership().borrow() {
        Leadership::Leader { .. } if own_term.is_some() => {
            (Some(node.node_id.to_string()), own_term)
        }
        Leadership::Follower { leader, term } => (
            leader.as_ref().map(|l| l.to_string()),
            leader.as_ref().and(*term),
        ),
        Leadership::Leader { .. } => (None, None),
    };
    let members: Vec<_> = coordinator
        .membership()
        .members()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            json!({
                "nodeId": m.node_id,
                "address": m.address,
                "role": m.role.as_str(),
                "lastSeen": m.last_seen_ms,
            })
        })
        .collect();
    let health = coordinator.health();
    let mut domains = Vec::new();
    for stats in node.caches.stats() {
        for scope in stats.scopes {
            domains.push(json!({
                "domain": stats.domain,
                "scope": scope.scope,
                "revision": scope.revision,
                "fresh": scope.fresh,
                "freshAt": stats.last_confirmed_ms,
            }));
        }
    }
    ok(json!({
        "nodeId": node.node_id,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": node.started.elapsed().as_secs(),
        "cluster": {
            "enabled": node.config.cluster.enabled,
            "backend": coordinator.backend().as_str(),
            "healthy": health.healthy,
            "leader": leader,
            "term": term,
            "role": if own_term.is_some() { "leader" } else { "follower" },
            "members": members,
        },
        "cacheDomains": domains,
    }))
}

//! Comparisons of what the nodes answer: leader and term agreement from
//! `GET /api/v1/system/info`, identical bodies, the plugin list, the page
//! used for the permission check. Pure, unit tested.

use serde_json::Value;

/// Every node's `system/info` data must name the same leader, exactly one
/// node must say it leads, every term reported must be that leader's, and
/// every node must list every node id in `expected` among its members.
/// Returns the detail line, or what is wrong.
pub fn leader_agreement(infos: &[(String, Value)], expected: &[String]) -> Result<String, String> {
    if infos.is_empty() {
        return Err("no node answered /api/v1/system/info".into());
    }
    let mut problems = Vec::new();
    for (node, info) in infos {
        if info["cluster"]["enabled"] != Value::Bool(true) {
            problems.push(format!(
                "{node} is not in cluster mode (cluster.enabled is not true)"
            ));
        }
    }
    let leaders: Vec<&str> = infos
        .iter()
        .filter(|(_, i)| i["cluster"]["role"] == "leader")
        .map(|(n, _)| n.as_str())
        .collect();
    let leader = match leaders.as_slice() {
        [one] => Some(*one),
        [] => {
            problems.push("no node says it leads (cluster.role = leader)".into());
            None
        }
        many => {
            problems.push(format!(
                "{} nodes say they lead: {}",
                many.len(),
                many.join(", ")
            ));
            None
        }
    };
    let named: Vec<(&str, Option<&str>)> = infos
        .iter()
        .map(|(n, i)| (n.as_str(), i["cluster"]["leader"].as_str()))
        .collect();
    if let Some(leader) = leader {
        let disagree: Vec<String> = named
            .iter()
            .filter(|(_, l)| *l != Some(leader))
            .map(|(n, l)| format!("{n} says {}", l.unwrap_or("none")))
            .collect();
        if !disagree.is_empty() {
            problems.push(format!(
                "{leader} leads but not every node names it: {}",
                disagree.join(", ")
            ));
        }
    }
    let leader_term = leader.and_then(|l| {
        infos
            .iter()
            .find(|(n, _)| n == l)
            .and_then(|(_, i)| i["cluster"]["term"].as_u64())
    });
    if let (Some(leader), None) = (leader, leader_term) {
        problems.push(format!("{leader} leads but reports no term"));
    }
    let mut silent = Vec::new();
    for (node, info) in infos {
        match info["cluster"]["term"].as_u64() {
            Some(term) if Some(term) != leader_term => problems.push(format!(
                "{node} reports term {term}, the leader {}",
                leader_term.map_or("none".into(), |t| t.to_string())
            )),
            Some(_) => {}
            None => silent.push(node.as_str()),
        }
    }
    for (node, info) in infos {
        let members: Vec<&str> = info["cluster"]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["nodeId"].as_str())
            .collect();
        let missing: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|e| !members.contains(e))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{node} does not list {} among cluster.members",
                missing.join(", ")
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let leader = leader.expect("checked");
    let term = leader_term.expect("checked");
    let followers: Vec<&str> = infos
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != leader)
        .collect();
    let mut detail = format!("{leader} leads under term {term}");
    if !followers.is_empty() {
        detail.push_str(&format!("; {} name it as leader", followers.join(", ")));
    }
    if !silent.is_empty() {
        detail.push_str(&format!(
            " (no term from {}: it has not seen the leader's term yet)",
            silent.join(", ")
        ));
    }
    detail.push_str(&format!("; all list {} member(s)", expected.len()));
    Ok(detail)
}

/// Whether every value equals the first; else the labels that differ from it.
pub fn differing(values: &[(String, Value)]) -> Vec<&str> {
    let Some((_, first)) = values.first() else {
        return Vec::new();
    };
    values
        .iter()
        .filter(|(_, v)| v != first)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The plugin list of `GET /api/v1/plugins/dynamic` data, sorted by id.
pub fn plugin_list(data: &Value) -> Result<Vec<Value>, String> {
    let list = data["list"]
        .as_array()
        .ok_or_else(|| format!("no data.list in {data}"))?;
    let mut list = list.clone();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(list)
}

/// A page of the route tree (`/api/v1/menus/all` data.list) and its
/// permission code: the one at `preferred` path, else the first page with
/// one.
pub fn page_with_permission(list: &Value, preferred: &str) -> Option<(i64, String)> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for item in list.as_array().into_iter().flatten() {
            out.push(item);
            walk(&item["children"], out);
        }
    }
    let mut all = Vec::new();
    walk(list, &mut all);
    let with_code = |m: &Value| {
        m["meta"]["authority"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
    };
    let pick = all
        .iter()
        .copied()
        .filter(|m| with_code(m))
        .find(|m| m["path"] == preferred)
        .or_else(|| all.iter().copied().find(|m| with_code(m)))?;
    Some((
        pick["id"].as_i64()?,
        pick["meta"]["authority"][0].as_str()?.to_string(),
    ))
}

/// The permission codes of `/api/v1/user/info` data.
pub fn permission_codes(data: &Value) -> Vec<String> {
    let mut codes: Vec<String> = data["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    codes.sort();
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(node: &str, role: &str, leader: Option<&str>, term: Option<u64>) -> (String, Value) {
        (
            node.to_string(),
            json!({"nodeId": node, "cluster": {
                "enabled": true, "role": role, "leader": leader, "term": term,
                "members": [{"nodeId": "node-1"}, {"nodeId": "node-2"}, {"nodeId": "node-3"}],
            }}),
        )
    }

    fn ids() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    #[test]
    fn one_leader_named_by_all_with_one_term_agrees() {
        let infos = [
            info("node-1", "follower", Some("node-2"), None),
            info("node-2", "leader", Some("node-2"), Some(7)),
            info("node-3", "follower", Some("node-2"), None),
        ];
        let detail = leader_agreement(&infos, &ids()).unwrap();
        assert_eq!(
            detail,
            "node-2 leads under term 7; node-1, node-3 name it as leader (no term from node-1, \
             node-3: it has not seen the leader's term yet); all list 3 member(s)"
        );
    }

    #[test]
    fn two_leaders_a_dissenting_follower_or_another_term_disagree() {
        let two = [
            info("node-1", "leader", Some("node-1"), Some(7)),
            info("node-2", "leader", Some("node-2"), Some(8)),
        ];
        let err = leader_agreement(&two, &ids()[..2]).unwrap_err();
        assert!(
            err.contains("2 nodes say they lead: node-1, node-2"),
            "{err}"
        );

        let dissent = [
            info("node-1", "follower", Some("node-3"), None),
            info("node-2", "leader", Some("node-2"), Some(7)),
        ];
        let err = leader_agreement(&dissent, &ids()[..2]).unwrap_err();
        assert!(err.contains("node-1 says node-3"), "{err}");

        let term = [
            info("node-1", "follower", Some("node-2"), Some(6)),
            info("node-2", "leader", Some("node-2"), Some(7)),
        ];
        let err = leader_agreement(&term, &ids()[..2]).unwrap_err();
        assert_eq!(err, "node-1 reports term 6, the leader 7");
    }

    #[test]
    fn no_leader_or_a_missing_member_disagree() {
        let none = [info("node-1", "follower", None, None)];
        let err = leader_agreement(&none, &ids()[..1]).unwrap_err();
        assert!(err.contains("no node says it leads"), "{err}");

        let mut lonely = info("node-1", "leader", Some("node-1"), Some(3));
        lonely.1["cluster"]["members"] = json!([{"nodeId": "node-1"}]);
        let err = leader_agreement(&[lonely], &ids()[..2]).unwrap_err();
        assert_eq!(err, "node-1 does not list node-2 among cluster.members");
    }

    #[test]
    fn differing_names_who_answered_otherwise() {
        let values = [
            ("node-1".to_string(), json!({"a": 1})),
            ("node-2".to_string(), json!({"a": 1})),
            ("node-3".to_string(), json!({"a": 2})),
        ];
        assert_eq!(differing(&values), ["node-3"]);
        assert!(differing(&values[..2]).is_empty());
    }

    #[test]
    fn plugin_lists_compare_in_id_order() {
        let a = json!({"list": [{"id": "b", "enabled": 1}, {"id": "a", "enabled": 0}]});
        let b = json!({"list": [{"id": "a", "enabled": 0}, {"id": "b", "enabled": 1}]});
        assert_eq!(plugin_list(&a).unwrap(), plugin_list(&b).unwrap());
        assert!(plugin_list(&json!({})).is_err());
    }

    #[test]
    fn the_permission_page_is_found_in_the_route_tree() {
        let tree = json!([
            {"id": 1, "path": "/dashboard", "meta": {"authority": []}},
            {"id": 2, "path": "/system", "meta": {"authority": []}, "children": [
                {"id": 3, "path": "/system/user", "meta": {"authority": ["system:user:query"]}},
                {"id": 4, "path": "/system/role", "meta": {"authority": ["system:role:query"]}},
            ]},
        ]);
        assert_eq!(
            page_with_permission(&tree, "/system/role"),
            Some((4, "system:role:query".into()))
        );
        assert_eq!(
            page_with_permission(&tree, "/nowhere"),
            Some((3, "system:user:query".into()))
        );
        assert_eq!(page_with_permission(&json!([]), "/system/role"), None);
        assert_eq!(
            permission_codes(&json!({"permissions": ["b", "a"]})),
            ["a", "b"]
        );
    }
}

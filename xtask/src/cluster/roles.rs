//! What a node says about its role (`GET /api/v1/system/info`) and the line
//! printed when that changes. Pure, unit tested.

use std::fmt;

use serde_json::Value;

/// One node's view of the cluster, as last polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// It leads (under this term, when it reports one).
    Leader {
        /// `cluster.term`.
        term: Option<u64>,
    },
    /// It follows (this leader, when it knows one).
    Follower {
        /// `cluster.leader`.
        leader: Option<String>,
    },
    /// It did not answer (why).
    Silent(String),
}

impl Seen {
    /// Reads `data` of `GET /api/v1/system/info`.
    pub fn from_info(data: &Value) -> Seen {
        let cluster = &data["cluster"];
        match cluster["role"].as_str() {
            Some("leader") => Seen::Leader {
                term: cluster["term"].as_u64(),
            },
            _ => Seen::Follower {
                leader: cluster["leader"].as_str().map(str::to_string),
            },
        }
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Leader { term: Some(term) } => write!(f, "leader (term {term})"),
            Seen::Leader { term: None } => write!(f, "leader"),
            Seen::Follower {
                leader: Some(leader),
            } => write!(f, "follower (leader {leader})"),
            Seen::Follower { leader: None } => write!(f, "follower (no leader known)"),
            Seen::Silent(why) => write!(f, "not answering ({why})"),
        }
    }
}

/// The line to print when `node`'s view goes from `before` to `now`, if
/// it is news.
pub fn change_message(node: &str, before: Option<&Seen>, now: &Seen) -> Option<String> {
    match (before, now) {
        (Some(a), b) if a == b => None,
        (None | Some(Seen::Silent(_)), Seen::Silent(_)) => None,
        (Some(Seen::Leader { .. }), Seen::Leader { term }) => Some(match term {
            Some(term) => format!("{node} leads again, now under term {term}"),
            None => format!("{node} leads again"),
        }),
        (_, Seen::Leader { term: Some(term) }) => {
            Some(format!("{node} is now leader (term {term})"))
        }
        (_, Seen::Leader { term: None }) => Some(format!("{node} is now leader")),
        (Some(Seen::Leader { .. }), Seen::Follower { leader }) => Some(match leader {
            Some(leader) => format!("{node} is now follower (leader {leader})"),
            None => format!("{node} is now follower (no leader known yet)"),
        }),
        (Some(Seen::Follower { .. }), Seen::Follower { leader }) => Some(match leader {
            Some(leader) => format!("{node} now follows {leader}"),
            None => format!("{node} sees no leader"),
        }),
        (None | Some(Seen::Silent(_)), Seen::Follower { leader }) => Some(match leader {
            Some(leader) => format!("{node} is follower (leader {leader})"),
            None => format!("{node} is follower (no leader known yet)"),
        }),
        (Some(_), Seen::Silent(why)) => Some(format!("{node} does not answer: {why}")),
    }
}

/// A warning when more than one node says it leads at the same poll
/// (e.g. an old leader that has not noticed yet that its lease is gone).
pub fn several_leaders(seen: &[(&str, &Seen)]) -> Option<String> {
    let leaders: Vec<String> = seen
        .iter()
        .filter_map(|(node, s)| match s {
            Seen::Leader { term: Some(term) } => Some(format!("{node} (term {term})")),
            Seen::Leader { term: None } => Some(node.to_string()),
            _ => None,
        })
        .collect();
    (leaders.len() > 1).then(|| {
        format!(
            "{} nodes say they lead at once: {}",
            leaders.len(),
            leaders.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leader(term: u64) -> Seen {
        Seen::Leader { term: Some(term) }
    }

    fn follower(of: &str) -> Seen {
        Seen::Follower {
            leader: Some(of.into()),
        }
    }

    #[test]
    fn system_info_is_read_for_the_role() {
        let data = json!({"nodeId": "node-2", "cluster": {"role": "leader", "leader": "node-2", "term": 7}});
        assert_eq!(Seen::from_info(&data), leader(7));
        let data = json!({"cluster": {"role": "follower", "leader": "node-2", "term": null}});
        assert_eq!(Seen::from_info(&data), follower("node-2"));
        let data = json!({"cluster": {"role": "follower", "leader": null, "term": null}});
        assert_eq!(Seen::from_info(&data), Seen::Follower { leader: None });
    }

    #[test]
    fn role_changes_are_announced_once() {
        let m = |b: Option<&Seen>, n: &Seen| change_message("node-2", b, n);
        assert_eq!(
            m(None, &leader(7)).unwrap(),
            "node-2 is now leader (term 7)"
        );
        assert_eq!(
            m(Some(&follower("node-1")), &leader(8)).unwrap(),
            "node-2 is now leader (term 8)"
        );
        assert_eq!(m(Some(&leader(7)), &leader(7)), None);
        assert_eq!(
            m(Some(&leader(7)), &leader(9)).unwrap(),
            "node-2 leads again, now under term 9"
        );
        assert_eq!(
            m(Some(&leader(7)), &follower("node-3")).unwrap(),
            "node-2 is now follower (leader node-3)"
        );
        assert_eq!(
            m(None, &follower("node-1")).unwrap(),
            "node-2 is follower (leader node-1)"
        );
        assert_eq!(
            m(Some(&follower("node-1")), &follower("node-3")).unwrap(),
            "node-2 now follows node-3"
        );
        assert_eq!(m(Some(&follower("node-1")), &follower("node-1")), None);
    }

    #[test]
    fn two_leaders_at_once_are_pointed_out() {
        let (a, b, c) = (leader(7), leader(8), follower("node-2"));
        assert_eq!(
            several_leaders(&[("node-1", &a), ("node-2", &b), ("node-3", &c)]).unwrap(),
            "2 nodes say they lead at once: node-1 (term 7), node-2 (term 8)"
        );
        assert_eq!(several_leaders(&[("node-1", &a), ("node-3", &c)]), None);
    }

    #[test]
    fn silence_is_announced_when_it_starts() {
        let m = |b: Option<&Seen>, n: &Seen| change_message("node-1", b, n);
        let silent = Seen::Silent("timed out".into());
        assert_eq!(
            m(Some(&leader(3)), &silent).unwrap(),
            "node-1 does not answer: timed out"
        );
        assert_eq!(m(Some(&silent), &Seen::Silent("refused".into())), None);
        assert_eq!(m(None, &silent), None);
        assert_eq!(
            m(Some(&silent), &follower("node-2")).unwrap(),
            "node-1 is follower (leader node-2)"
        );
    }
}

//! Scoped key names. Callers never concatenate raw strings into backend keys:
//! they build a [`KvKey`] from a [`Scope`], a namespace and a name, and the
//! backend renders it with [`KvKey::render`], which is injective (two
//! different keys never render alike).

use std::fmt;

use crate::error::{Error, Result};

const MAX_COMPONENT: usize = 256;

/// Who owns a key: the host itself, one of its modules, or a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The host core.
    Host,
    /// A host module (e.g. `auth`, `scheduler`).
    Module(String),
    /// A plugin, by plugin id.
    Plugin(String),
}

/// Tenant and owner of a key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    tenant: Option<String>,
    owner: Owner,
}

impl Scope {
    /// A scope for `owner`, without tenant.
    pub fn new(owner: Owner) -> Result<Self> {
        if let Owner::Module(id) | Owner::Plugin(id) = &owner {
            check_component("owner id", id)?;
        }
        Ok(Scope {
            tenant: None,
            owner,
        })
    }

    /// The host's own scope.
    pub fn host() -> Self {
        Scope {
            tenant: None,
            owner: Owner::Host,
        }
    }

    /// A host module's scope.
    pub fn module(id: &str) -> Result<Self> {
        Scope::new(Owner::Module(id.to_string()))
    }

    /// A plugin's scope.
    pub fn plugin(id: &str) -> Result<Self> {
        Scope::new(Owner::Plugin(id.to_string()))
    }

    /// The same scope limited to one tenant.
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self> {
        check_component("tenant", tenant)?;
        self.tenant = Some(tenant.to_string());
        Ok(self)
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The owner.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }
}

/// A key of the key-value store: scope, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvKey {
    scope: Scope,
    namespace: String,
    name: String,
}

impl KvKey {
    /// Builds a key; namespace and name must be 1–256 characters without
    /// control characters.
    pub fn new(scope: Scope, namespace: &str, name: &str) -> Result<Self> {
        check_component("key namespace", namespace)?;
        check_component("key name", name)?;
        Ok(KvKey {
            scope,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The key's scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The key's namespace within its scope.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The key's name within its namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend key, without the deployment namespace prefix. Every
    /// component is escaped so that `:` separates components only, which
    /// makes the rendering injective.
    pub fn render(&self) -> String {
        let tenant = match &self.scope.tenant {
            Some(t) => format!("t.{}", escape(t)),
            None => "t".to_string(),
        };
        let owner = match &self.scope.owner {
            Owner::Host => "host".to_string(),
            Owner::Module(id) => format!("module.{}", escape(id)),
            Owner::Plugin(id) => format!("plugin.{}", escape(id)),
        };
        format!(
            "kv:{tenant}:{owner}:{}:{}",
            escape(&self.namespace),
            escape(&self.name)
        )
    }
}

impl fmt::Display for KvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Percent-escapes the characters that structure a rendered key.
fn escape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for c in component.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '.' => out.push_str("%2E"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

fn check_component(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_COMPONENT {
        return Err(Error::invalid(format!(
            "{what} {value:?} must be 1 to {MAX_COMPONENT} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} {value:?} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a lock name: 1–256 bytes, no whitespace or control characters.
pub fn check_lock_name(name: &str) -> Result<()> {
    check_component("lock name", name)?;
    if name.chars().any(char::is_whitespace) {
        return Err(Error::invalid(format!(
            "lock name {name:?} must not contain whitespace"
        )));
    }
    Ok(())
}

/// Checks a revision domain (`[a-z0-9-]`, 1–64 bytes) and scope (1–256
/// bytes, no whitespace or control characters).
pub fn check_revision_key(domain: &str, scope: &str) -> Result<()> {
    if domain.is_empty()
        || domain.len() > 64
        || !domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(Error::invalid(format!(
            "revision domain {domain:?} must be 1 to 64 characters of a-z, 0-9 and -"
        )));
    }
    check_component("revision scope", scope)?;
    if scope.chars().any(char::is_whitespace) {
        return Err(Error::invalid(format!(
            "revision scope {scope:?} must not contain whitespace"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_is_injective_for_separator_tricks() {
        let a = KvKey::new(Scope::host(), "a:b", "c").unwrap();
        let b = KvKey::new(Scope::host(), "a", "b:c").unwrap();
        assert_ne!(a.render(), b.render());
        let c = KvKey::new(Scope::module("x.y").unwrap(), "n", "k").unwrap();
        let d = KvKey::new(Scope::module("x").unwrap(), "y.n", "k").unwrap();
        assert_ne!(c.render(), d.render());
        let e = KvKey::new(Scope::host().with_tenant("t").unwrap(), "n", "k").unwrap();
        let f = KvKey::new(Scope::host(), "n", "k").unwrap();
        assert_ne!(e.render(), f.render());
    }

    #[test]
    fn bad_components_are_refused() {
        assert!(KvKey::new(Scope::host(), "", "k").is_err());
        assert!(KvKey::new(Scope::host(), "n", &"x".repeat(300)).is_err());
        assert!(check_lock_name("has space").is_err());
        assert!(check_revision_key("Upper", "s").is_err());
        assert!(check_revision_key("i18n", "fr-FR").is_ok());
    }
}

use lina_config::load_from;

use super::env;

const JWT: &str = "jwt-secret-value-5b1c9e";
const REDIS: &str = "redis-password-77ab";
const SENTINEL: &str = "sentinel-password-19fe";
const DB: &str = "database-password-c3d4";

fn loaded() -> lina_config::Loaded {
    load_from(
        Some(&format!(
            r#"
jwt:
  secret: "{JWT}"
database:
  default:
    link: "pgsql:lina:{DB}@tcp(pg:5432)/lina?sslmode=disable"
cluster:
  redis:
    password: "{REDIS}"
    sentinel:
      serviceName: mymaster
      addresses: ["s1:26379"]
      password: "{SENTINEL}"
"#
        )),
        env(&[]),
    )
    .unwrap()
}

fn assert_no_secret(text: &str) {
    for secret in [JWT, REDIS, SENTINEL, DB] {
        assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
    }
}

#[test]
fn secrets_are_loaded() {
    let c = loaded().config;
    assert_eq!(c.jwt.secret.expose(), JWT);
    assert_eq!(c.cluster.redis.password.expose(), REDIS);
    assert_eq!(
        c.cluster.redis.sentinel.as_ref().unwrap().password.expose(),
        SENTINEL
    );
    assert!(
        c.database
            .default
            .link
            .connection_url()
            .expose()
            .contains(DB)
    );
}

#[test]
fn debug_display_and_effective_yaml_hide_secrets() {
    let loaded = loaded();
    let c = &loaded.config;
    assert_no_secret(&format!("{c:?}"));
    assert_no_secret(&format!("{c:#?}"));
    assert_no_secret(&format!("{loaded:?}"));
    assert_no_secret(&c.to_string());
    assert_no_secret(&format!("{:?}", c.database.default.link.connection_url()));
    let yaml = c.effective_yaml();
    assert_no_secret(&yaml);
    assert!(
        yaml.contains("secret: '***'") || yaml.contains("secret: \"***\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("pgsql:lina:***@tcp(pg:5432)/lina?sslmode=disable"),
        "{yaml}"
    );
    assert_no_secret(&serde_json::to_string(c).unwrap());
}

#[test]
fn problems_do_not_echo_secrets() {
    let err = load_from(
        Some(&format!(
            "cluster:\n  enabled: true\n  redis:\n    password: \"{REDIS}\"\ndatabase:\n  default:\n    link: \"mysql:root:{DB}@tcp(h:3306)/x\"\n"
        )),
        env(&[("LINA_JWT__SECRET", "short")]),
    )
    .unwrap_err();
    assert_no_secret(&err.to_string());
    assert_no_secret(&format!("{err:?}"));
}

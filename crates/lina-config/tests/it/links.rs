use lina_config::{DatabaseLink, Secret};

fn parse(link: &str) -> DatabaseLink {
    link.parse().unwrap_or_else(|e| panic!("{link}: {e}"))
}

fn pg(
    user: &str,
    password: &str,
    host: &str,
    port: u16,
    database: &str,
    params: &[(&str, &str)],
) -> DatabaseLink {
    DatabaseLink::Postgres {
        user: user.into(),
        password: Secret::new(password),
        host: host.into(),
        port,
        database: database.into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

#[test]
fn goframe_pgsql_links() {
    assert_eq!(
        parse("pgsql:postgres:postgres@tcp(127.0.0.1:5432)/linapro?sslmode=disable"),
        pg(
            "postgres",
            "postgres",
            "127.0.0.1",
            5432,
            "linapro",
            &[("sslmode", "disable")]
        )
    );
    // Empty user and password, no port, several parameters.
    let link = parse("pgsql::@tcp(db.internal)/lina?sslmode=require&connect_timeout=5");
    assert_eq!(
        link,
        pg(
            "",
            "",
            "db.internal",
            5432,
            "lina",
            &[("sslmode", "require"), ("connect_timeout", "5")]
        )
    );
    assert_eq!(
        link.connection_url().expose(),
        "postgres://db.internal:5432/lina?sslmode=require&connect_timeout=5"
    );
}

#[test]
fn connection_url_percent_encodes_user_and_password() {
    let link = parse("pgsql:app user:p@ss:w/rd?#%@tcp(db:6432)/lina");
    assert_eq!(
        link,
        pg("app user", "p@ss:w/rd?#%", "db", 6432, "lina", &[])
    );
    assert_eq!(
        link.connection_url().expose(),
        "postgres://app%20user:p%40ss%3Aw%2Frd%3F%23%25@db:6432/lina"
    );
    // The URL form reads the encoding back.
    assert_eq!(parse(link.connection_url().expose()), link);
}

#[test]
fn postgres_urls() {
    assert_eq!(
        parse("postgres://u:p%40x@h:5433/db?sslmode=disable"),
        pg("u", "p@x", "h", 5433, "db", &[("sslmode", "disable")])
    );
    assert_eq!(
        parse("postgresql://u@h/db"),
        pg("u", "", "h", 5432, "db", &[])
    );
}

#[test]
fn sqlite_links() {
    for (text, path) in [
        ("sqlite://./data/lina.db", "./data/lina.db"),
        ("sqlite:///var/lib/lina/lina.db", "/var/lib/lina/lina.db"),
        (
            "sqlite::@file(./temp/sqlite/linapro.db)",
            "./temp/sqlite/linapro.db",
        ),
    ] {
        let link = parse(text);
        assert_eq!(
            link,
            DatabaseLink::Sqlite {
                path: path.into(),
                params: vec![]
            },
            "{text}"
        );
        assert_eq!(
            link.connection_url().expose(),
            format!("sqlite://{path}?mode=rwc")
        );
    }
    assert_eq!(
        parse("sqlite::memory:").connection_url().expose(),
        "sqlite::memory:"
    );
    assert_eq!(
        parse("sqlite://./x.db?mode=ro").connection_url().expose(),
        "sqlite://./x.db?mode=ro"
    );
}

#[test]
fn mysql_and_other_kinds_are_refused() {
    for text in [
        "mysql:root:12345678@tcp(127.0.0.1:3306)/linapro?charset=utf8mb4&parseTime=true",
        "mysql://root:pw@localhost/lina",
    ] {
        let err = text.parse::<DatabaseLink>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "mysql is not supported by lina; use pgsql or sqlite"
        );
    }
    let err = "mssql:sa:pw@tcp(h:1433)/db"
        .parse::<DatabaseLink>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "database type mssql is not supported by lina; use pgsql or sqlite"
    );
    assert!(
        "pgsql:u:p@unix(/run/pg)/db"
            .parse::<DatabaseLink>()
            .is_err()
    );
    assert!("nonsense".parse::<DatabaseLink>().is_err());
    assert!(
        "pgsql:u:p@tcp(h:notaport)/db"
            .parse::<DatabaseLink>()
            .is_err()
    );
}

#[test]
fn mysql_in_config_is_a_problem_at_the_link_path() {
    let problems = super::problems(
        "database:\n  default:\n    link: \"mysql:root:12345678@tcp(127.0.0.1:3306)/linapro\"\n",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].to_string(),
        "database.default.link: mysql is not supported by lina; use pgsql or sqlite"
    );
}

#[test]
fn redacted_forms_hide_the_password() {
    let link = parse("postgres://u:hunter2@h/db");
    assert_eq!(link.redacted(), "pgsql:u:***@tcp(h:5432)/db");
    assert_eq!(link.to_string(), link.redacted());
    assert!(!format!("{link:?}").contains("hunter2"));
}

//! Fresh PostgreSQL databases and temporary SQLite files.

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use lina_testkit::{fresh_database, temp_sqlite};

async fn database_exists(conn: &impl ConnectionTrait, name: &str) -> bool {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap() == 1
}

#[tokio::test]
async fn fresh_databases_are_usable_and_distinct() {
    let a = fresh_database().await.unwrap();
    let b = fresh_database().await.unwrap();
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with("lina_t_"));
    assert!(a.url().ends_with(&format!("/{}", a.name())));

    let ca = Database::connect(a.url()).await.unwrap();
    let cb = Database::connect(b.url()).await.unwrap();
    ca.execute_unprepared("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // The other database does not see it.
    assert!(cb.execute_unprepared("SELECT * FROM t").await.is_err());
    cb.execute_unprepared("CREATE TABLE t (id int primary key)")
        .await
        .unwrap();

    // Dropping the value drops the database, even with a connection still open.
    let name = a.name().to_string();
    assert!(database_exists(&cb, &name).await);
    drop(a);
    assert!(!database_exists(&cb, &name).await);
    let _ = ca.close().await;
    let _ = cb.close().await;
}

#[tokio::test]
async fn kept_database_survives_drop() {
    let db = fresh_database().await.unwrap().keep();
    let name = db.name().to_string();
    let url = db.url().to_string();
    drop(db);
    let conn = Database::connect(&url).await.unwrap();
    assert!(database_exists(&conn, &name).await);
    let _ = conn.close().await;
    // Clean up with a second handle that is not kept: drop it through another database.
    let other = fresh_database().await.unwrap();
    let conn = Database::connect(other.url()).await.unwrap();
    conn.execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    let _ = conn.close().await;
}

#[tokio::test]
async fn temp_sqlite_is_usable_and_removed_on_drop() {
    let db = temp_sqlite().unwrap();
    assert!(db.url().starts_with("sqlite://"));
    let conn = Database::connect(db.url()).await.unwrap();
    conn.execute_unprepared("CREATE TABLE t (id integer primary key)")
        .await
        .unwrap();
    let _ = conn.close().await;
    assert!(db.path().exists());
    let dir = db.dir().to_path_buf();
    drop(db);
    assert!(!dir.exists());
}

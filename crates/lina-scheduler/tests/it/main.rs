//! Integration tests of the scheduler: three scheduler instances as three
//! nodes on PostgreSQL and a private Redis; a single node on SQLite.

mod cluster;
mod rules;
mod support;

//! Integration tests of the caches, each scenario on the local backend and
//! on Redis (private redis-servers), with three coordinators as three nodes.

mod deployment;
mod kv;
mod revisioned;

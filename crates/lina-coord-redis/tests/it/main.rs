//! Integration tests of the Redis backend against private redis-servers:
//! the whole conformance suite, then faults only a networked backend has.

mod conformance {
    lina_coord_api::conformance_tests!(lina_coord_redis::testing::RedisHarness::default());
}

mod connect;
mod faults;

//! Integration tests of the local backend: the whole conformance suite, plus
//! what only single-node mode promises.

mod conformance {
    lina_coord_api::conformance_tests!(lina_coord_local::testing::LocalHarness);
}

mod single;

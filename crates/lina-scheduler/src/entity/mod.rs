//! sea-orm entities of the scheduler's tables (created by `lina-migration`).

pub mod job;
pub mod job_fire;
pub mod job_group;
pub mod job_log;

//! sea-orm entities of the system tables (created by `lina-migration`).
#![allow(missing_docs)]

pub mod i18n_override;
pub mod menu;
pub mod plugin;
pub mod plugin_file;
pub mod role;
pub mod role_menu;
pub mod user;
pub mod user_role;

//! The job record, below every feature: reading jobs, hosts and events as the API shows them,
//! and recording the actions taken on jobs. Features (the read API, the live relay, the engines,
//! the outbox) use it; it uses only `infra`.

pub mod actions;
pub mod events;
pub mod jobs;

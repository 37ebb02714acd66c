//! Infrastructure: what every feature uses and which names no feature. Nothing here imports a
//! module outside `infra` (but `live::Hub`, the relay's broadcast type the state holds).

pub mod access;
pub mod audit;
pub mod auth;
pub mod config;
pub mod copy;
pub mod db;
pub mod embedded;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod outbound;
pub mod paths;
pub mod secrets;
pub mod security;
pub mod state;
pub mod text;
pub mod tls;

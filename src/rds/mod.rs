//! Amazon RDS: the events that announce a forced start.

pub mod classify;
pub mod event;
pub mod messages;
pub mod resource;
pub mod status;

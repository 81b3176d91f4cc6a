//! Amazon RDS: the events that announce a forced start.

pub mod event;
pub mod messages;
pub mod resource;
pub mod status;

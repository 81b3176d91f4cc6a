//! Amazon RDS: the events that announce a forced start.

pub mod event;

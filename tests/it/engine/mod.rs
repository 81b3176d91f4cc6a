//! The protection engine end to end, mostly on moto.

mod accounts;
mod catchup;
mod durability;
mod internal_mode;
mod replicas;
mod step_functions;
mod wakeup;

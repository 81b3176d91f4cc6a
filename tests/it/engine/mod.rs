//! The protection engine end to end, mostly on moto.

mod accounts;
mod catchup;
mod durability;
mod forced_start;
mod holds;
mod internal_mode;
mod notify_formats;
mod replicas;
mod step_functions;
mod wakeup;

//! `POST /sns`: what SNS delivers, and what restop makes of it.

mod delivery;
mod genuine_messages;

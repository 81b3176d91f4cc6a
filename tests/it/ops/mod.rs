//! What an operator runs: the command line, `restop doctor`, HTTPS, and the console.

mod cli;
mod console;
mod doctor;
mod tls;

//! The step library, one file per domain. Steps read like the Gherkin; cucumber finds them by their attributes.

mod board;
mod console;
mod faults;
mod flashing;
mod gpio;
mod home_assistant;
mod meter;
mod migration;
mod mqtt;
mod rest;
mod snapshots;
mod web;

//! The Ringside explorer: the engine's simulator running in the browser.
//!
//! This file only mounts the app; the components live in the modules below. Build and serve it
//! with `cargo xtask explore`.

mod app;
mod builder;
mod course;
mod gallery;
mod geometry;
mod glossary;
mod history;
mod lanes;
mod panels;
mod ring;
mod run;
mod state;
mod timeline;
mod url;

fn main() {
    leptos::mount::mount_to_body(app::App);
}

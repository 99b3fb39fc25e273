//! The Ringside explorer: the engine's simulator running in the browser.
//!
//! This file only mounts the app; the components live in [`app`]. Build and serve it with
//! `cargo xtask explore`.

mod app;

fn main() {
    leptos::mount::mount_to_body(app::App);
}

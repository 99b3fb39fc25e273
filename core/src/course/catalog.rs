//! The exercises shipped with Ringside (`core/course/`), embedded so that the explorer and the
//! CLI have them without a file system. `core/tests/course.rs` checks that every file there is
//! listed here and that each one passes [`super::check`].

/// One shipped exercise file.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its id: the file name without `.toml`.
    pub id: &'static str,
    /// Its path under `core/course/`.
    pub path: &'static str,
    /// The file.
    pub text: &'static str,
}

macro_rules! exercises {
    ($($dir:literal / $id:literal),* $(,)?) => {
        &[$(Entry {
            id: $id,
            path: concat!($dir, "/", $id, ".toml"),
            text: include_str!(concat!("../../course/", $dir, "/", $id, ".toml")),
        }),*]
    };
}

/// Every shipped exercise, in course order.
pub const CATALOG: &[Entry] = exercises!["01-ring" / "fourth-node-ownership",];

/// The shipped exercise `id`.
pub fn by_id(id: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.id == id)
}

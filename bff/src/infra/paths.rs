//! Paths that someone gave us, inside a directory we own: relative, no `..`, no NUL, and still
//! inside after links are followed (the playbook and inventory directories).

use std::path::{Component, Path, PathBuf};

use crate::infra::error::AppError;

fn bad(msg: impl Into<String>) -> AppError {
    AppError::Unprocessable(msg.into())
}

/// A path that stays inside its directory: relative, no `..`, and (after symlinks) still inside.
pub fn resolve_in(base: &Path, rel: &str, field: &str, dir_name: &str) -> Result<PathBuf, AppError> {
    check_relative(rel, field)?;
    let root = base.canonicalize().map_err(|e| {
        AppError::Unprocessable(format!("the {dir_name} {} cannot be read: {e}", base.display()))
    })?;
    let full = root
        .join(rel)
        .canonicalize()
        .map_err(|_| bad(format!("`{field}`: there is no {rel:?} in the {dir_name}")))?;
    if !full.starts_with(&root) {
        return Err(bad(format!("`{field}`: {rel:?} leads outside the {dir_name} (through a link)")));
    }
    Ok(full)
}

/// Lexical checks: relative, no parent components, no NUL.
pub fn check_relative(rel: &str, field: &str) -> Result<(), AppError> {
    if rel.trim().is_empty() {
        return Err(bad(format!("`{field}` is empty")));
    }
    if rel.contains('\0') || rel.len() > 1024 {
        return Err(bad(format!("`{field}` is not a usable path")));
    }
    let p = Path::new(rel);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad(format!(
                    "`{field}` {rel:?} must stay inside its directory: `..` is not allowed"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(format!(
                    "`{field}` {rel:?} must be relative to its directory, not an absolute path"
                )))
            }
        }
    }
    Ok(())
}

/// A file found by [`files_in`]: its path in the directory, where it is, and how many
/// directories down.
pub struct Found {
    pub rel: String,
    pub path: PathBuf,
    pub depth: usize,
}

/// The files under `dir` (`dir` itself and at most `depth` directories down) that `keep` takes
/// by name, sorted by path: nothing hidden, no directory `skip` names, nothing reached through a
/// link that leads out of `dir` (a link in a repository may point anywhere). At most `max`; the
/// rest are left out and the log says so.
pub fn files_in(
    dir: &Path,
    depth: usize,
    skip: &[&str],
    keep: impl Fn(&str) -> bool,
    max: usize,
) -> Vec<Found> {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out: Vec<Found> = Vec::new();
    let mut todo = vec![(root.clone(), 0usize)];
    'walk: while let Some((d, at)) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with('.') || !path.canonicalize().is_ok_and(|real| real.starts_with(&root)) {
                continue;
            }
            if path.is_dir() {
                if at < depth && !skip.contains(&name.as_str()) {
                    todo.push((path, at + 1));
                }
                continue;
            }
            if !keep(&name) {
                continue;
            }
            if out.len() >= max {
                tracing::warn!(dir = %dir.display(), "more than {max} files; the rest are not listed");
                break 'walk;
            }
            if let Ok(rel) = path.strip_prefix(&root) {
                out.push(Found { rel: rel.to_string_lossy().into_owned(), path: path.clone(), depth: at });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// A file or directory of our own making, removed (with what is in it) when this is dropped: also
/// when the request that made it is cancelled half-way.
pub struct Removed(pub PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ =
            if self.0.is_dir() { std::fs::remove_dir_all(&self.0) } else { std::fs::remove_file(&self.0) };
    }
}

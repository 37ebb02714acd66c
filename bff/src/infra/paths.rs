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

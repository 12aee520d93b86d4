//! Opening the files that hold or guard secrets: the region itself, and the files the
//! daemons keep beside it (iked's lock file and key log use the same discipline).
//!
//! The rule is the same for each: a file is used only if it is a regular file owned by
//! our effective uid and nobody else may read or write it. The check is made with
//! `fstat` on the descriptor we opened (never on the path, which could be swapped in
//! between), the open does not follow a symbolic link (`O_NOFOLLOW`) and does not block
//! (`O_NONBLOCK`: a FIFO put at the path cannot hang us), and a file we create is
//! created with `O_EXCL` and mode 0600. A directory is used only if it is a directory
//! (not a symbolic link to one) owned by us with mode 0700.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::SadbError;

/// The directory of the default region: private to the daemons' user.
pub const DEFAULT_DIR: &str = "/run/espgw";

/// Flags for opening a path that may hold anything.
const SAFE_OPEN: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// What an existing file or directory of ours whose mode lets group or others in gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LooseMode {
    /// Refused, like a file of another owner.
    Refuse,
    /// Narrowed to 0600 (a directory to 0700): it is ours, so only the mode was wrong.
    Narrow,
}

fn kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "a regular file"
    }
}

fn unsafe_file(path: &Path, what: &'static str, reason: String) -> SadbError {
    SadbError::UnsafeFile { path: path.to_owned(), what, reason, euid: effective_uid() }
}

fn io_err(path: &Path, op: &'static str, e: &io::Error) -> SadbError {
    SadbError::Io { path: path.to_owned(), op, err: e.to_string() }
}

/// Opens an existing file at `path` without following a symbolic link or blocking, and
/// checks the descriptor (see [`check_file`]). `what` names the file in the refusal.
pub fn open_existing(
    path: &Path,
    what: &'static str,
    opts: &mut OpenOptions,
    loose: LooseMode,
) -> Result<File, SadbError> {
    let file = opts.custom_flags(SAFE_OPEN).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            unsafe_file(path, what, "a symbolic link".into())
        } else {
            io_err(path, "open", &e)
        }
    })?;
    check_file(&file, path, what, loose)?;
    Ok(file)
}

/// Refuses the open `file` unless it is a regular file owned by our effective uid with no
/// group or other mode bits (those are narrowed instead under [`LooseMode::Narrow`]).
pub fn check_file(file: &File, path: &Path, what: &'static str, loose: LooseMode) -> Result<(), SadbError> {
    let md = file.metadata().map_err(|e| io_err(path, "stat", &e))?;
    let (uid, mode) = (md.uid(), md.mode() & 0o7777);
    let regular = md.file_type().is_file();
    if !regular || uid != effective_uid() || (mode & 0o077 != 0 && loose == LooseMode::Refuse) {
        let prefix = if regular { String::new() } else { format!("{}, ", kind(md.file_type())) };
        return Err(unsafe_file(path, what, format!("{prefix}owned by uid {uid}, mode {mode:04o}")));
    }
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, "chmod", &e))?;
    }
    Ok(())
}

/// Creates `path` (`O_EXCL`, mode 0600 whatever the umask) or, if something is there
/// already, opens it as [`open_existing`] does. `opts` says how (read, write, append).
pub fn create_or_open(
    path: &Path,
    what: &'static str,
    opts: &OpenOptions,
    loose: LooseMode,
) -> Result<File, SadbError> {
    let created =
        opts.clone().create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path);
    match created {
        Ok(f) => {
            // The umask may only remove bits; set exactly 0600 anyway.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_err(path, "chmod", &e))?;
            Ok(f)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            open_existing(path, what, &mut opts.clone(), loose)
        }
        Err(e) => Err(io_err(path, "create", &e)),
    }
}

/// Creates the directory `dir` (and missing parents) with mode 0700 if it is missing, then
/// refuses it unless it is a directory, not a symbolic link, owned by our effective uid;
/// group or other mode bits are refused or narrowed as `loose` says.
pub fn private_dir(dir: &Path, what: &'static str, loose: LooseMode) -> Result<(), SadbError> {
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir, "create directory", &e)),
    }
    let md = std::fs::symlink_metadata(dir).map_err(|e| io_err(dir, "stat", &e))?;
    let (uid, mode) = (md.uid(), md.mode() & 0o7777);
    let is_dir = md.file_type().is_dir();
    if !is_dir || uid != effective_uid() || (mode & 0o077 != 0 && loose == LooseMode::Refuse) {
        let prefix = if is_dir { String::new() } else { format!("{}, ", kind(md.file_type())) };
        return Err(SadbError::UnsafeDir {
            path: dir.to_owned(),
            what,
            reason: format!("{prefix}owned by uid {uid}, mode {mode:04o}"),
            euid: effective_uid(),
        });
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err(dir, "chmod", &e))?;
    }
    Ok(())
}

/// Makes sure the directory of the region at `path` is safe to use: the default directory
/// ([`DEFAULT_DIR`]) is created 0700 if missing and checked if present. A region given
/// elsewhere lives in a directory its operator chose; the file checks still apply to it.
pub fn prepare_dir(path: &Path) -> Result<(), SadbError> {
    match path.parent() {
        Some(dir) if dir == Path::new(DEFAULT_DIR) => {
            private_dir(dir, "the SA database's directory", LooseMode::Refuse)
        }
        _ => Ok(()),
    }
}

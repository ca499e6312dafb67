//! Typed errors of the library; the CLI turns them into one-line messages and exit codes.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in patron, split by who has to act on it.
#[derive(Debug, thiserror::Error)]
pub enum PatronError {
    /// The user's config is wrong (unknown key, bad value, type error).
    #[error("config {file}: {message}")]
    Config {
        /// The config file (or `--set` for command-line overrides).
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A data file is unusable (missing, unreadable, wrong schema, bad values).
    #[error("{}: {message}", path.display())]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A run directory is missing, incomplete, damaged or from another version.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The run directory or the file inside it.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A bad command-line request that is not about one file (e.g. an unavailable backend).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Training diverged (NaN or infinite loss).
    #[error("{0}")]
    Diverged(String),
    /// Training was interrupted (Ctrl-C) after saving a resumable checkpoint.
    #[error("{0}")]
    Interrupted(String),
    /// A bug or an unexpected failure inside patron or its libraries.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PatronError {
    /// Exit status for this error: 2 for problems the user can fix in their input, 130 for an
    /// interrupted run, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            PatronError::Config { .. }
            | PatronError::Data { .. }
            | PatronError::Checkpoint { .. }
            | PatronError::Usage(_) => 2,
            // A missing or unreadable input path is bad input too; other I/O failures
            // (disk full, permissions on output) are reported the same way since the user
            // must act on them.
            PatronError::Io { .. } => 2,
            // 128 + SIGINT, as shells report an interrupted command.
            PatronError::Interrupted(_) => 130,
            PatronError::Diverged(_) | PatronError::Internal(_) => 1,
        }
    }

    /// A data-file error.
    pub fn data(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        PatronError::Data {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A config error.
    pub fn config(file: impl Into<String>, message: impl Into<String>) -> Self {
        PatronError::Config {
            file: file.into(),
            message: message.into(),
        }
    }

    /// A checkpoint error.
    pub fn checkpoint(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        PatronError::Checkpoint {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        PatronError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Result alias used across the library.
pub type Result<T, E = PatronError> = std::result::Result<T, E>;

//! Voice message bytes on the files volume (`MESSENGER_FILES_DIR/<file id>`); metadata lives
//! in `messenger.files`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use uuid::Uuid;

/// The files directory.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Creates the directory when missing.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating MESSENGER_FILES_DIR {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where a stored file's bytes are.
    pub fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.simple().to_string())
    }

    /// Where an upload is written before it is complete.
    pub fn partial_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.part", id.simple()))
    }

    /// Makes a complete upload visible under its id.
    pub async fn commit(&self, id: Uuid) -> std::io::Result<()> {
        tokio::fs::rename(self.partial_path(id), self.path(id)).await
    }

    /// Removes a file's bytes (best effort: a leftover file is harmless, only unreachable).
    pub async fn remove(&self, id: Uuid) {
        for p in [self.path(id), self.partial_path(id)] {
            if let Err(e) = tokio::fs::remove_file(&p).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "file not removed");
            }
        }
    }
}

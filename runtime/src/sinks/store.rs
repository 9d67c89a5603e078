//! Opening the object store a sink URL names, and committing whole files to it.

use anyhow::{Context, bail};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A store and the prefix inside it under which the archive lives.
#[derive(Clone)]
pub struct Archive {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// A human form of where the archive is, for messages.
    pub location: String,
}

impl Archive {
    /// `file:///abs`, a plain path (created if missing), `s3://bucket/prefix`
    /// (everything else from the standard AWS environment variables), or `memory://`.
    pub fn open(url: &str) -> anyhow::Result<Archive> {
        if let Some(rest) = url.strip_prefix("memory://") {
            return Ok(Archive {
                store: Arc::new(InMemory::new()),
                prefix: ObjectPath::from(rest.trim_matches('/')),
                location: url.into(),
            });
        }
        if url.starts_with("s3://") {
            let parsed = url::Url::parse(url).with_context(|| format!("bad sink URL `{url}`"))?;
            let bucket = parsed.host_str().context("s3:// URL without a bucket")?;
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("cannot configure S3 for `{url}`"))?;
            return Ok(Archive {
                store: Arc::new(store),
                prefix: ObjectPath::from(parsed.path().trim_matches('/')),
                location: url.into(),
            });
        }
        if url.contains("://") && !url.starts_with("file://") {
            bail!("unsupported sink URL `{url}`: use a path, file://, s3:// or memory://");
        }
        let path = std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let path = path.canonicalize()?;
        Ok(Archive {
            store: Arc::new(LocalFileSystem::new_with_prefix(&path)?),
            prefix: ObjectPath::default(),
            location: path.display().to_string(),
        })
    }

    /// Like [`Archive::open`], but a local path must already exist (for readers).
    pub fn open_existing(url: &str) -> anyhow::Result<Archive> {
        if !url.contains("://") || url.starts_with("file://") {
            let path = std::path::Path::new(url.strip_prefix("file://").unwrap_or(url));
            anyhow::ensure!(path.is_dir(), "no archive at {}", path.display());
        }
        Archive::open(url)
    }

    /// The object path of these segments under the prefix; each segment is
    /// percent-encoded as needed, so a `/` in a value never makes a new level.
    pub fn path_of<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> ObjectPath {
        segments.into_iter().fold(self.prefix.clone(), |path, segment| path.join(segment))
    }
}

impl Archive {
    /// The object path of a path relative to the prefix, as [`Archive::relative`]
    /// gives it (segments already encoded).
    pub fn path_from_relative(&self, relative: &str) -> anyhow::Result<ObjectPath> {
        let full =
            if self.prefix.as_ref().is_empty() { relative.to_string() } else { format!("{}/{relative}", self.prefix) };
        Ok(ObjectPath::parse(&full)?)
    }

    /// A path under the prefix, as a `/`-separated path relative to it.
    pub fn relative(&self, path: &ObjectPath) -> String {
        let skip = self.prefix.parts().count();
        path.parts().skip(skip).map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/")
    }
}

/// Files above this size go up as multipart uploads.
const MULTIPART_ABOVE: usize = 32 << 20;
const PART_SIZE: usize = 16 << 20;

static CREATE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Writes a complete file. It becomes visible only whole. Single uploads use
/// `PutMode::Create`, so an existing object is never overwritten where the store
/// enforces it; names carry a fresh UUIDv7 either way, so none is ever reused.
pub async fn commit_file(archive: &Archive, path: &ObjectPath, bytes: bytes::Bytes) -> anyhow::Result<()> {
    if bytes.len() > MULTIPART_ABOVE {
        let upload = archive.store.put_multipart(path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for chunk in bytes.chunks(PART_SIZE) {
            writer.wait_for_capacity(2).await?;
            writer.put(bytes.slice_ref(chunk));
        }
        writer.finish().await.with_context(|| format!("multipart upload of {path}"))?;
        return Ok(());
    }
    let payload = PutPayload::from_bytes(bytes);
    if !CREATE_UNSUPPORTED.load(Ordering::Relaxed) {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match archive.store.put_opts(path, payload.clone(), opts).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotImplemented { .. }) => {
                CREATE_UNSUPPORTED.store(true, Ordering::Relaxed);
                tracing::warn!(location = %archive.location, "Store has no create-only put; relying on unique file names.");
            }
            Err(e) => return Err(e).with_context(|| format!("upload of {path}")),
        }
    }
    archive.store.put(path, payload).await.with_context(|| format!("upload of {path}"))?;
    Ok(())
}

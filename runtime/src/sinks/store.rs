//! Opening the object store a sink URL names, and committing whole files to it.

use anyhow::{Context, bail};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A store and the prefix inside it under which the archive lives.
#[derive(Clone)]
pub struct Archive {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// A human form of where the archive is, for messages.
    pub location: String,
    /// How long writes are retried through a store outage (`retrying`).
    pub retry_for: Duration,
    /// The S3 client, for what `ObjectStore` has no call for (Object Lock).
    s3: Option<Arc<AmazonS3>>,
}

/// The default of [`Archive::retry_for`]; the sink sets `sink.retry_for_secs`.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Another writer got there first: never retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// The store refused a request for good (a client error): never retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Runs `op` until it succeeds, waiting 1 s, 2 s, 4 s … (at most 30 s)
/// between attempts, for up to `archive.retry_for`; a [`Conflict`] is final.
/// The store client retries each request a few times itself; this rides out
/// an outage of minutes (the pipeline waits meanwhile: its channels are bounded).
pub async fn retrying<T, F, Fut>(archive: &Archive, what: &str, mut op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e)
                if e.downcast_ref::<Conflict>().is_none()
                    && e.downcast_ref::<Refused>().is_none()
                    && start.elapsed() + wait <= archive.retry_for =>
            {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?wait, "{what} failed; retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e).with_context(|| format!("{what} (gave up after {:.0?})", start.elapsed())),
        }
    }
}

impl Archive {
    /// `file:///abs`, a plain path (created if missing), `s3://bucket/prefix`
    /// (everything else from the standard AWS environment variables), or
    /// `memory://name/prefix` (one store per name for the life of the process).
    pub fn open(url: &str) -> anyhow::Result<Archive> {
        Archive::open_with(url, &std::collections::BTreeMap::new())
    }

    /// Like [`Archive::open`], with store options that override the
    /// environment (for S3: any `object_store` S3 config key, e.g.
    /// `aws_endpoint`, `aws_region`, `aws_allow_http`; unknown keys are errors).
    pub fn open_with(url: &str, options: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Archive> {
        if !options.is_empty() && !is_cloud(url) {
            bail!("sink options are for s3://, gs:// and az:// URLs; `{url}` takes none");
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(Archive {
                store: memory_store(name),
                prefix: ObjectPath::from(prefix.trim_matches('/')),
                location: url.into(),
                retry_for: RETRY_FOR,
                s3: None,
            });
        }
        if url.starts_with("s3://") {
            let parsed = url::Url::parse(url).with_context(|| format!("bad sink URL `{url}`"))?;
            let bucket = parsed.host_str().context("s3:// URL without a bucket")?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (key, value) in options {
                let key: AmazonS3ConfigKey = key.parse().with_context(|| format!("unknown S3 option `{key}`"))?;
                builder = builder.with_config(key, value);
            }
            let store = Arc::new(builder.build().with_context(|| format!("cannot configure S3 for `{url}`"))?);
            return Ok(Archive {
                store: store.clone(),
                prefix: ObjectPath::from(parsed.path().trim_matches('/')),
                location: url.into(),
                retry_for: RETRY_FOR,
                s3: Some(store),
            });
        }
        if url.starts_with("gs://") || url.starts_with("az://") {
            let parsed = url::Url::parse(url).with_context(|| format!("bad sink URL `{url}`"))?;
            let bucket = parsed.host_str().with_context(|| format!("{url}: no bucket or container"))?;
            let store: Arc<dyn ObjectStore> = if url.starts_with("gs://") {
                let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
                for (key, value) in options {
                    let key: GoogleConfigKey = key.parse().with_context(|| format!("unknown GCS option `{key}`"))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().with_context(|| format!("cannot configure GCS for `{url}`"))?)
            } else {
                let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(bucket);
                for (key, value) in options {
                    let key: AzureConfigKey = key.parse().with_context(|| format!("unknown Azure option `{key}`"))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.build().with_context(|| format!("cannot configure Azure for `{url}`"))?)
            };
            return Ok(Archive {
                store,
                prefix: ObjectPath::from(parsed.path().trim_matches('/')),
                location: url.into(),
                retry_for: RETRY_FOR,
                s3: None,
            });
        }
        if url.contains("://") && !url.starts_with("file://") {
            bail!("unsupported sink URL `{url}`: use a path, file://, s3://, gs://, az:// or memory://");
        }
        let path = std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let path = path.canonicalize()?;
        Ok(Archive {
            // fsync: a commit record must never outlive (a power loss) the files it names
            store: Arc::new(LocalFileSystem::new_with_prefix(&path)?.with_fsync(true)),
            prefix: ObjectPath::default(),
            location: path.display().to_string(),
            retry_for: RETRY_FOR,
            s3: None,
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

/// Whether a URL names a cloud store (which takes options).
pub fn is_cloud(url: &str) -> bool {
    ["s3://", "gs://", "az://"].iter().any(|scheme| url.starts_with(scheme))
}

/// In-memory stores by name, so that every `memory://name` of a process
/// (a pipeline, then a reader in a test) is the same store.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<InMemory>>>> =
        std::sync::OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock().expect("not poisoned");
    stores.entry(name.to_string()).or_insert_with(|| Arc::new(InMemory::new())).clone()
}

/// Files above this size go up as multipart uploads, in parts of `PART_SIZE`
/// (S3's least is 5 MiB).
const MULTIPART_ABOVE: usize = 16 << 20;
const PART_SIZE: usize = 8 << 20;

static CREATE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Writes a complete file, retrying through outages (`retrying`). It becomes
/// visible only whole. Single uploads use `PutMode::Create`, so an existing
/// object is never overwritten where the store enforces it; names carry a
/// fresh UUIDv7 (or an index the writer owns) either way, so an object that
/// exists already with the same bytes is this upload's own earlier attempt.
pub async fn commit_file(archive: &Archive, path: &ObjectPath, bytes: bytes::Bytes) -> anyhow::Result<()> {
    retrying(archive, &format!("upload of {path}"), || put_once(archive, path, bytes.clone(), true)).await
}

/// Uploads the closed file at `staging` to `path` like [`commit_file`] and
/// returns its SHA-256 and size. A file above the multipart threshold is read
/// and sent a part at a time, hashed on the way, so that memory holds a few
/// parts, not the file (files reach `roll_size_mb`, 128 MiB by default); a
/// retried upload reads it again from the start. Reading the staging file is
/// not retried: a local error is final at once.
pub async fn commit_staged(
    archive: &Archive,
    path: &ObjectPath,
    staging: &std::path::Path,
) -> anyhow::Result<([u8; 32], u64)> {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    let unreadable = |e: std::io::Error| Refused(format!("cannot read back {}: {e}", staging.display()));
    let file = std::fs::File::open(staging).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size <= MULTIPART_ABOVE as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        (&file).read_to_end(&mut bytes).map_err(unreadable)?;
        let sha = sha2::Sha256::digest(&bytes).into();
        let size = bytes.len() as u64;
        commit_file(archive, path, bytes.into()).await?;
        return Ok((sha, size));
    }
    retrying(archive, &format!("upload of {path}"), || async {
        (&file).seek(SeekFrom::Start(0)).map_err(unreadable)?;
        let mut hasher = sha2::Sha256::new();
        let mut sent = 0u64;
        let mut writer = WriteMultipart::new_with_chunk_size(archive.store.put_multipart(path).await?, PART_SIZE);
        loop {
            let mut part = Vec::with_capacity(PART_SIZE);
            let read = (&file).take(PART_SIZE as u64).read_to_end(&mut part).map_err(unreadable)?;
            if read == 0 {
                break;
            }
            hasher.update(&part);
            sent += read as u64;
            writer.wait_for_capacity(1).await?;
            writer.put(part.into());
        }
        if sent != size {
            writer.abort().await.ok();
            return Err(Refused(format!("{} changed while it was uploaded", staging.display())).into());
        }
        writer.finish().await.with_context(|| format!("multipart upload of {path}"))?;
        anyhow::Ok((<[u8; 32]>::from(hasher.finalize()), sent))
    })
    .await
}

/// Like [`commit_file`], but always one create-only put, whatever the size
/// (commit records: a multipart upload cannot refuse an existing object).
pub async fn commit_single(archive: &Archive, path: &ObjectPath, bytes: bytes::Bytes) -> anyhow::Result<()> {
    retrying(archive, &format!("upload of {path}"), || put_once(archive, path, bytes.clone(), false)).await
}

async fn put_once(archive: &Archive, path: &ObjectPath, bytes: bytes::Bytes, multipart: bool) -> anyhow::Result<()> {
    if multipart && bytes.len() > MULTIPART_ABOVE {
        let upload = archive.store.put_multipart(path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for chunk in bytes.chunks(PART_SIZE) {
            writer.wait_for_capacity(2).await?;
            writer.put(bytes.slice_ref(chunk));
        }
        writer.finish().await.with_context(|| format!("multipart upload of {path}"))?;
        return Ok(());
    }
    let payload = PutPayload::from_bytes(bytes.clone());
    if !CREATE_UNSUPPORTED.load(Ordering::Relaxed) {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match archive.store.put_opts(path, payload.clone(), opts).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = archive.store.get(path).await?.bytes().await?;
                if existing == bytes {
                    return Ok(());
                }
                return Err(Conflict(format!("{path} already exists with other content")).into());
            }
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

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Nobody, the root account included, can delete or shorten it before the date.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can.
    Governance,
}

/// Sets S3 Object Lock retention on an object (`PutObjectRetention`):
/// its current version cannot be deleted or overwritten before `until`.
/// `object_store` has no call for it, so this signs the request with the
/// store's credentials (a presigned URL with its headers bound to the
/// signature) and sends it. A bucket without Object Lock, or a store without
/// the API, refuses it: that is final, never retried.
pub async fn lock_object(
    archive: &Archive,
    path: &ObjectPath,
    mode: LockMode,
    until: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    use base64::Engine;
    use md5::Digest;
    use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
    let s3 =
        archive.s3.as_ref().with_context(|| format!("Object Lock needs an s3:// archive, not {}", archive.location))?;
    let mode_name = match mode {
        LockMode::Compliance => "COMPLIANCE",
        LockMode::Governance => "GOVERNANCE",
    };
    let body = format!(
        "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{mode_name}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
    let md5_header = HeaderValue::from_str(&md5).expect("base64 is a header value");
    let options = SignedUrlOptions::new()
        .with_query([("retention", "")])
        .with_signed_header(HeaderName::from_static("content-md5"), md5_header.clone());
    retrying(archive, &format!("Object Lock on {path}"), || async {
        let url = s3.signed_url_opts(Method::PUT, path, Duration::from_secs(300), &options).await?;
        let response = lock_client()
            .put(url)
            .header("content-md5", md5_header.clone())
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("Object Lock on {path}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        // an S3 error body: <Error><Code>…</Code><Message>…</Message>…</Error>
        let tag = |name: &str| {
            let start = text.find(&format!("<{name}>"))? + name.len() + 2;
            Some(text[start..].split('<').next()?.to_string())
        };
        let why = match (tag("Code"), tag("Message")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => text.trim().chars().take(300).collect(),
        };
        let message = format!("the store refused Object Lock on {path} ({status}; {why})");
        // a client error, or an API the store does not have, is final
        match status.is_client_error() || status == reqwest::StatusCode::NOT_IMPLEMENTED {
            true => Err(Refused(message).into()),
            false => Err(anyhow::anyhow!(message)),
        }
    })
    .await
}

fn lock_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

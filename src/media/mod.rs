//! Files sent with messages: what a file is (its type from its bytes as much as from what the
//! client said), whether `[media]` takes it, and storing it once by its sha256 in the database,
//! so that a job never depends on a file elsewhere and a backup carries it. Fetching a file
//! from a client's URL, guarded against reaching internal addresses, is `fetch.rs`.

mod fetch;
pub mod guard;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::MediaConfig;
use crate::db::media::MediaRow;
use crate::db::{Db, DbError, Durability};

pub use fetch::Fetched;

/// Why a file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than [media] max_bytes ({max} bytes)")]
    TooLarge { max: usize },
    #[error("files of type {0} are not accepted here ([media] allowed_types)")]
    TypeNotAllowed(String),
    #[error("{0}")]
    TypeMismatch(String),
    #[error(
        "fetching media from a URL is off ([media] url_fetch = false); upload it to POST /api/media and send its id"
    )]
    UrlFetchOff,
    #[error("the URL is refused: {0}")]
    UrlRefused(String),
    #[error("the URL could not be fetched: {0}")]
    FetchFailed(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A file checked and named, ready to store.
#[derive(Debug)]
pub struct Prepared {
    pub row: MediaRow,
    pub data: Vec<u8>,
}

/// The media area: the rules of `[media]` and the guarded URL fetcher.
pub struct Media {
    config: MediaConfig,
    fetcher: fetch::Fetcher,
}

impl Media {
    pub fn new(config: &MediaConfig) -> anyhow::Result<Arc<Media>> {
        Ok(Arc::new(Media {
            config: config.clone(),
            fetcher: fetch::Fetcher::new(config)?,
        }))
    }

    /// Whether sends may name a file by URL (`[media] url_fetch`).
    pub fn fetches_urls(&self) -> bool {
        self.config.url_fetch
    }

    pub fn max_bytes(&self) -> usize {
        self.config.max_bytes.0
    }

    /// Checks a file and gives it its type, name and id. The type is what the client said
    /// unless it said nothing or `application/octet-stream`: then what the bytes are, else
    /// what the file name's extension says. A photo, video or audio type must match the bytes.
    pub fn prepare(
        &self,
        data: Vec<u8>,
        declared: Option<&str>,
        filename: Option<&str>,
    ) -> Result<Prepared, MediaError> {
        if data.is_empty() {
            return Err(MediaError::Empty);
        }
        if data.len() > self.max_bytes() {
            return Err(MediaError::TooLarge {
                max: self.max_bytes(),
            });
        }
        let filename = filename.map(clean_filename).filter(|f| !f.is_empty());
        let sniffed = infer::get(&data).map(|t| t.mime_type().to_string());
        let declared = declared
            .and_then(|d| d.parse::<mime::Mime>().ok())
            .map(|m| m.essence_str().to_ascii_lowercase())
            .filter(|m| m != "application/octet-stream");
        let mime = declared
            .clone()
            .or_else(|| sniffed.clone())
            .or_else(|| {
                let f = filename.as_deref()?;
                mime_guess::from_path(f)
                    .first()
                    .map(|m| m.essence_str().to_string())
            })
            .unwrap_or_else(|| "application/octet-stream".to_string());
        if let Some(d) = &declared {
            check_bytes_match(d, sniffed.as_deref())?;
        }
        if !self.config.allows(&mime) {
            return Err(MediaError::TypeNotAllowed(mime));
        }
        let filename = filename.unwrap_or_else(|| default_filename(&mime));
        let sha256 = hex::encode(Sha256::digest(&data));
        let id = media_id(&sha256, &mime, &filename);
        Ok(Prepared {
            row: MediaRow {
                id,
                sha256,
                bytes: data.len() as i64,
                mime_type: mime,
                filename,
                created_at: 0,
            },
            data,
        })
    }

    /// Stores a prepared file (the bytes only once per sha256). True when it is new.
    pub async fn store(
        &self,
        db: &Db,
        p: Prepared,
        now: i64,
    ) -> Result<(MediaRow, bool), MediaError> {
        let Prepared { mut row, data } = p;
        let data = Arc::new(data);
        let r = row.clone();
        let created = db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { crate::db::media::insert(c, &r, &data, now).await })
            })
            .await?;
        row.created_at = now;
        Ok((row, created))
    }

    /// Fetches a file from a client's URL under `[media]`'s rules, and prepares it.
    pub async fn fetch(&self, url: &str) -> Result<Prepared, MediaError> {
        if !self.config.url_fetch {
            return Err(MediaError::UrlFetchOff);
        }
        let f = self.fetcher.get(url).await?;
        self.prepare(f.data, f.content_type.as_deref(), f.filename.as_deref())
    }
}

/// A media id: from the bytes, the type and the name, so the same upload is the same media.
fn media_id(sha256: &str, mime: &str, filename: &str) -> String {
    let mut h = Sha256::new();
    for part in [sha256, mime, filename] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("med_{}", &hex::encode(h.finalize())[..32])
}

/// A file name as a person would see it: the last path segment, no control characters, at
/// most 200 characters.
fn clean_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    let clean = clean.trim();
    if clean == "." || clean == ".." {
        String::new()
    } else {
        clean.to_string()
    }
}

/// `file.<ext>`, with the extension people expect for the common types.
fn default_filename(mime: &str) -> String {
    let ext = match mime {
        "image/jpeg" => Some("jpg"),
        "audio/mpeg" => Some("mp3"),
        "text/plain" => Some("txt"),
        _ => mime_guess::get_mime_extensions_str(mime).and_then(|e| e.first().copied()),
    };
    match ext {
        Some(ext) => format!("file.{ext}"),
        None => "file".to_string(),
    }
}

/// A file declared a photo, a video or audio must be one: WhatsApp shows it inline, and a
/// mislabelled file fails there. Other declared types are taken as said.
fn check_bytes_match(declared: &str, sniffed: Option<&str>) -> Result<(), MediaError> {
    let family = |m: &str| m.split('/').next().unwrap_or("").to_string();
    let want = family(declared);
    if !matches!(want.as_str(), "image" | "video" | "audio") {
        return Ok(());
    }
    match sniffed {
        Some(s) if family(s) == want => Ok(()),
        // Audio formats the sniffer does not know are taken as said.
        None if want == "audio" => Ok(()),
        Some(s) => Err(MediaError::TypeMismatch(format!(
            "the file says {declared}, but its bytes are {s}"
        ))),
        None => Err(MediaError::TypeMismatch(format!(
            "the file says {declared}, but its bytes are not a known {want} format"
        ))),
    }
}

/// Deletes files no job refers to once `keep` has passed since their last use, every
/// `interval`, until `cancel`. A `keep` of zero keeps them all.
pub async fn prune_unused(
    db: Db,
    node: Arc<crate::cluster::Node>,
    keep: Duration,
    interval: Duration,
    clock: crate::time::Clock,
    cancel: CancellationToken,
) {
    if keep.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        // One node of a cluster prunes.
        if !node.leads() {
            continue;
        }
        let before = clock.now_ms() - keep.as_millis() as i64;
        let r = db
            .writer
            .exec(Durability::Relaxed, move |c| {
                Box::pin(async move { crate::db::media::prune(c, before, 500).await })
            })
            .await;
        match r {
            Ok((0, _)) => {}
            Ok((media, blobs)) => {
                tracing::info!(media, blobs, "🧹 Pruned {media} unused media file(s)")
            }
            Err(e) => tracing::warn!(error = %e, "pruning unused media failed; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media() -> Arc<Media> {
        Media::new(&MediaConfig::default()).unwrap()
    }

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";

    #[test]
    fn the_type_comes_from_the_client_then_the_bytes_then_the_name() {
        let m = media();
        let p = m
            .prepare(PDF.to_vec(), None, Some("../../etc/invoice.pdf"))
            .unwrap();
        assert_eq!(p.row.mime_type, "application/pdf");
        assert_eq!(p.row.filename, "invoice.pdf");
        let p = m
            .prepare(
                b"a,b\n1,2\n".to_vec(),
                Some("application/octet-stream"),
                Some("t.csv"),
            )
            .unwrap();
        assert_eq!(p.row.mime_type, "text/csv");
        let p = m
            .prepare(JPEG.to_vec(), Some("image/jpeg; q=1"), None)
            .unwrap();
        assert_eq!(
            (p.row.mime_type.as_str(), p.row.filename.as_str()),
            ("image/jpeg", "file.jpg")
        );
    }

    #[test]
    fn a_photo_must_be_a_photo_and_the_type_must_be_allowed() {
        let m = media();
        assert!(matches!(
            m.prepare(PDF.to_vec(), Some("image/jpeg"), None),
            Err(MediaError::TypeMismatch(_))
        ));
        assert!(matches!(
            m.prepare(b"MZ\x90\0".to_vec(), None, Some("setup.exe")),
            Err(MediaError::TypeNotAllowed(_))
        ));
        assert!(matches!(
            m.prepare(Vec::new(), None, None),
            Err(MediaError::Empty)
        ));
        let small = Media::new(&MediaConfig {
            max_bytes: crate::config::ByteSize(4),
            ..MediaConfig::default()
        })
        .unwrap();
        assert!(matches!(
            small.prepare(PDF.to_vec(), None, None),
            Err(MediaError::TooLarge { max: 4 })
        ));
    }

    #[test]
    fn the_same_upload_is_the_same_media_and_a_new_name_a_new_one() {
        let m = media();
        let a = m.prepare(PDF.to_vec(), None, Some("a.pdf")).unwrap();
        let a2 = m.prepare(PDF.to_vec(), None, Some("a.pdf")).unwrap();
        let b = m.prepare(PDF.to_vec(), None, Some("b.pdf")).unwrap();
        assert_eq!(a.row.id, a2.row.id);
        assert_ne!(a.row.id, b.row.id);
        assert_eq!(a.row.sha256, b.row.sha256);
        assert!(a.row.id.starts_with("med_") && a.row.id.len() == 36);
    }
}

//! Static files from `static.dir`: safe path resolution, content types,
//! `Last-Modified` / `If-Modified-Since`, and the built-in pages embedded in
//! the binary when no directory is configured (plus the icon, served even
//! with a directory when it has no icon of its own).

use crate::proto::http::request;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a path cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// 404: no such file (or a directory without an index file).
    NotFound,
    /// 403: the path tries to leave the root, or names something that is not a regular file.
    Forbidden(&'static str),
    /// 400: the path is not valid percent-encoded UTF-8.
    BadPath(&'static str),
}

/// Percent-decodes a URL path ([`request::percent_decode`]; a failure is a 400).
pub fn percent_decode(path: &str) -> Result<String, Denied> {
    request::percent_decode(path).map_err(Denied::BadPath)
}

/// Maps a URL path to a relative file path under the root, refusing any
/// attempt to climb out of it (`..` segments, encoded or not; backslashes; NUL).
pub fn relative_path(url_path: &str) -> Result<PathBuf, Denied> {
    let decoded = percent_decode(url_path)?;
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => continue,
            ".." => return Err(Denied::Forbidden("the path climbs out of the static root")),
            s if s.contains('\\') || s.contains('\0') => {
                return Err(Denied::Forbidden("the path has a backslash or NUL byte"))
            }
            s => rel.push(s),
        }
    }
    Ok(rel)
}

/// A file chosen to be served.
#[derive(Debug)]
pub struct Resolved {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub content_type: &'static str,
}

/// Resolves `url_path` under `root` (which must be canonical): follows symlinks
/// but refuses any whose target lies outside the root.
pub fn resolve(root: &Path, url_path: &str, index: &str) -> Result<Resolved, Denied> {
    let rel = relative_path(url_path)?;
    let mut full = root.join(&rel);
    let mut meta = std::fs::metadata(&full).map_err(|_| Denied::NotFound)?;
    if meta.is_dir() {
        full.push(index);
        meta = std::fs::metadata(&full).map_err(|_| Denied::NotFound)?;
    }
    let real = std::fs::canonicalize(&full).map_err(|_| Denied::NotFound)?;
    if !real.starts_with(root) {
        return Err(Denied::Forbidden("the path leads outside the static root"));
    }
    if !meta.is_file() {
        return Err(Denied::Forbidden("not a regular file"));
    }
    Ok(Resolved {
        content_type: content_type(&real),
        path: real,
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// `Content-Type` by file extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// Whether `If-Modified-Since` lets us answer 304 (HTTP dates have whole seconds).
pub fn not_modified(modified: Option<SystemTime>, if_modified_since: Option<&[u8]>) -> bool {
    let (Some(m), Some(ims)) = (modified, if_modified_since) else {
        return false;
    };
    let Ok(ims) = std::str::from_utf8(ims) else {
        return false;
    };
    let Ok(since) = httpdate::parse_http_date(ims.trim()) else {
        return false;
    };
    let m_secs = m
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    let s_secs = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    m_secs <= s_secs
}

/// A page or asset embedded in the binary.
pub struct Embedded {
    pub path: &'static str,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
/// Pages: revalidated on every load, so a new binary shows its new pages.
const PAGE: &str = "no-cache";
/// Vendored assets have the version in their URL: cached for good.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const fn page(path: &'static str, body: &'static [u8]) -> Embedded {
    Embedded {
        path,
        content_type: HTML,
        cache_control: PAGE,
        body,
    }
}

const fn asset(path: &'static str, body: &'static [u8]) -> Embedded {
    Embedded {
        path,
        content_type: JS,
        cache_control: IMMUTABLE,
        body,
    }
}

/// htmx and its SSE and WebSocket extensions (src/assets/vendor/README.md),
/// served whether or not `static.dir` is set (the dashboard needs them).
pub static VENDOR: &[Embedded] = &[
    asset(
        "/assets/htmx-2.0.11.min.js",
        include_bytes!("../assets/vendor/htmx-2.0.11.min.js"),
    ),
    asset(
        "/assets/htmx-ext-sse-2.2.4.js",
        include_bytes!("../assets/vendor/htmx-ext-sse-2.2.4.js"),
    ),
    asset(
        "/assets/htmx-ext-ws-2.0.4.js",
        include_bytes!("../assets/vendor/htmx-ext-ws-2.0.4.js"),
    ),
];

/// Icons: unversioned URLs, so cached for a week rather than for good.
pub const ICON_CACHE: &str = "public, max-age=604800";

/// ringcast's icon (an orange ring; favicon.ico holds it at 16 and 32 px).
/// Every built-in page links it; `static.dir`'s own favicon wins over it.
pub static ICONS: &[Embedded] = &[
    Embedded {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        cache_control: ICON_CACHE,
        body: include_bytes!("../assets/favicon.svg"),
    },
    Embedded {
        path: "/favicon.ico",
        content_type: "image/x-icon",
        cache_control: ICON_CACHE,
        body: include_bytes!("../assets/favicon.ico"),
    },
];

/// The built-in pages served when `static.dir` is not set: the landing page
/// and the live demos.
pub static EMBEDDED: &[Embedded] = &[
    page("/", include_bytes!("../assets/index.html")),
    page(
        "/demo/notifications",
        include_bytes!("../assets/demo/notifications.html"),
    ),
    page("/demo/chat", include_bytes!("../assets/demo/chat.html")),
    page(
        "/demo/tickers",
        include_bytes!("../assets/demo/tickers.html"),
    ),
    page(
        "/demo/progress",
        include_bytes!("../assets/demo/progress.html"),
    ),
    page(
        "/demo/eventsource",
        include_bytes!("../assets/demo/eventsource.html"),
    ),
    page(
        "/demo/websocket",
        include_bytes!("../assets/demo/websocket.html"),
    ),
];

/// The live dashboard page (`dashboard.path`).
pub static DASHBOARD: Embedded = page("/dashboard", include_bytes!("../assets/dashboard.html"));

/// The embedded page for a URL path (`/index.html` is `/`).
pub fn embedded(path: &str) -> Option<&'static Embedded> {
    let path = if path == "/index.html" { "/" } else { path };
    EMBEDDED
        .iter()
        .chain(VENDOR.iter())
        .chain(ICONS.iter())
        .find(|e| e.path == path)
}

/// The built-in icon for a URL path: what `static.dir` serves when it has
/// no such file of its own.
pub fn icon(path: &str) -> Option<&'static Embedded> {
    ICONS.iter().find(|e| e.path == path)
}

/// A vendored asset by URL path.
pub fn vendor(path: &str) -> Option<&'static Embedded> {
    VENDOR.iter().find(|e| e.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/a/%2e%2e/%2e%2e/x",
            "/a\\..\\b",
            "/a%5c..%5cb",
            "/a%00b",
        ] {
            assert!(
                matches!(relative_path(p), Err(Denied::Forbidden(_))),
                "{p} -> {:?}",
                relative_path(p)
            );
        }
        assert!(matches!(relative_path("/%zz"), Err(Denied::BadPath(_))));
        assert!(matches!(relative_path("/%ff"), Err(Denied::BadPath(_))));
    }

    #[test]
    fn absolute_and_dot_paths_stay_inside() {
        assert_eq!(
            relative_path("//etc/passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(relative_path("/./a/./b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            relative_path("/a%20b.txt").unwrap(),
            PathBuf::from("a b.txt")
        );
    }

    #[test]
    fn icons_are_embedded_with_their_types() {
        let ico = embedded("/favicon.ico").unwrap();
        assert_eq!(ico.content_type, "image/x-icon");
        assert_eq!(&ico.body[..4], &[0, 0, 1, 0], "an ICO header");
        let svg = icon("/favicon.svg").unwrap();
        assert_eq!(svg.content_type, "image/svg+xml");
        assert!(svg.body.starts_with(b"<svg"));
        assert!(
            vendor("/favicon.ico").is_none(),
            "static.dir's own icon wins"
        );
    }

    #[test]
    fn types() {
        assert_eq!(
            content_type(Path::new("a/b.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn conditional() {
        let t = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert!(not_modified(
            Some(t),
            Some(b"Sun, 06 Nov 1994 08:49:37 GMT")
        ));
        assert!(!not_modified(
            Some(t),
            Some(b"Sun, 06 Nov 1994 08:49:36 GMT")
        ));
        assert!(!not_modified(Some(t), Some(b"garbage")));
        assert!(!not_modified(None, Some(b"Sun, 06 Nov 1994 08:49:37 GMT")));
    }
}

//! Fetching a file from a URL a client gave, once, at enqueue, so the job never depends on it
//! later. Every URL (the first and each redirect) must pass the rules of `[media]` before
//! anything connects: scheme, host list, and no loopback, private or link-local address. Names
//! are checked where they are resolved (the client's resolver), so what is checked is what is
//! connected to: a name that resolves to an internal address is refused without a connection,
//! and a later answer cannot swap the address (DNS rebinding). No proxy is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};

use super::MediaError;
use super::guard::is_public;
use crate::config::MediaConfig;

/// What a URL gave.
#[derive(Debug)]
pub struct Fetched {
    pub data: Vec<u8>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

/// A refusal by the rules, carried through the HTTP client's errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// The rules every URL is held to before a connection.
#[derive(Clone)]
struct Rules {
    allow_http: bool,
    allow_private: bool,
    hosts: Vec<String>,
    max_redirects: usize,
}

impl Rules {
    fn check(&self, url: &Url) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(Refused(
                    "only https URLs are fetched ([media] url_allow_http = false)".into(),
                ));
            }
            s => return Err(Refused(format!("{s}: URLs are not fetched; use https"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused("URLs with credentials are not fetched".into()));
        }
        let Some(host) = url.host_str() else {
            return Err(Refused("the URL has no host".into()));
        };
        let host = host.to_ascii_lowercase();
        if !self.hosts.is_empty() {
            let port = url.port_or_known_default().unwrap_or(0);
            let with_port = format!("{host}:{port}");
            let listed = self
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&with_port));
            if !listed {
                return Err(Refused(format!("{host} is not in [media] url_allow_hosts")));
            }
        }
        // An address written in the URL is never resolved: check it here.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.check_ip(ip)?;
        }
        Ok(())
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(Refused(format!(
                "{ip} is a loopback, private or link-local address ([media] url_allow_private = false)"
            )))
        }
    }
}

/// Resolves names, and refuses them when any address is not public.
struct GuardedResolver(Rules);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                rules
                    .check_ip(a.ip())
                    .map_err(|r| Refused(format!("{host} resolves to {}: {}", a.ip(), r.0)))?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub(super) struct Fetcher {
    client: reqwest::Client,
    rules: Rules,
    max_bytes: usize,
    timeout: Duration,
}

impl Fetcher {
    pub(super) fn new(config: &MediaConfig) -> anyhow::Result<Fetcher> {
        let rules = Rules {
            allow_http: config.url_allow_http,
            allow_private: config.url_allow_private,
            hosts: config.url_allow_hosts.clone(),
            max_redirects: config.url_max_redirects,
        };
        let policy_rules = rules.clone();
        let policy = Policy::custom(move |attempt: Attempt| {
            if attempt.previous().len() > policy_rules.max_redirects {
                return attempt.error(Refused(format!(
                    "more than {} redirects ([media] url_max_redirects)",
                    policy_rules.max_redirects
                )));
            }
            match policy_rules.check(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(r) => attempt.error(Refused(format!("a redirect: {}", r.0))),
            }
        });
        let timeout = config.url_timeout.0;
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(rules.clone())))
            .redirect(policy)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wa-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Fetcher {
            client,
            rules,
            max_bytes: config.max_bytes.0,
            timeout,
        })
    }

    pub(super) async fn get(&self, raw: &str) -> Result<Fetched, MediaError> {
        let url = Url::parse(raw).map_err(|e| MediaError::UrlRefused(format!("not a URL: {e}")))?;
        self.rules
            .check(&url)
            .map_err(|r| MediaError::UrlRefused(r.0))?;
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.failure(e))?;
        if !resp.status().is_success() {
            return Err(MediaError::FetchFailed(format!(
                "the server answered {}",
                resp.status()
            )));
        }
        let too_large = MediaError::TooLarge {
            max: self.max_bytes,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large);
        }
        let content_type = header(&resp, reqwest::header::CONTENT_TYPE);
        let filename = header(&resp, reqwest::header::CONTENT_DISPOSITION)
            .and_then(|d| disposition_filename(&d))
            .or_else(|| {
                let last = resp.url().path_segments()?.next_back()?;
                let name = percent_encoding::percent_decode_str(last)
                    .decode_utf8_lossy()
                    .to_string();
                (!name.is_empty()).then_some(name)
            });
        let mut data = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.failure(e))? {
            if data.len() + chunk.len() > self.max_bytes {
                return Err(too_large);
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            data,
            content_type,
            filename,
        })
    }

    /// A client error as a refusal (the rules said no) or a failure (the server did).
    fn failure(&self, e: reqwest::Error) -> MediaError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(r) = s.downcast_ref::<Refused>() {
                return MediaError::UrlRefused(r.0.clone());
            }
            source = s.source();
        }
        if e.is_timeout() {
            return MediaError::FetchFailed(format!(
                "no complete answer within [media] url_timeout ({})",
                humantime::format_duration(self.timeout)
            ));
        }
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        MediaError::FetchFailed(message)
    }
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `attachment; filename="invoice.pdf"` → `invoice.pdf`.
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case("filename"))
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hosts: &[&str], http: bool) -> Rules {
        Rules {
            allow_http: http,
            allow_private: false,
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            max_redirects: 3,
        }
    }

    fn check(r: &Rules, url: &str) -> Result<(), String> {
        r.check(&Url::parse(url).unwrap()).map_err(|e| e.0)
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let r = rules(&[], false);
        assert!(check(&r, "https://files.example.com/a.pdf").is_ok());
        assert!(
            check(&r, "http://files.example.com/a.pdf")
                .unwrap_err()
                .contains("https")
        );
        assert!(check(&r, "ftp://files.example.com/a.pdf").is_err());
        assert!(check(&r, "https://user:pw@files.example.com/").is_err());
        for internal in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://0x7f.1/",
            "https://2130706433/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:192.168.0.1]/",
        ] {
            assert!(check(&r, internal).is_err(), "{internal} must be refused");
        }
        let listed = rules(&["files.example.com", "cdn.example.com:8443"], true);
        assert!(check(&listed, "https://FILES.example.com/x").is_ok());
        assert!(check(&listed, "https://cdn.example.com:8443/x").is_ok());
        assert!(check(&listed, "https://cdn.example.com/x").is_err());
        assert!(check(&listed, "https://evil.example.com/x").is_err());
    }

    #[test]
    fn a_disposition_names_the_file() {
        assert_eq!(
            disposition_filename("attachment; filename=\"invoice 7.pdf\"").as_deref(),
            Some("invoice 7.pdf")
        );
        assert_eq!(disposition_filename("inline").as_deref(), None);
    }
}

//! What operators do to sessions at run time: create, change, start, stop, restart, log out,
//! delete, and ask for a pairing code. One change at a time (`ops`), so the browser count that
//! `max_browsers` checks is exact.

use std::sync::Arc;

use super::{NewSession, NumberCheck, Session, SessionChange, SessionError, Sessions, driver};
use crate::config::DriverKind;
use crate::db::Durability;
use crate::db::sessions::{self as rows, SessionRow};
use crate::events::Events;
use crate::whatsapp::SessionState;

impl Sessions {
    /// Creates a session and, unless told not to, starts it.
    pub async fn create(&self, new: NewSession) -> Result<Arc<Session>, SessionError> {
        if !crate::config::valid_session_name(&new.name) {
            return Err(SessionError::Invalid(format!(
                "the name {:?} must match ^[a-z0-9][a-z0-9_-]{{0,31}}$",
                new.name
            )));
        }
        self.check_pacing(&new.settings)?;
        let _op = self.ops.lock().await;
        if self.get(&new.name).is_ok() {
            return Err(SessionError::Exists(new.name));
        }
        if new.start && new.driver == DriverKind::Webdriver {
            let running = self.browsers();
            if running >= self.max_browsers {
                return Err(SessionError::Capacity {
                    running,
                    max: self.max_browsers,
                });
            }
        }
        let now = crate::time::now_ms();
        let mut row = SessionRow::new(&new.name, new.driver, new.start, now);
        new.settings.apply(&mut row);
        let stored = row.clone();
        let inserted = self
            .db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { rows::insert(c, &stored).await })
            })
            .await?;
        if !inserted {
            return Err(SessionError::Exists(new.name));
        }
        let s = self.register(row);
        tracing::info!(session = %s.name, driver = new.driver.as_str(), "📱 Session {} created", s.name);
        if new.start {
            self.launch(&s)?;
        }
        Ok(s)
    }

    /// Pacing rules a session may set: the file's with them on top must hold.
    fn check_pacing(&self, change: &SessionChange) -> Result<(), SessionError> {
        match &change.pacing {
            Some(own) => self
                .config
                .pacing
                .resolve(own)
                .map(|_| ())
                .map_err(|e| SessionError::Invalid(format!("pacing: {e}"))),
            None => Ok(()),
        }
    }

    /// Changes settings at run time; a browser setting restarts that browser only.
    pub async fn update(
        &self,
        name: &str,
        change: SessionChange,
    ) -> Result<Arc<Session>, SessionError> {
        self.check_pacing(&change)?;
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        let relaunch = {
            let mut row = s.row.lock().expect("row lock");
            change.apply(&mut row) && row.driver == DriverKind::Webdriver
        };
        self.store(&s).await?;
        s.configure_lane(&self.config.pacing);
        if relaunch && s.sender().is_some() {
            tracing::info!(
                session = name,
                "♻️ Session {name}: browser settings changed; starting its browser again"
            );
            self.halt(&s, SessionState::Restarting, "browser settings changed")
                .await;
            self.launch(&s)?;
        }
        Ok(s)
    }

    /// Starts a stopped session (and keeps it started across restarts).
    pub async fn start(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.launch(&s)?;
        s.row.lock().expect("row lock").started = true;
        self.store(&s).await?;
        Ok(s)
    }

    /// Stops a session (and keeps it stopped across restarts); its jobs wait.
    pub async fn stop(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.halt(&s, SessionState::Stopped, "stopped through the API")
            .await;
        s.row.lock().expect("row lock").started = false;
        self.store(&s).await?;
        tracing::info!(session = name, "⏹️ Session {name} stopped");
        Ok(s)
    }

    /// Restarts the session's browser with the same profile (no new scan); starts a stopped
    /// session.
    pub async fn restart(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let s = self.get(name)?;
        match s.sender() {
            Some(sender) if sender.restart("restart requested through the API") => Ok(s),
            Some(_) => {
                let _op = self.ops.lock().await;
                self.halt(&s, SessionState::Restarting, "restart requested")
                    .await;
                self.launch(&s)?;
                Ok(s)
            }
            None => self.start(name).await,
        }
    }

    /// Unlinks the device: the driver stops, the profile is deleted (the next start shows a
    /// new QR), and the session stays stopped in `logged_out`.
    pub async fn logout(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        // First from the page, so that the phone no longer lists the device.
        if let Some(sender) = s.sender() {
            match tokio::time::timeout(std::time::Duration::from_secs(30), sender.log_out()).await {
                Ok(Ok(true)) => tracing::info!(
                    session = name,
                    "🚪 Session {name}: logged out from WhatsApp Web"
                ),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(session = name, code = %e.code, "Session {name}: logging out from the page failed ({}); the phone may still list the device: remove it there", e.message)
                }
                Err(_) => tracing::warn!(
                    session = name,
                    "Session {name}: logging out from the page took over 30s; the phone may still list the device: remove it there"
                ),
            }
        }
        self.halt(
            &s,
            SessionState::LoggedOut,
            "logged out through the API; start it to link again",
        )
        .await;
        driver::remove_profile(&self.config, name).map_err(|e| SessionError::Io(e.to_string()))?;
        {
            let mut row = s.row.lock().expect("row lock");
            row.started = false;
            row.me = None;
        }
        self.store(&s).await?;
        // The next link may be another number: its warm-up starts again.
        let n = name.to_string();
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move { crate::db::pacing::set_linked(c, &n, None).await })
            })
            .await?;
        s.lane.set_linked(None);
        self.events
            .publish(Events::whatsapp_now(&s.name, s.status()));
        tracing::info!(
            session = name,
            "🚪 Session {name} logged out; its profile is deleted"
        );
        Ok(s)
    }

    /// Deletes a session: stops it, fails its waiting jobs (`session_deleted`), deletes its
    /// row and its profile.
    pub async fn delete(&self, name: &str) -> Result<u64, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        // No new job can name it from here on.
        self.map.write().expect("sessions lock").remove(name);
        self.halt(&s, SessionState::Stopped, "deleted").await;
        self.queue.close_lane(name).await;
        let failed = self.queue.fail_session(name).await?;
        let n = name.to_string();
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    crate::db::pacing::forget_session(c, &n).await?;
                    rows::delete(c, &n).await
                })
            })
            .await?;
        driver::remove_session_dir(&self.config, name)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        tracing::info!(session = name, failed, "🗑️ Session {name} deleted");
        Ok(failed)
    }

    /// Whether `number` (international digits) is on WhatsApp, asked through the session's
    /// driver without sending; an answer younger than `number_check_ttl` is reused.
    pub async fn check_number(
        &self,
        name: &str,
        number: &str,
    ) -> Result<NumberCheck, SessionError> {
        let s = self.get(name)?;
        let now = crate::time::now_ms();
        let ttl = self.config.whatsapp.number_check_ttl.0.as_millis() as i64;
        let cached = s.checks.lock().expect("checks lock").get(number).copied();
        if let Some((exists, at)) = cached
            && now - at < ttl
        {
            return Ok(NumberCheck {
                exists,
                checked_at: at,
                cached: true,
            });
        }
        let sender = s
            .sender()
            .ok_or_else(|| SessionError::Stopped(name.to_string()))?;
        let masked = crate::domain::mask_number(number);
        tracing::info!(session = name, "🔍 Validating contact for {masked}@c.us");
        let exists = sender
            .check_number(number)
            .await
            .map_err(|e| match e.code.as_str() {
                "not-supported" => SessionError::Driver {
                    code: e.code,
                    message: e.message,
                },
                _ => SessionError::NotReady {
                    code: e.code,
                    message: e.message,
                },
            })?;
        if exists {
            tracing::info!(
                session = name,
                "✅ Contact validation successful for {masked}"
            );
        } else {
            tracing::info!(session = name, "❌ {masked} is not on WhatsApp");
        }
        let mut checks = s.checks.lock().expect("checks lock");
        // A small cache: forget the expired answers when it grows.
        if checks.len() >= 10_000 {
            checks.retain(|_, (_, at)| now - *at < ttl);
        }
        checks.insert(number.to_string(), (exists, now));
        Ok(NumberCheck {
            exists,
            checked_at: now,
            cached: false,
        })
    }

    /// Asks the session's WhatsApp Web for a pairing code for `phone`.
    pub async fn pairing_code(&self, name: &str, phone: &str) -> Result<String, SessionError> {
        let s = self.get(name)?;
        let sender = s
            .sender()
            .ok_or_else(|| SessionError::Stopped(name.to_string()))?;
        sender
            .pairing_code(phone)
            .await
            .map_err(|e| SessionError::Driver {
                code: e.code,
                message: e.message,
            })
    }
}

//! What operators do to sessions at run time: create, change, start, stop, restart, log out,
//! delete, and ask for a pairing code. One change at a time (`ops`), so the browser count that
//! `max_browsers` checks is exact.

use std::sync::Arc;

use super::remote::Command;
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
        if new.start && new.driver == DriverKind::Webdriver && self.alone().await? {
            self.check_capacity()?;
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
            self.start_here_or_there(&s).await?;
        }
        Ok(s)
    }

    /// True when no other node is alive on the database (always, with SQLite).
    async fn alone(&self) -> Result<bool, SessionError> {
        let alive = crate::db::owners::alive_nodes(&self.db.read, crate::time::now_ms()).await?;
        Ok(alive.iter().all(|n| **n == **self.node.id()))
    }

    /// Starts the session's driver on this node if it can take it; past `max_browsers` another
    /// node with room takes it, and alone this node refuses. Call under `ops`.
    async fn start_here_or_there(&self, s: &Arc<Session>) -> Result<(), SessionError> {
        match self.own_and_launch(s).await {
            Ok(_) => Ok(()),
            Err(SessionError::Capacity { .. }) if !self.alone().await? => Ok(()),
            Err(e) => Err(e),
        }
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
        // Run elsewhere, its node relaunches the browser when it reads the row.
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

    /// Starts a stopped session (and keeps it started across restarts): here, or on the node
    /// that runs it or has room for it.
    pub async fn start(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        if s.elsewhere().is_none() {
            self.start_here_or_there(&s).await?;
        }
        s.row.lock().expect("row lock").started = true;
        self.store(&s).await?;
        self.wake_owner_loop();
        Ok(s)
    }

    /// Stops a session (and keeps it stopped across restarts); its jobs wait. Run by another
    /// node, that node stops it when it reads the row (within a moment).
    pub async fn stop(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let _op = self.ops.lock().await;
        let s = self.get(name)?;
        self.halt(&s, SessionState::Stopped, "stopped through the API")
            .await;
        s.row.lock().expect("row lock").started = false;
        self.store(&s).await?;
        self.give_up(&s).await;
        tracing::info!(session = name, "⏹️ Session {name} stopped");
        Ok(s)
    }

    /// Restarts the session's browser with the same profile (no new scan); starts a stopped
    /// session.
    pub async fn restart(&self, name: &str) -> Result<Arc<Session>, SessionError> {
        let s = self.get(name)?;
        if s.elsewhere().is_some() {
            self.ask_owner(&s, Command::Restart).await?;
            return Ok(s);
        }
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
        let s = self.get(name)?;
        if s.elsewhere().is_some() {
            self.ask_owner(&s, Command::Logout).await?;
            return Ok(s);
        }
        let _op = self.ops.lock().await;
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
        self.give_up(&s).await;
        // The next link may be another number: its warm-up starts again. No node may bring
        // the old login back.
        let n = name.to_string();
        self.db
            .writer
            .exec(Durability::Durable, move |c| {
                Box::pin(async move {
                    super::profile::forget(c, &n).await?;
                    crate::db::pacing::set_linked(c, &n, None).await
                })
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
        if s.elsewhere().is_some() {
            // Its node closes the browser when it reads the table without the session.
            self.wake_owner_of(&s).await;
        }
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
                    crate::db::owners::forget(c, &n).await?;
                    super::profile::forget(c, &n).await?;
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
        if s.elsewhere().is_some() {
            let answer = self
                .ask_owner(&s, Command::CheckNumber(number.to_string()))
                .await?;
            let v: serde_json::Value = serde_json::from_str(&answer)
                .map_err(|e| SessionError::Io(format!("the session's node answered {e}")))?;
            return Ok(NumberCheck {
                exists: v["exists"].as_bool().unwrap_or(false),
                checked_at: v["checkedAt"].as_i64().unwrap_or(now),
                cached: false,
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
        if s.elsewhere().is_some() {
            return self
                .ask_owner(&s, Command::PairingCode(phone.to_string()))
                .await;
        }
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

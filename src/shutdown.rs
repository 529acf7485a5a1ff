//! SIGINT/SIGTERM → cancel the root token; SIGTERM lets active sends finish.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM.
pub fn on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}

/// SIGHUP reloads the plugins (all checked first, then swapped; a failure keeps the old set).
pub fn reload_on_sighup(
    plugins: std::sync::Arc<crate::plugins::PluginHooks>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!(
                "cannot listen for SIGHUP; reload plugins with POST /api/plugins/reload"
            );
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            tracing::info!("SIGHUP received: reloading plugins");
            let p = plugins.clone();
            match tokio::task::spawn_blocking(move || p.reload()).await {
                Ok(Ok(_)) => {}
                Ok(Err(why)) => {
                    tracing::error!("plugin reload failed, the previous plugins stay: {why}")
                }
                Err(e) => tracing::error!(error = %e, "plugin reload panicked"),
            }
        }
    });
}

//! What runs beside the listeners: the periodic flushes, signing-key
//! reloads and the janitor, and the signal handler that drains first.

use std::time::Duration;

use actix_web::web;
use chrono::Utc;

use crate::app::AppState;
use crate::db;

/// SIGTERM/SIGINT: drain (readiness 503, `Connection: close`, still
/// serving) for `server.drain_s`, then stop accepting and let in-flight
/// requests finish within `server.shutdown_timeout_s`. SIGQUIT: stop now.
pub(super) async fn stop_on_signal(
    server: actix_web::dev::ServerHandle,
    state: web::Data<AppState>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot listen for signals; stop the process with SIGKILL");
        return;
    };
    let graceful = tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => true,
        _ = quit.recv() => false,
    };
    if graceful {
        state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let drain = Duration::from_secs(state.settings.server.drain_s);
        tracing::info!(drain_s = drain.as_secs(), "shutting down: draining");
        tokio::time::sleep(drain).await;
    }
    tracing::info!(graceful, "stopping");
    server.stop(graceful).await;
}

/// Periodic work of a running server: flushes of usage and admin.denied
/// counts, signing-key reloads, the janitor and the status lists' refresh.
pub(super) fn spawn_background(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let settings = state.settings.clone();
        let mut flush =
            tokio::time::interval(Duration::from_millis(settings.usage.flush_interval_ms));
        let mut reload = tokio::time::interval(Duration::from_secs(settings.signing.reload_s));
        let mut janitor = tokio::time::interval(Duration::from_secs(settings.janitor.interval_s));
        let mut status_lists = tokio::time::interval(crate::status_lists::REFRESH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        janitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status_lists.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.tick().await;
        // A replica's lease identity: unique per process.
        let holder = uuid::Uuid::now_v7().to_string();
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(err) = state.usage.flush(&state.pool).await {
                        tracing::warn!(error = %err, "usage flush failed; will retry");
                    }
                    if let Err(err) = state.denials.flush(&state.pool).await {
                        tracing::warn!(error = %err, "admin.denied flush failed; will retry");
                    }
                }
                _ = janitor.tick() => {
                    let st = state.clone();
                    let holder = holder.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        let mut conn = db::connection(&st.pool)?;
                        crate::janitor::run_once(conn.get(), &st.settings, &holder, Utc::now().naive_utc())
                    })
                    .await;
                    match result {
                        Ok(Ok(Some(purged))) if purged != crate::janitor::Purged::default() => {
                            tracing::info!(?purged, "janitor purged expired rows");
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => tracing::warn!(error = %err, "janitor failed"),
                        Err(err) => tracing::warn!(error = %err, "janitor failed"),
                    }
                }
                _ = status_lists.tick() => {
                    if let Err(err) = state.status_lists.refresh(state.status_sources()).await {
                        tracing::warn!(error = %err, "status list refresh failed; requests rebuild them");
                    }
                }
                _ = reload.tick() => {
                    let st = state.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        st.reload_keys()
                    })
                    .await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => tracing::warn!(error = %err, "signing key reload failed"),
                        Err(err) => tracing::warn!(error = %err, "signing key reload failed"),
                    }
                }
            }
        }
    })
}

/// Security-event delivery, on a task of its own: a slow receiver delays
/// only other events, never the flushes or reloads above. A full batch is
/// followed at once by the next; otherwise it waits `events.poll_interval_ms`
/// or until a change on this replica wakes it.
pub(super) fn spawn_events(
    state: web::Data<AppState>,
    holder: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let full = match state.events.tick(state.event_sources(), &holder).await {
                Ok(Some(round)) => {
                    if round != crate::events::Round::default() {
                        tracing::info!(?round, "security events");
                    }
                    round.full
                }
                Ok(None) => false,
                Err(err) => {
                    tracing::warn!(error = %err, "event delivery failed; will retry");
                    false
                }
            };
            if !full {
                state.events.idle().await;
            }
        }
    })
}

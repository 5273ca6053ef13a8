//! This gateway among the gateways sharing the database: its lease, renewed every third of
//! `instance_lease`, and the sessions of gateways that are gone, settled as `interrupted`
//! at start and whenever the lease is renewed. Sessions of live gateways are never touched.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hoop_core::CloseReason;
use hoop_store::{InstanceClaim, NewInstance, Renewal, Store};
use tokio::sync::watch;

use crate::runtime::Running;

/// Registers this gateway as `id` and settles the sessions left open by gateways that are
/// gone, its own previous run among them. Refuses to start while another running gateway
/// has the same `id`: the claim returned must live as long as this gateway serves.
pub(crate) async fn register(
    store: &Store,
    id: &str,
    listen: &str,
    lease: Duration,
) -> anyhow::Result<(NewInstance, InstanceClaim)> {
    let Some(claim) = store
        .claim_instance(id)
        .await
        .context("cannot claim this gateway's instance_id")?
    else {
        anyhow::bail!(
            "another gateway is running with instance_id `{id}` on this database: give each gateway its own `instance_id` (or HOOP_INSTANCE_ID), or stop the other one first"
        );
    };
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let me = NewInstance {
        id: id.to_owned(),
        hostname,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        listen: listen.to_owned(),
    };
    let before = store
        .register_instance(&me, lease)
        .await
        .context("cannot register this gateway instance")?;
    if let Some(before) = before {
        tracing::warn!(
            instance = %id,
            renewed_at = %before.renewed_at,
            "this gateway restarted within its previous run's lease (that run did not stop gracefully)"
        );
    }
    let interrupted = store
        .interrupt_sessions_of_lost_instances(id, true)
        .await
        .context("cannot settle sessions left open")?;
    if interrupted > 0 {
        tracing::warn!(
            sessions = interrupted,
            "sessions left open by a previous run or a gateway that is gone marked interrupted"
        );
    }
    tracing::info!(instance = %id, lease = ?lease, "gateway instance registered");
    Ok((me, claim))
}

/// Renews the lease until `shutdown`, settling the sessions of gateways whose lease ran out
/// at each renewal; then records that this gateway stopped.
pub(crate) fn spawn_lease(
    store: Store,
    me: NewInstance,
    lease: Duration,
    running: Arc<Running>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = (lease / 3).max(Duration::from_millis(200));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|down| *down) => return,
            }
            match store.renew_instance(&me, lease).await {
                Ok(Renewal::Renewed) => {}
                Ok(Renewal::Lapsed) => {
                    tracing::warn!(instance = %me.id, "this gateway's lease had run out (it could not renew it in time): other gateways may have settled its sessions as interrupted");
                    fence(&store, &running).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot renew this gateway's lease");
                    continue;
                }
            }
            match store
                .interrupt_sessions_of_lost_instances(&me.id, false)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    sessions = n,
                    "sessions of a gateway whose lease expired marked interrupted"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot settle sessions of gateways that are gone")
                }
            }
        }
    })
}

/// Ends the sessions running here that another gateway settled while this one's lease had
/// run out: their records say `interrupted`, and they stay so.
async fn fence(store: &Store, running: &Running) {
    for id in running.ids() {
        match store.get_session(&id).await {
            Ok(record) if record.status != "open" => {
                let reason = CloseReason::Error {
                    message: "this gateway's lease ran out and another gateway settled the session"
                        .to_owned(),
                };
                let _ = running.end(&id, reason).await;
            }
            _ => {}
        }
    }
}

/// Records that this gateway stopped: its lease ends now.
pub(crate) async fn stop(store: &Store, id: &str) {
    if let Err(err) = store.stop_instance(id).await {
        tracing::warn!(error = %err, "cannot record that this gateway stopped");
    }
}

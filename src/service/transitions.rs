//! Timed transitions in a cluster (docs/architecture.md §5): the end of a manual state or note
//! and a source report's expiry. Every node notices the deadline and shows it to its own
//! watchers at once — each rendering is made for the moment it is made, so the change that comes
//! back through the backplane later shows them nothing new and every watcher sees the transition
//! once. The cluster-wide effects — the store write and the published change — are carried out
//! by one node: the first to claim the transition in the backplane ([`Backplane::claim`], keyed
//! by presentity, part and deadline). A claim the claimer does not mark done within its hold (it
//! died, or the store failed it) is taken over by the next node to ask; the nodes that lost ask
//! again when it lapses. Appointment boundaries change nothing but renderings: every node
//! handles them on its own.
//!
//! When the backplane does not answer, a node ends a manual state or note itself (the store write
//! is idempotent and the change waits in its outbox), and leaves an expired report to be dropped
//! wherever it is read.

use super::Gateway;
use crate::backplane::{Backplane, Claim, LiveChange, Published};
use crate::error::{GatewayError, Result};
use crate::model::presentity::Presentity;
use crate::model::reports::SourceReport;
use crate::model::sources::Timestamp;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Asking again a little after a claim lapses.
const AFTER_LAPSE: Duration = Duration::from_millis(50);
/// The wait before retrying a claimed transition that failed (the claim is this node's until then).
const RETRY: Duration = crate::backplane::redis::CLAIM_HOLD;

/// One cluster-wide effect of a timed transition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Work {
    /// The manual state, the note or both ended; the latest of their deadlines that has passed.
    EndManual { deadline: Timestamp },
    /// A source's report expired.
    WithdrawReport { source: String, report: SourceReport },
}

impl Work {
    /// The transition's claim key: presentity, part and deadline (ms).
    pub(crate) fn key(&self, uri: &str) -> String {
        match self {
            Work::EndManual { deadline } => format!("{uri}:m:{}", deadline.timestamp_millis()),
            Work::WithdrawReport { source, report } => {
                format!("{uri}:r:{source}:{}", report.expires.map_or(0, |at| at.timestamp_millis()))
            }
        }
    }
}

/// What has come due for `model` at `now`.
pub(crate) fn due(model: &Presentity, now: Timestamp) -> Vec<Work> {
    let manual = model.manual.as_ref().filter(|m| m.has_ended(now)).and_then(|m| m.to);
    let note = model.note.as_ref().filter(|n| !n.is_active(now)).map(|n| n.expires.unwrap_or_default());
    let ended = [manual, note].into_iter().flatten().max().map(|deadline| Work::EndManual { deadline });
    let expired = model.reports.0.iter().filter(|(_, r)| r.expires.is_some_and(|at| at <= now));
    let reports = expired.map(|(source, report)| Work::WithdrawReport { source: source.clone(), report: report.clone() });
    ended.into_iter().chain(reports).collect()
}

impl Gateway {
    /// A presentity's deadline passed on a node of a cluster: this node's watchers see it now,
    /// and each cluster-wide effect is claimed and carried out on a task of its own.
    pub(crate) fn transition_in_cluster(&self, uri: &str) {
        let Some(entry) = self.presence_entry(uri) else { return };
        let work = due(&entry.live.lock().model, self.clock.now());
        self.refresh(uri);
        let Some(gateway) = self.me.upgrade() else { return };
        let uri: Arc<str> = Arc::from(uri);
        for work in work {
            tokio::spawn(carry_out(Arc::downgrade(&gateway), uri.clone(), work));
        }
    }

    /// Carries out a claimed transition. A manual state's end is stored, then published before
    /// this returns (the outbox's copy then changes nothing), so a claim is marked done only once
    /// every node can have it.
    async fn perform(&self, uri: &str, work: &Work) -> Result<()> {
        match work {
            Work::EndManual { .. } => self.end_manual(uri, true).await,
            Work::WithdrawReport { source, .. } => {
                let withdrawn = self.backplane.withdraw_expired(uri, source, self.clock.now()).await;
                withdrawn.map(|_| ()).map_err(|e| GatewayError::internal("withdrawing an expired report", e))
            }
        }
    }

    /// Removes an ended manual state and an expired note from the store and publishes the result.
    async fn end_manual(&self, uri: &str, publish_now: bool) -> Result<()> {
        let now = self.clock.now();
        let result = self.end_presence(uri, now).await?;
        if publish_now {
            let change = LiveChange::Manual { manual: result.manual, note: result.note };
            let published = self.backplane.publish(&[Published { uri: Arc::from(uri), change }]).await;
            published.map_err(|e| GatewayError::internal("publishing the end of a manual state", e))?;
        }
        Ok(())
    }
}

/// Claims one effect and carries it out, or waits for the claimer and takes over if its claim
/// lapses; ends when it is done (by whichever node) or the gateway stops.
async fn carry_out(gateway: Weak<Gateway>, uri: Arc<str>, work: Work) {
    let key = work.key(&uri);
    loop {
        let Some(gw) = gateway.upgrade() else { return };
        let wait = match gw.backplane.claim(&key).await {
            Ok(Claim::Done) => return,
            Ok(Claim::Held(left)) => left,
            Ok(Claim::Won) => match gw.perform(&uri, &work).await {
                Ok(()) => return mark_done(&*gw.backplane, &key).await,
                Err(e) => {
                    tracing::warn!(uri = %uri, error = %e, "could not carry out a timed transition; retrying");
                    RETRY
                }
            },
            Err(e) => {
                tracing::debug!(uri = %uri, error = %e, "no claim without the backplane; ending the manual state here");
                if matches!(work, Work::EndManual { .. }) && gw.end_manual(&uri, false).await.is_err() {
                    tracing::warn!(uri = %uri, "could not store an expiry; retrying at the next transition");
                }
                return;
            }
        };
        drop(gw);
        tokio::time::sleep(wait + AFTER_LAPSE).await;
    }
}

async fn mark_done(backplane: &dyn Backplane, key: &str) {
    if let Err(e) = backplane.claim_done(key).await {
        tracing::debug!(error = %e, "could not mark a timed transition done; the others find it done when its change arrives");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::contact::Profile;
    use crate::model::reports::{PhoneData, ReportData};
    use crate::model::sources::{ManualKind, ManualState, Note};
    use chrono::{Duration as Span, Utc};

    #[test]
    fn what_is_due_names_each_effect_once_with_its_deadline() {
        let now = Utc::now();
        let mut model = Presentity::new(Arc::new(Profile { uri: "sip:bob@x.org".into(), ..Profile::default() }));
        assert!(due(&model, now).is_empty());
        let to = now - Span::seconds(2);
        model.manual = Some(ManualState { to: Some(to), ..ManualState::simple(ManualKind::Busy) });
        model.note = Some(Note { text: "later".into(), expires: Some(now + Span::seconds(5)) });
        assert_eq!(due(&model, now), vec![Work::EndManual { deadline: to }], "the note has not expired");
        let expires = now - Span::seconds(1);
        model.note = Some(Note { text: "gone".into(), expires: Some(expires) });
        assert_eq!(due(&model, now), vec![Work::EndManual { deadline: expires }], "one change, at the later deadline");
        assert_eq!(
            Work::EndManual { deadline: expires }.key("sip:bob@x.org"),
            format!("sip:bob@x.org:m:{}", expires.timestamp_millis())
        );

        let report = |at| SourceReport { data: ReportData::Phone(PhoneData::default()), expires: Some(at) };
        model.manual = None;
        model.note = None;
        model.set_report("pbx", report(now));
        model.set_report("exchange", report(now + Span::seconds(1)));
        let work = due(&model, now);
        assert_eq!(work, vec![Work::WithdrawReport { source: "pbx".into(), report: report(now) }]);
        assert_eq!(work[0].key("sip:bob@x.org"), format!("sip:bob@x.org:r:pbx:{}", now.timestamp_millis()));
    }
}

//! Presence in the vocabulary integrators know from Microsoft Graph: the `availability` and
//! `activity` strings, mapped from the view the caller may see (README, "For integrators: the
//! JSON API", the mapping table). Because the mapping reads the cut view, a level that hides the
//! activity detail hides it here too, and a Blocked reader or a watcher of a user who appears
//! offline gets exactly what a user who really is offline shows.

use crate::model::aggregate::Activity;
use crate::model::presentity::PresenceView;
use crate::model::state::{flags, BaseState};
use serde::Serialize;
use utoipa::ToSchema;

/// Graph's `availability`: the base state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum GraphAvailability {
    Available,
    AvailableIdle,
    Away,
    BeRightBack,
    Busy,
    BusyIdle,
    DoNotDisturb,
    Offline,
    /// A URI that names no user.
    PresenceUnknown,
}

/// Graph's `activity`: what the user is doing. Graph's whole list; `OffWork` and `Presenting`
/// are never sent (the gateway knows nothing that means them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum GraphActivity {
    Available,
    Away,
    BeRightBack,
    Busy,
    DoNotDisturb,
    InACall,
    InAConferenceCall,
    Inactive,
    InAMeeting,
    Offline,
    OffWork,
    OutOfOffice,
    PresenceUnknown,
    Presenting,
    UrgentInterruptionsOnly,
}

/// The Graph pair for a view (the same decisions as the CWA availability numbers and tokens).
pub fn graph_presence(view: &PresenceView) -> (GraphAvailability, GraphActivity) {
    use GraphActivity as Act;
    use GraphAvailability as Av;
    if !view.known {
        return (Av::PresenceUnknown, Act::PresenceUnknown);
    }
    let state = view.state;
    if view.appear_offline || state.is_offline() {
        return (Av::Offline, Act::Offline);
    }
    let idle = state.has(flags::IDLE);
    match state.base() {
        BaseState::DoNotDisturb if view.urgent_interruptions_only => (Av::DoNotDisturb, Act::UrgentInterruptionsOnly),
        BaseState::DoNotDisturb => (Av::DoNotDisturb, Act::DoNotDisturb),
        BaseState::Busy => {
            let activity = match view.activity {
                Activity::OnThePhone => Act::InACall,
                Activity::InAConference => Act::InAConferenceCall,
                Activity::InAMeeting => Act::InAMeeting,
                _ => Act::Busy,
            };
            (if idle { Av::BusyIdle } else { Av::Busy }, activity)
        }
        BaseState::Absent => match view.activity {
            Activity::BeRightBack => (Av::BeRightBack, Act::BeRightBack),
            Activity::OutOfOffice => (Av::Away, Act::OutOfOffice),
            _ => (Av::Away, Act::Away),
        },
        BaseState::Available if idle => (Av::AvailableIdle, Act::Inactive),
        BaseState::Available => (Av::Available, Act::Available),
        BaseState::Unknown | BaseState::OutOfOrder => (Av::Offline, Act::Offline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::PresenceState;
    use GraphActivity as Act;
    use GraphAvailability as Av;

    fn known(base: BaseState, flag_bits: u32, activity: Activity) -> PresenceView {
        let mut view = PresenceView::unknown("sip:a@x");
        view.known = true;
        view.state = PresenceState(base as u32 | flag_bits);
        view.activity = activity;
        view
    }

    #[test]
    fn every_row_of_the_mapping_table() {
        use BaseState::*;
        let none = Activity::None;
        let rows = [
            (known(Available, 0, none), (Av::Available, Act::Available)),
            (known(Available, flags::IDLE, none), (Av::AvailableIdle, Act::Inactive)),
            (known(Busy, 0, none), (Av::Busy, Act::Busy)),
            (known(Busy, flags::IDLE, none), (Av::BusyIdle, Act::Busy)),
            (known(Busy, 0, Activity::OnThePhone), (Av::Busy, Act::InACall)),
            (known(Busy, flags::IDLE, Activity::OnThePhone), (Av::BusyIdle, Act::InACall)),
            (known(Busy, 0, Activity::InAConference), (Av::Busy, Act::InAConferenceCall)),
            (known(Busy, 0, Activity::InAMeeting), (Av::Busy, Act::InAMeeting)),
            (known(DoNotDisturb, 0, none), (Av::DoNotDisturb, Act::DoNotDisturb)),
            (known(Absent, 0, none), (Av::Away, Act::Away)),
            (known(Absent, 0, Activity::BeRightBack), (Av::BeRightBack, Act::BeRightBack)),
            (known(Absent, 0, Activity::OutOfOffice), (Av::Away, Act::OutOfOffice)),
            (known(Busy, flags::OFFLINE, Activity::InAMeeting), (Av::Offline, Act::Offline)),
            (known(OutOfOrder, 0, none), (Av::Offline, Act::Offline)),
            (PresenceView::unknown("sip:nobody@x"), (Av::PresenceUnknown, Act::PresenceUnknown)),
        ];
        for (view, expected) in rows {
            assert_eq!(graph_presence(&view), expected, "{:?} {:?}", view.state, view.activity);
        }
        let mut urgent = known(DoNotDisturb, 0, none);
        urgent.urgent_interruptions_only = true;
        assert_eq!(graph_presence(&urgent), (Av::DoNotDisturb, Act::UrgentInterruptionsOnly));
        let mut hidden = known(Available, 0, Activity::AppearOffline);
        hidden.appear_offline = true;
        assert_eq!(graph_presence(&hidden), (Av::Offline, Act::Offline), "the owner's own appear offline");
    }

    #[test]
    fn the_strings_are_graphs() {
        let json = serde_json::to_value((Av::AvailableIdle, Act::InAConferenceCall, Act::UrgentInterruptionsOnly)).unwrap();
        assert_eq!(json, serde_json::json!(["AvailableIdle", "InAConferenceCall", "UrgentInterruptionsOnly"]));
    }
}

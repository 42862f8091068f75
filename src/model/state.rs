//! The calculated presence value: a `u32` laid out exactly as Presence V2's `iPresenceState`
//! (base state in the low byte, flags above it), plus the six states a person sees.

use serde::{Deserialize, Serialize};

/// Flag bits of the calculated presence (Presence V2 `AsnPresenceStateFlags`).
pub mod flags {
    pub const WORKING_AFTER_CALL: u32 = 0x0001_0000;
    pub const CONFERENCING: u32 = 0x0002_0000;
    pub const RINGING: u32 = 0x0100_0000;
    pub const APPOINTMENT: u32 = 0x0200_0000;
    pub const CALL: u32 = 0x0400_0000;
    pub const OFFLINE: u32 = 0x0800_0000;
    pub const NOTE_SET: u32 = 0x1000_0000;
    pub const IDLE: u32 = 0x2000_0000;
    pub const MOBILE_AVAILABLE: u32 = 0x4000_0000;
}

/// The base state in the low byte (Presence V2 `AsnPresenceStateEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BaseState {
    Unknown = 0,
    Available = 1,
    Busy = 2,
    Absent = 3,
    DoNotDisturb = 4,
    OutOfOrder = 7,
}

impl BaseState {
    fn from_byte(byte: u8) -> BaseState {
        match byte {
            1 => BaseState::Available,
            2 => BaseState::Busy,
            3 => BaseState::Absent,
            4 => BaseState::DoNotDisturb,
            7 => BaseState::OutOfOrder,
            _ => BaseState::Unknown,
        }
    }
}

/// The six states of the user interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UiState {
    Available,
    Busy,
    Absent,
    Inactive,
    DoNotDisturb,
    Offline,
}

/// `iPresenceState`: base state and flags in one 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PresenceState(pub u32);

impl PresenceState {
    pub const BASE_MASK: u32 = 0x0000_00FF;
    /// Offline with nothing else to show (`0x08000001`): what a watcher sees of a user who is
    /// offline, and all a Blocked watcher ever sees.
    pub const OFFLINE: PresenceState = PresenceState(flags::OFFLINE | BaseState::Available as u32);

    pub fn new(base: BaseState) -> Self {
        PresenceState(base as u32)
    }

    pub fn base(self) -> BaseState {
        BaseState::from_byte((self.0 & Self::BASE_MASK) as u8)
    }

    pub fn flags(self) -> u32 {
        self.0 & !Self::BASE_MASK
    }

    pub fn has(self, flag: u32) -> bool {
        self.0 & flag == flag
    }

    pub fn with(self, flag: u32) -> Self {
        PresenceState(self.0 | flag)
    }

    pub fn with_base(self, base: BaseState) -> Self {
        PresenceState(self.flags() | base as u32)
    }

    /// Offline as a watcher sees it: the offline flag or an unknown base.
    pub fn is_offline(self) -> bool {
        self.has(flags::OFFLINE) || self.base() == BaseState::Unknown
    }

    pub fn ui_state(self) -> UiState {
        if self.is_offline() {
            return UiState::Offline;
        }
        match self.base() {
            BaseState::DoNotDisturb => UiState::DoNotDisturb,
            _ if self.has(flags::IDLE) => UiState::Inactive,
            BaseState::Available => UiState::Available,
            BaseState::Busy => UiState::Busy,
            BaseState::Absent => UiState::Absent,
            BaseState::Unknown | BaseState::OutOfOrder => UiState::Offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_flags_are_split_at_the_low_byte() {
        let s = PresenceState::new(BaseState::Busy).with(flags::CALL);
        assert_eq!(s.0, 0x0400_0002);
        assert_eq!(s.base(), BaseState::Busy);
        assert_eq!(s.flags(), flags::CALL);
        assert_eq!(s.with_base(BaseState::Absent).0, 0x0400_0003);
    }

    #[test]
    fn ui_states() {
        let avail = PresenceState::new(BaseState::Available);
        assert_eq!(avail.ui_state(), UiState::Available);
        assert_eq!(avail.with(flags::IDLE).ui_state(), UiState::Inactive);
        assert_eq!(avail.with(flags::OFFLINE).ui_state(), UiState::Offline);
        assert_eq!(PresenceState(0).ui_state(), UiState::Offline);
        let dnd = PresenceState::new(BaseState::DoNotDisturb).with(flags::IDLE);
        assert_eq!(dnd.ui_state(), UiState::DoNotDisturb);
        assert_eq!(PresenceState(7).ui_state(), UiState::Offline);
    }
}

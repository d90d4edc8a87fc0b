//! Who receives a deactivated user's opportunities: `reassign_to` when given, else the
//! leader of the user's first team (earliest joined), else the leader of the account's
//! first team (earliest created). Whoever receives them must be active (G5).

use super::guards::{self, GuardRefusal};
use super::user::Person;

/// Why nobody can receive the records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoRecipient {
    #[error(transparent)]
    Refused(#[from] GuardRefusal),
    #[error(
        "no active user can receive the opportunities of user {user}: neither the leader of their first team nor of the account's first team is active; give reassign_to"
    )]
    NobodyActive { user: i64 },
}

/// Picks the recipient. An explicit choice that is not assignable is refused outright;
/// the fallbacks are skipped when not assignable (or when they are the user).
pub fn opportunity_recipient(
    account_id: i64,
    user_id: i64,
    explicit: Option<&Person>,
    first_team_leader: Option<&Person>,
    account_first_team_leader: Option<&Person>,
) -> Result<i64, NoRecipient> {
    if let Some(explicit) = explicit {
        guards::assignable(account_id, explicit)?;
        return Ok(explicit.id);
    }
    [first_team_leader, account_first_team_leader]
        .into_iter()
        .flatten()
        .find(|leader| leader.id != user_id && guards::assignable(account_id, leader).is_ok())
        .map(|leader| leader.id)
        .ok_or(NoRecipient::NobodyActive { user: user_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::UserStatus;

    fn person(id: i64, status: UserStatus) -> Person {
        Person {
            id,
            account_id: 1,
            status,
            role_rank: 1,
            may_manage_users: false,
        }
    }

    #[test]
    fn explicit_choice_wins_and_must_be_active() {
        let explicit = person(5, UserStatus::Active);
        let leader = person(6, UserStatus::Active);
        assert_eq!(
            opportunity_recipient(1, 2, Some(&explicit), Some(&leader), None),
            Ok(5)
        );
        let gone = person(5, UserStatus::Deactivated);
        assert!(matches!(
            opportunity_recipient(1, 2, Some(&gone), Some(&leader), None),
            Err(NoRecipient::Refused(GuardRefusal::AssigneeNotActive { .. }))
        ));
    }

    #[test]
    fn falls_back_to_first_team_then_account_first_team() {
        let first = person(6, UserStatus::Active);
        let account_first = person(7, UserStatus::Active);
        assert_eq!(
            opportunity_recipient(1, 2, None, Some(&first), Some(&account_first)),
            Ok(6)
        );
        assert_eq!(
            opportunity_recipient(1, 2, None, None, Some(&account_first)),
            Ok(7)
        );
        let locked = person(6, UserStatus::Locked);
        assert_eq!(
            opportunity_recipient(1, 2, None, Some(&locked), Some(&account_first)),
            Ok(7)
        );
    }

    #[test]
    fn nobody_active_is_refused() {
        let locked = person(6, UserStatus::Locked);
        assert_eq!(
            opportunity_recipient(1, 2, None, Some(&locked), None),
            Err(NoRecipient::NobodyActive { user: 2 })
        );
        assert_eq!(
            opportunity_recipient(1, 2, None, None, None),
            Err(NoRecipient::NobodyActive { user: 2 })
        );
    }
}

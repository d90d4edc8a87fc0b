//! The guards of SPEC section 4: checked before any effect; each refusal is a permanent,
//! clearly worded failure.

use super::user::{Person, UserStatus};

/// The verbatim message of guard G3.
pub const LAST_LICENSE_WITH_PHONES: &str = "You must deactivate the phone numbers for this license's country before removing the last license in the country.";

/// Why a guard refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardRefusal {
    /// G1.
    #[error("user {actor} cannot deactivate user {target}, whose role ranks higher")]
    TargetRanksHigher { actor: i64, target: i64 },
    /// G2.
    #[error("user {user} leads the teams {teams}; hand them over to another leader first")]
    LeadsTeams { user: i64, teams: String },
    /// G3.
    #[error("{}", LAST_LICENSE_WITH_PHONES)]
    LastLicenseWithPhoneNumbers { country: String },
    /// G4: actor of another account.
    #[error("actor {actor} does not belong to account {account}")]
    ActorOfAnotherAccount { actor: i64, account: i64 },
    /// G4: target of another account (or unknown in this one).
    #[error("user {user} does not belong to account {account}")]
    TargetOfAnotherAccount { user: i64, account: i64 },
    /// G4: actor not active.
    #[error("actor {actor} is {status}, not active")]
    ActorNotActive { actor: i64, status: UserStatus },
    /// G4: actor without the permission.
    #[error("actor {actor} is not allowed to manage users")]
    ActorMayNotManageUsers { actor: i64 },
    /// Nobody hands out a role ranking above their own.
    #[error("user {actor} cannot give role {role}, which ranks above their own")]
    RoleRanksHigher { actor: i64, role: i64 },
    /// G5.
    #[error("cannot assign records to user {user}: the user is {status}, not active")]
    AssigneeNotActive { user: i64, status: UserStatus },
    /// G5: assignee of another account.
    #[error("cannot assign records to user {user}: not a user of account {account}")]
    AssigneeOfAnotherAccount { user: i64, account: i64 },
}

/// G4: actor and target belong to the account of the job; the actor is active and may
/// manage users. `actor` is `None` for the system, which acts on its own authority.
pub fn actor_may_manage(
    account_id: i64,
    actor: Option<&Person>,
    target: &Person,
) -> Result<(), GuardRefusal> {
    if target.account_id != account_id {
        return Err(GuardRefusal::TargetOfAnotherAccount {
            user: target.id,
            account: account_id,
        });
    }
    actor_may_manage_account(account_id, actor)
}

/// G4 where there is no target yet (a user being created): the actor is an active user of
/// the account who may manage users, or the system.
pub fn actor_may_manage_account(
    account_id: i64,
    actor: Option<&Person>,
) -> Result<(), GuardRefusal> {
    let Some(actor) = actor else { return Ok(()) };
    if actor.account_id != account_id {
        return Err(GuardRefusal::ActorOfAnotherAccount {
            actor: actor.id,
            account: account_id,
        });
    }
    if actor.status != UserStatus::Active {
        return Err(GuardRefusal::ActorNotActive {
            actor: actor.id,
            status: actor.status,
        });
    }
    if !actor.may_manage_users {
        return Err(GuardRefusal::ActorMayNotManageUsers { actor: actor.id });
    }
    Ok(())
}

/// G1: nobody deactivates a user whose role ranks above their own. The system may.
pub fn actor_outranks_or_equals(
    actor: Option<&Person>,
    target: &Person,
) -> Result<(), GuardRefusal> {
    match actor {
        Some(actor) if actor.role_rank < target.role_rank => Err(GuardRefusal::TargetRanksHigher {
            actor: actor.id,
            target: target.id,
        }),
        _ => Ok(()),
    }
}

/// Nobody creates a user with a role ranking above their own (the same rule as G1, for
/// privileges handed out rather than taken away). The system may.
pub fn may_grant_role(
    actor: Option<&Person>,
    role_id: i64,
    role_rank: i32,
) -> Result<(), GuardRefusal> {
    match actor {
        Some(actor) if actor.role_rank < role_rank => Err(GuardRefusal::RoleRanksHigher {
            actor: actor.id,
            role: role_id,
        }),
        _ => Ok(()),
    }
}

/// G2: a team leader cannot be deactivated; the refusal names the teams to hand over.
pub fn leads_no_team(user_id: i64, led_teams: &[String]) -> Result<(), GuardRefusal> {
    if led_teams.is_empty() {
        Ok(())
    } else {
        Err(GuardRefusal::LeadsTeams {
            user: user_id,
            teams: led_teams.join(", "),
        })
    }
}

/// G3: the last active license of a country cannot be removed while the account has an
/// active phone number there. `active_licenses_in_country` counts the one being removed.
pub fn not_last_license_with_phones(
    country: &str,
    active_licenses_in_country: i64,
    active_phone_numbers_in_country: i64,
) -> Result<(), GuardRefusal> {
    if active_licenses_in_country <= 1 && active_phone_numbers_in_country > 0 {
        Err(GuardRefusal::LastLicenseWithPhoneNumbers {
            country: country.to_string(),
        })
    } else {
        Ok(())
    }
}

/// G5: records go only to an active user of the same account.
pub fn assignable(account_id: i64, assignee: &Person) -> Result<(), GuardRefusal> {
    if assignee.account_id != account_id {
        return Err(GuardRefusal::AssigneeOfAnotherAccount {
            user: assignee.id,
            account: account_id,
        });
    }
    if assignee.status != UserStatus::Active {
        return Err(GuardRefusal::AssigneeNotActive {
            user: assignee.id,
            status: assignee.status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: i64, account_id: i64, rank: i32) -> Person {
        Person {
            id,
            account_id,
            status: UserStatus::Active,
            role_rank: rank,
            may_manage_users: true,
        }
    }

    #[test]
    fn g1_refuses_a_higher_ranked_target_only() {
        let admin = person(1, 10, 50);
        assert!(actor_outranks_or_equals(Some(&admin), &person(2, 10, 50)).is_ok());
        assert!(actor_outranks_or_equals(Some(&admin), &person(2, 10, 10)).is_ok());
        assert_eq!(
            actor_outranks_or_equals(Some(&admin), &person(2, 10, 90)),
            Err(GuardRefusal::TargetRanksHigher {
                actor: 1,
                target: 2
            })
        );
        assert!(actor_outranks_or_equals(None, &person(2, 10, 90)).is_ok());
    }

    #[test]
    fn nobody_grants_a_role_above_their_own() {
        let manager = person(1, 10, 50);
        assert!(may_grant_role(Some(&manager), 7, 50).is_ok());
        assert!(may_grant_role(Some(&manager), 7, 10).is_ok());
        assert_eq!(
            may_grant_role(Some(&manager), 7, 90),
            Err(GuardRefusal::RoleRanksHigher { actor: 1, role: 7 })
        );
        assert!(may_grant_role(None, 7, 90).is_ok());
    }

    #[test]
    fn g4_without_a_target_checks_the_actor() {
        assert!(actor_may_manage_account(10, None).is_ok());
        assert!(actor_may_manage_account(10, Some(&person(1, 10, 50))).is_ok());
        assert!(matches!(
            actor_may_manage_account(10, Some(&person(1, 11, 50))),
            Err(GuardRefusal::ActorOfAnotherAccount { .. })
        ));
        let mut clerk = person(1, 10, 50);
        clerk.may_manage_users = false;
        assert!(matches!(
            actor_may_manage_account(10, Some(&clerk)),
            Err(GuardRefusal::ActorMayNotManageUsers { .. })
        ));
    }

    #[test]
    fn g2_names_the_teams() {
        assert!(leads_no_team(3, &[]).is_ok());
        let refusal = leads_no_team(3, &["North".into(), "South".into()]).unwrap_err();
        assert!(refusal.to_string().contains("North, South"), "{refusal}");
    }

    #[test]
    fn g3_refuses_the_last_license_while_phones_are_active() {
        let refusal = not_last_license_with_phones("ES", 1, 1).unwrap_err();
        assert_eq!(refusal.to_string(), LAST_LICENSE_WITH_PHONES);
        assert!(not_last_license_with_phones("ES", 2, 3).is_ok());
        assert!(not_last_license_with_phones("ES", 1, 0).is_ok());
    }

    #[test]
    fn g4_checks_tenant_status_and_permission() {
        let target = person(2, 10, 1);
        assert!(actor_may_manage(10, Some(&person(1, 10, 5)), &target).is_ok());
        assert!(actor_may_manage(10, None, &target).is_ok());
        assert_eq!(
            actor_may_manage(10, Some(&person(1, 11, 5)), &target),
            Err(GuardRefusal::ActorOfAnotherAccount {
                actor: 1,
                account: 10
            })
        );
        assert_eq!(
            actor_may_manage(11, Some(&person(1, 11, 5)), &target),
            Err(GuardRefusal::TargetOfAnotherAccount {
                user: 2,
                account: 11
            })
        );
        let mut locked = person(1, 10, 5);
        locked.status = UserStatus::Locked;
        assert!(matches!(
            actor_may_manage(10, Some(&locked), &target),
            Err(GuardRefusal::ActorNotActive { .. })
        ));
        let mut plain = person(1, 10, 5);
        plain.may_manage_users = false;
        assert!(matches!(
            actor_may_manage(10, Some(&plain), &target),
            Err(GuardRefusal::ActorMayNotManageUsers { .. })
        ));
    }

    #[test]
    fn g5_refuses_inactive_and_foreign_assignees() {
        assert!(assignable(10, &person(4, 10, 1)).is_ok());
        let mut gone = person(4, 10, 1);
        gone.status = UserStatus::Deactivated;
        assert!(matches!(
            assignable(10, &gone),
            Err(GuardRefusal::AssigneeNotActive { .. })
        ));
        assert!(matches!(
            assignable(10, &person(4, 12, 1)),
            Err(GuardRefusal::AssigneeOfAnotherAccount { .. })
        ));
    }
}

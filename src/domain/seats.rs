//! License seats: a pool of seats per (account, country); a seat is taken while a license
//! is `active` or `releasing`.

/// No seat left in the pool: the refusal of ActivateSalesperson and ReactivateUser.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no free license in {country}: {taken} of {seats} seats taken")]
pub struct NoFreeLicense {
    pub country: String,
    pub seats: i64,
    pub taken: i64,
}

/// Whether one more seat can be taken in `country`, given the pool's seats (`None`: the
/// account has no pool there) and the seats taken.
pub fn check_free_seat(country: &str, seats: Option<i64>, taken: i64) -> Result<(), NoFreeLicense> {
    let seats = seats.unwrap_or(0);
    if taken < seats {
        Ok(())
    } else {
        Err(NoFreeLicense {
            country: country.to_string(),
            seats,
            taken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_is_free_while_fewer_are_taken_than_the_pool_has() {
        assert!(check_free_seat("ES", Some(1), 0).is_ok());
        assert!(check_free_seat("ES", Some(3), 2).is_ok());
        let full = check_free_seat("ES", Some(1), 1).unwrap_err();
        assert_eq!(
            full.to_string(),
            "no free license in ES: 1 of 1 seats taken"
        );
        assert!(check_free_seat("ES", Some(0), 0).is_err());
        let no_pool = check_free_seat("FR", None, 0).unwrap_err();
        assert!(no_pool.to_string().starts_with("no free license in FR"));
        // A pool shrunk below what is taken is still full, not negative.
        assert!(check_free_seat("ES", Some(2), 5).is_err());
    }
}

//! etcd's `--strict-reconfig-check`: refuse a membership change that would leave the
//! cluster without a quorum of started, connected voters.
//!
//! These checks run on the member that receives the request, before anything is
//! proposed, and read local, non-deterministic facts (which peers sent traffic
//! recently). They are advisory in that sense, exactly as in etcd; the deterministic
//! checks happen at apply ([`super::Membership::validate`]).
//!
//! "Started" is etcd's notion: a member that has published its name through the log
//! (or was named in `--initial-cluster`); a member added but never started has none.

use super::{Error, Member, Membership};

/// What the checks need to know about peers, from the transport's activity table.
pub trait Liveness {
    /// Sent traffic within the activity window (an election timeout).
    fn is_active(&self, member: u64) -> bool;
    /// Has been active for at least etcd's `HealthInterval` (5 s): etcd's
    /// "connected since", which a member that just (re)started is not yet.
    fn is_connected(&self, member: u64) -> bool;
}

fn started(m: &Member) -> bool {
    !m.name.is_empty()
}

fn voters(ms: &Membership) -> impl Iterator<Item = &Member> {
    ms.members().filter(|m| !m.is_learner)
}

/// etcd's `mayAddMember`.
pub fn may_add_member(
    ms: &Membership,
    me: u64,
    is_learner: bool,
    live: &dyn Liveness,
) -> Result<(), Error> {
    if !is_learner {
        // Count the new member as a voter that has not started.
        let nmembers = voters(ms).count() + 1;
        let nstarted = voters(ms).filter(|m| started(m)).count();
        // Adding a second member to a one-member cluster is how a cluster grows
        // from a restored backup; etcd allows it.
        let growing_from_one = nstarted == 1 && nmembers == 2;
        if !growing_from_one && nstarted < nmembers / 2 + 1 {
            return Err(Error::NotEnoughStarted);
        }
    }
    if !voters(ms).all(|m| m.id == me || live.is_connected(m.id)) {
        return Err(Error::Unhealthy);
    }
    Ok(())
}

/// etcd's `mayRemoveMember`.
pub fn may_remove_member(
    ms: &Membership,
    me: u64,
    id: u64,
    live: &dyn Liveness,
) -> Result<(), Error> {
    if ms.is_learner(id) {
        // A learner is not part of any quorum.
        return Ok(());
    }
    let rest: Vec<&Member> = voters(ms).filter(|m| m.id != id).collect();
    let nstarted = rest.iter().filter(|m| started(m)).count();
    if nstarted < rest.len() / 2 + 1 {
        return Err(Error::NotEnoughStarted);
    }
    // A member that is down is not part of the working quorum: removing it is safe.
    if id != me && !live.is_active(id) {
        return Ok(());
    }
    let all: Vec<&Member> = voters(ms).collect();
    let connected = all
        .iter()
        .filter(|m| m.id == me || live.is_connected(m.id))
        .count();
    if connected.saturating_sub(1) < 1 + (all.len().saturating_sub(1)) / 2 {
        return Err(Error::Unhealthy);
    }
    Ok(())
}

/// etcd's `IsReadyToPromoteMember`: the learner counts as a started voter.
pub fn may_promote_member(ms: &Membership) -> Result<(), Error> {
    let nmembers = voters(ms).count() + 1;
    let nstarted = voters(ms).filter(|m| started(m)).count() + 1;
    if nstarted < nmembers / 2 + 1 {
        return Err(Error::NotEnoughStarted);
    }
    Ok(())
}

/// etcd's `isLearnerReady`: a learner may be promoted once its log matches at least
/// 90% of the leader's.
pub fn learner_ready(leader_match: u64, learner_match: u64) -> Result<(), Error> {
    if (learner_match as f64) < (leader_match as f64) * 0.9 {
        return Err(Error::LearnerNotReady);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Live(Vec<u64>);

    impl Liveness for Live {
        fn is_active(&self, m: u64) -> bool {
            self.0.contains(&m)
        }
        fn is_connected(&self, m: u64) -> bool {
            self.0.contains(&m)
        }
    }

    fn member(id: u64, name: &str, learner: bool) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://h:{id}")],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    fn three() -> Membership {
        Membership::new(
            1,
            vec![
                member(1, "a", false),
                member(2, "b", false),
                member(3, "c", false),
            ],
        )
    }

    #[test]
    fn adding_needs_a_started_quorum_and_every_voter_connected() {
        let ms = three();
        may_add_member(&ms, 1, false, &Live(vec![2, 3])).expect("healthy");
        assert!(matches!(
            may_add_member(&ms, 1, true, &Live(vec![2])),
            Err(Error::Unhealthy)
        ));
        // Two of four would be started: not a quorum.
        let mut ms = Membership::new(
            1,
            vec![
                member(1, "a", false),
                member(2, "", false),
                member(3, "", false),
            ],
        );
        assert!(matches!(
            may_add_member(&ms, 1, false, &Live(vec![2, 3])),
            Err(Error::NotEnoughStarted)
        ));
        // A learner does not change any quorum.
        may_add_member(&ms, 1, true, &Live(vec![2, 3])).expect("learner");
        // Growing from one member is allowed.
        ms = Membership::new(1, vec![member(1, "a", false)]);
        may_add_member(&ms, 1, false, &Live(vec![])).expect("second member");
    }

    #[test]
    fn removing_keeps_a_quorum_of_connected_voters() {
        let ms = three();
        may_remove_member(&ms, 1, 3, &Live(vec![2, 3])).expect("all up");
        // 3 is down anyway: removing it is safe.
        may_remove_member(&ms, 1, 3, &Live(vec![2])).expect("down member");
        // 2 is down and 3 is up: removing 3 would leave 1 of the 2 remaining up.
        assert!(matches!(
            may_remove_member(&ms, 1, 3, &Live(vec![3])),
            Err(Error::Unhealthy)
        ));
        let one = Membership::new(1, vec![member(1, "a", false)]);
        assert!(matches!(
            may_remove_member(&one, 1, 1, &Live(vec![])),
            Err(Error::NotEnoughStarted)
        ));
        let mut with_learner = three();
        with_learner
            .apply(super::super::Change::Add(member(4, "", true)))
            .expect("add");
        may_remove_member(&with_learner, 1, 4, &Live(vec![])).expect("learner");
    }

    #[test]
    fn promotion_needs_the_learner_in_sync() {
        may_promote_member(&three()).expect("quorum");
        learner_ready(100, 90).expect("in sync");
        assert!(matches!(
            learner_ready(100, 89),
            Err(Error::LearnerNotReady)
        ));
        learner_ready(0, 0).expect("empty logs");
    }
}

//! Membership changes as raft conf changes: what the proposer puts in the log and what
//! the applier reads back.
//!
//! Raft only needs the change type and the node ID; everything else a member must know
//! (the new member's peer URLs, whether an AddNode promotes a learner, the proposer's
//! request id) travels in the ConfChange's context as a `revkvpb.ConfChangeContext`,
//! as etcd carries its `ConfigChangeContext` there. The raft crate has no UpdateNode
//! type, so peer URL updates travel as normal log entries instead.

use prost::Message as _;
use raft::prelude::{ConfChange, ConfChangeType};
use revkv_proto::revkvpb;

use super::membership::{member_from_proto, member_to_proto, Change};
use super::{Error, Member};

/// The conf change that carries `change` (an add, promote or remove).
pub fn encode(request_id: u64, change: &Change) -> Result<ConfChange, Error> {
    let (change_type, member, is_promote) = match change {
        Change::Add(m) if m.is_learner => (ConfChangeType::AddLearnerNode, Some(m), false),
        Change::Add(m) => (ConfChangeType::AddNode, Some(m), false),
        Change::Promote(_) => (ConfChangeType::AddNode, None, true),
        Change::Remove(_) => (ConfChangeType::RemoveNode, None, false),
        Change::UpdatePeerUrls { .. } | Change::Attributes { .. } => {
            return Err(Error::NotConfChange)
        }
    };
    let ctx = revkvpb::ConfChangeContext {
        request_id,
        member: member.map(member_to_proto),
        is_promote,
    };
    let mut cc = ConfChange::default();
    cc.set_change_type(change_type);
    cc.node_id = change.id();
    cc.context = ctx.encode_to_vec().into();
    Ok(cc)
}

/// The proposer's request id and the change a committed conf change carries.
pub fn decode(cc: &ConfChange) -> Result<(u64, Change), Error> {
    let ctx = revkvpb::ConfChangeContext::decode(&cc.context[..])
        .map_err(|e| Error::Corrupt(format!("conf change context: {e}")))?;
    let id = cc.node_id;
    let change = match cc.get_change_type() {
        ConfChangeType::AddNode if ctx.is_promote => Change::Promote(id),
        ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
            let m: Member = ctx
                .member
                .map(member_from_proto)
                .ok_or_else(|| Error::Corrupt("conf change adds no member".into()))?;
            if m.id != id
                || m.is_learner != (cc.get_change_type() == ConfChangeType::AddLearnerNode)
            {
                return Err(Error::Corrupt(format!(
                    "conf change for {id:x} carries member {:x}",
                    m.id
                )));
            }
            Change::Add(m)
        }
        ConfChangeType::RemoveNode => Change::Remove(id),
    };
    Ok((ctx.request_id, change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;

    fn member(learner: bool) -> Member {
        Member {
            id: 0xabc,
            name: String::new(),
            peer_urls: vec!["http://127.0.0.1:9".into()],
            client_urls: Vec::new(),
            is_learner: learner,
        }
    }

    #[test]
    fn round_trips_through_the_raft_encoding() {
        for change in [
            Change::Add(member(false)),
            Change::Add(member(true)),
            Change::Promote(0xabc),
            Change::Remove(0xabc),
        ] {
            let cc = encode(42, &change).expect("encode");
            assert_eq!(cc.node_id, 0xabc);
            // Through the bytes raft stores in the log entry.
            let bytes = cc.write_to_bytes().expect("bytes");
            let back = ConfChange::parse_from_bytes(&bytes).expect("parse");
            assert_eq!(decode(&back).expect("decode"), (42, change));
        }
        let cc = encode(1, &Change::Add(member(true))).expect("encode");
        assert_eq!(cc.get_change_type(), ConfChangeType::AddLearnerNode);
        let cc = encode(1, &Change::Promote(5)).expect("encode");
        assert_eq!(cc.get_change_type(), ConfChangeType::AddNode);
        assert!(encode(
            1,
            &Change::Attributes {
                id: 1,
                name: String::new(),
                client_urls: Vec::new()
            }
        )
        .is_err());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddNode);
        cc.node_id = 3;
        cc.context = vec![0xff, 0xff, 0xff].into();
        assert!(decode(&cc).is_err());
        // An add whose member does not match the node ID.
        let mut cc = encode(1, &Change::Add(member(false))).expect("encode");
        cc.node_id = 4;
        assert!(decode(&cc).is_err());
    }
}

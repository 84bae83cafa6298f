//! One worker's share of the rooms: `room -> local subscribers`, and the
//! delivery of a published message to each of them.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use slab::Slab;

use super::subscriber::{CursorCache, Subscriber};
use super::{Gap, Published, RoomName};

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: u64,
    pub dropped: u64,
}

/// The local subscribers of every room this worker has connections in.
#[derive(Default)]
pub struct LocalRooms {
    rooms: HashMap<RoomName, Slab<(Rc<Subscriber>, usize)>>,
}

impl LocalRooms {
    /// Adds a subscriber (its room index `idx`); returns its key in the
    /// room and the room's name as this worker keeps it (one allocation
    /// shared by every local subscriber).
    pub fn add(&mut self, room: &RoomName, sub: Rc<Subscriber>, idx: usize) -> (usize, RoomName) {
        let name = match self.rooms.get_key_value(room) {
            Some((name, _)) => name.clone(),
            None => room.clone(),
        };
        let key = self
            .rooms
            .entry(name.clone())
            .or_default()
            .insert((sub, idx));
        (key, name)
    }

    /// Removes a subscriber; the room goes when its last local subscriber does.
    pub fn remove(&mut self, room: &RoomName, key: usize) {
        if let Some(subs) = self.rooms.get_mut(room) {
            if subs.contains(key) {
                subs.remove(key);
            }
            if subs.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Queues a gap notice on every local subscriber of its room (each is woken).
    pub fn gap(&self, gap: &Gap) {
        if let Some(subs) = self.rooms.get(&gap.room) {
            for (_, (sub, _)) in subs.iter() {
                sub.push_gap(gap);
            }
        }
    }

    /// Queues a message on every local subscriber of its room.
    /// Subscribers that now have something to write and were not waiting to
    /// be woken already are added to `wake`.
    pub fn deliver(&self, p: &Published, wake: &mut VecDeque<Rc<Subscriber>>) -> Delivered {
        let mut d = Delivered::default();
        if let Some(subs) = self.rooms.get(&p.room) {
            let mut cache = CursorCache::default();
            for (_, (sub, idx)) in subs.iter() {
                if sub.deliver_with(p, *idx, &mut cache) {
                    d.delivered += 1;
                    if sub.stage() {
                        wake.push_back(sub.clone());
                    }
                } else {
                    d.dropped += 1;
                }
            }
        }
        d
    }
}

//! Which HTTP connections the exporter keeps: at most `capacity` at once. When full, the
//! connection idle the longest (one that never sent a request, or one between requests for a
//! while) is closed to make room for the newcomer, so sockets held open and silent cannot lock
//! Prometheus out. A connection in the middle of a request is never cut; when every slot is
//! serving one, the newcomer is refused.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long after its last response a connection still counts as busy: hyper writes the
/// response after the handler returns, and a scraper reads it within this.
const WRITE_GRACE: Duration = Duration::from_secs(5);

pub struct Admission {
    capacity: usize,
    open: Mutex<Vec<Arc<Slot>>>,
}

/// One admitted connection's state, shared by its task and its request handler.
pub struct Slot {
    evicted: Notify,
    state: Mutex<SlotState>,
}

struct SlotState {
    in_request: bool,
    /// Since when it has not been in a request: its accept, or its last response.
    idle_since: Instant,
    answered: bool,
}

/// Holds a slot for as long as the connection lives.
pub struct Ticket {
    admission: Arc<Admission>,
    slot: Arc<Slot>,
}

impl Admission {
    pub fn new(capacity: usize) -> Arc<Admission> {
        Arc::new(Admission {
            capacity: capacity.max(1),
            open: Mutex::new(Vec::with_capacity(capacity)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a new connection, closing the longest-idle one if that makes room; `None`
    /// when every slot is serving a request.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut open = self.lock();
        if open.len() >= self.capacity {
            let now = Instant::now();
            let idlest = open
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| slot.idle_since(now).map(|since| (since, i)))
                .min()?
                .1;
            open.swap_remove(idlest).evicted.notify_one();
        }
        let slot = Arc::new(Slot {
            evicted: Notify::new(),
            state: Mutex::new(SlotState {
                in_request: false,
                idle_since: Instant::now(),
                answered: false,
            }),
        });
        open.push(slot.clone());
        Some(Ticket {
            admission: self.clone(),
            slot,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().len()
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Since when the connection has been idle, if it may be closed now.
    fn idle_since(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        let writing = state.answered && now.duration_since(state.idle_since) < WRITE_GRACE;
        (!state.in_request && !writing).then_some(state.idle_since)
    }

    pub fn request_started(&self) {
        self.lock().in_request = true;
    }

    pub fn request_done(&self) {
        let mut state = self.lock();
        state.in_request = false;
        state.answered = true;
        state.idle_since = Instant::now();
    }
}

impl Ticket {
    pub fn slot(&self) -> Arc<Slot> {
        self.slot.clone()
    }

    /// Resolves when the connection was chosen to make room for another.
    pub async fn evicted(&self) {
        self.slot.evicted.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        if let Some(i) = open.iter().position(|s| Arc::ptr_eq(s, &self.slot)) {
            open.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_longest_idle_connection_makes_room_and_a_busy_one_never_does() {
        let admission = Admission::new(2);
        let first = admission.admit().expect("room");
        tokio::time::advance(Duration::from_millis(10)).await;
        let second = admission.admit().expect("room");
        // Full: the oldest silent connection goes.
        let third = admission.admit().expect("the first makes room");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), first.evicted())
                .await
                .is_ok(),
            "the first connection was told to close"
        );
        drop(first);
        assert_eq!(admission.open(), 2);
        // Both remaining are in a request: nobody makes room.
        second.slot().request_started();
        third.slot().request_started();
        assert!(admission.admit().is_none());
        // One answered just now: still writing, still kept.
        second.slot().request_done();
        assert!(admission.admit().is_none());
        // After the grace, it is idle and yields.
        tokio::time::advance(WRITE_GRACE).await;
        let fourth = admission.admit().expect("the second makes room");
        assert!(
            tokio::time::timeout(Duration::from_millis(1), second.evicted())
                .await
                .is_ok()
        );
        drop((second, third, fourth));
        assert_eq!(admission.open(), 0, "every ticket gave its slot back");
    }
}

//! Given / when / then for aggregates, without any store.
//!
//! ```
//! # use es_core::{Aggregate, Apply, Event, commands};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Debug, PartialEq, Serialize, Deserialize, Event)] #[event(name = "door.opened")] pub struct Opened;
//! # #[derive(Debug, PartialEq, Event)] pub enum DoorEvent { Opened(Opened) }
//! # #[derive(Debug, PartialEq)] pub enum DoorError { AlreadyOpen }
//! # #[derive(Default, Aggregate, Hash)] #[aggregate(name = "door", event = DoorEvent, error = DoorError)]
//! # pub struct Door { open: bool }
//! # #[derive(Clone, Hash)] pub struct Open;
//! # #[commands] impl Door {
//! #     pub fn open(&self, _: Open) -> Result<Opened, DoorError> { if self.open { Err(DoorError::AlreadyOpen) } else { Ok(Opened) } }
//! # }
//! # impl Apply<DoorEvent> for Door { fn apply(&mut self, e: &DoorEvent) { match e { DoorEvent::Opened(_) => self.open = true } } }
//! use es_core::testing::aggregate::{given, given_nothing};
//!
//! given_nothing::<Door>().when(Open).then_events([Opened]);
//! given::<Door>([Opened]).when(Open).then_error(&DoorError::AlreadyOpen);
//! ```

use std::fmt::Debug;

use crate::Aggregate;

/// Starts a scenario from the aggregate's past events.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = impl Into<A::Event>>) -> Given<A> {
    let mut state = A::default();
    for event in events {
        state.evolve(&event.into());
    }
    Given { state }
}

/// Starts a scenario from an aggregate with no events yet.
pub fn given_nothing<A: Aggregate>() -> Given<A> {
    Given { state: A::default() }
}

/// An aggregate with its history applied.
#[must_use = "a scenario does nothing until `when`"]
pub struct Given<A> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` on the state.
    pub fn when(self, command: impl Into<A::Command>) -> Then<A> {
        Then { result: self.state.handle(command.into()) }
    }

    /// The state, for assertions of its own.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// What a command decided.
#[must_use = "a scenario checks nothing until `then_…`"]
pub struct Then<A: Aggregate> {
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A> {
    /// Asserts the command decided exactly these events, in order.
    ///
    /// # Panics
    /// When it decided other events or was refused (that is the test failing).
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = impl Into<A::Event>>)
    where
        A::Event: PartialEq + Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().map(Into::into).collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command decided other events"),
            Err(error) => {
                panic!("expected events {expected:?}, the command was refused: {error:?}")
            }
        }
    }

    /// Asserts the command was refused with this error.
    ///
    /// # Panics
    /// When it was refused with another error or decided events (that is the test failing).
    #[track_caller]
    pub fn then_error(self, expected: &A::Error)
    where
        A::Error: PartialEq,
        A::Event: Debug,
    {
        match self.result {
            Err(error) => {
                assert_eq!(&error, expected, "the command was refused with another error");
            }
            Ok(events) => panic!("expected the error {expected:?}, the command decided {events:?}"),
        }
    }

    /// The decision, for assertions of its own.
    pub fn result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}

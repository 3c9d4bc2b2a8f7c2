use es_core::{Event, Pii, PiiSubject};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Event)]
#[event(name = "account.opened")]
pub struct AccountOpened {
    owner: String,
    #[pii(subject = "owner")]
    email: Pii<String>,
    #[pii(subject = "owner")]
    phone: es_core::Pii<Option<String>>,
    #[pii(stream)]
    nickname: Pii<String>,
}

fn main() {
    let pii = <AccountOpened as es_core::EventVariant>::INFO.pii;
    assert_eq!(pii.len(), 3);
    assert_eq!(pii[0].subject, PiiSubject::Field("owner"));
    assert_eq!(pii[2].subject, PiiSubject::Stream);
}

//! The `filter` and `page_token` query parameters of every list call, resolved against each
//! resource's fields as the API does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_store::{Entity, ListQuery};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // One input is tried both as a filter and as a page token, with a sort key from its tail.
    let (filter, token) = text.split_once('\u{1f}').unwrap_or((&text, &text));
    let _ = weir_api_model::Filter::parse(filter);
    let _ = weir_api_model::Cursor::decode(token);
    for entity in [Entity::Pipeline, Entity::PipelineVersion, Entity::Experiment, Entity::Run, Entity::RecurringRun] {
        let _ = ListQuery::resolve(entity, filter, "created_at desc", Some("10"), token, &[]);
        let _ = ListQuery::resolve(entity, "", filter, Some(token), "", &[("experiment_id", "e")]);
    }
});

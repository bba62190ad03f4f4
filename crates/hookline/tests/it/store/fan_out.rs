//! Fan-out: which subscriptions an event is scheduled for (DESIGN.md's filter rule), as the
//! store applies it when it commits the event, and what the publisher is told.

use super::fixture::*;

conformance!(
    only_subscriptions_to_the_event_type_receive_it,
    phone_filters_select_lines,
    account_events_pass_phone_filters,
    message_edited_goes_only_to_2026_02_03_targets,
    inactive_and_deleted_subscriptions_receive_nothing,
    other_partners_subscriptions_receive_nothing,
);

/// Publishes `e` alone at `at(secs)` and returns the subscriptions it was scheduled for (as
/// [`ids`] lists them), after checking that the count the publisher was told matches.
async fn fan_out_of(f: &Fixture, e: &NewEvent, secs: i64) -> Vec<String> {
    let told = f.publish(std::slice::from_ref(e), at(secs)).await[0].deliveries;
    let due = f.claim_all(at(secs + 1)).await;
    let got = targets_of(of_event(&due, e));
    assert_eq!(
        told as usize,
        got.len(),
        "the count told matches what was scheduled"
    );
    got
}

async fn only_subscriptions_to_the_event_type_receive_it(f: Fixture) {
    let p = f.partner().await;
    let sent = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let both = f
        .subscribe(&p, Spec::to(&["message.received", "message.sent"]))
        .await;
    let received = f.subscribe(&p, Spec::to(&["message.received"])).await;

    let got = fan_out_of(&f, &event(&p, "message.sent"), 1).await;
    assert_eq!(got, ids(&[&sent, &both]));
    let got = fan_out_of(&f, &event(&p, "message.received"), 3).await;
    assert_eq!(got, ids(&[&both, &received]));
    let got = fan_out_of(&f, &event(&p, "reaction.added"), 5).await;
    assert!(
        got.is_empty(),
        "nobody subscribed to reaction.added: {got:?}"
    );
}

async fn phone_filters_select_lines(f: Fixture) {
    const LINE_A: &str = "+14155550100";
    const LINE_B: &str = "+14155550101";
    let p = f.partner().await;
    let every_line = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let line_a = f
        .subscribe(&p, Spec::to(&["message.sent"]).on_lines(&[LINE_A]))
        .await;
    let both_lines = f
        .subscribe(&p, Spec::to(&["message.sent"]).on_lines(&[LINE_B, LINE_A]))
        .await;

    let got = fan_out_of(&f, &line_event(&p, "message.sent", LINE_A), 1).await;
    assert_eq!(got, ids(&[&every_line, &line_a, &both_lines]));
    let got = fan_out_of(&f, &line_event(&p, "message.sent", LINE_B), 3).await;
    assert_eq!(got, ids(&[&every_line, &both_lines]));
    let got = fan_out_of(&f, &line_event(&p, "message.sent", "+14155550199"), 5).await;
    assert_eq!(got, ids(&[&every_line]), "a line nobody filtered on");
    let got = fan_out_of(&f, &event(&p, "message.sent"), 7).await;
    assert_eq!(
        got,
        ids(&[&every_line]),
        "an event on no line passes no line filter"
    );
}

async fn account_events_pass_phone_filters(f: Fixture) {
    const LINE_A: &str = "+14155550100";
    let p = f.partner().await;
    let events = &["webhook_subscription.created", "message.sent"];
    let every_line = f.subscribe(&p, Spec::to(events)).await;
    let line_a = f.subscribe(&p, Spec::to(events).on_lines(&[LINE_A])).await;

    let got = fan_out_of(&f, &event(&p, "webhook_subscription.created"), 1).await;
    assert_eq!(
        got,
        ids(&[&every_line, &line_a]),
        "about the account, on no line"
    );
    let other_line = line_event(&p, "webhook_subscription.created", "+14155550199");
    let got = fan_out_of(&f, &other_line, 3).await;
    assert_eq!(
        got,
        ids(&[&every_line, &line_a]),
        "even naming another line"
    );
    let got = fan_out_of(&f, &event(&p, "message.sent"), 5).await;
    assert_eq!(got, ids(&[&every_line]), "a line event still is filtered");
}

async fn message_edited_goes_only_to_2026_02_03_targets(f: Fixture) {
    let p = f.partner().await;
    let events = &["message.edited", "message.sent"];
    let newest_by_default = f.subscribe(&p, Spec::to(events)).await;
    let explicit_new = f
        .subscribe(&p, Spec::to(events).version("2026-02-03"))
        .await;
    let old = f
        .subscribe(&p, Spec::to(events).version("2025-01-01"))
        .await;

    let got = fan_out_of(&f, &event(&p, "message.edited"), 1).await;
    assert_eq!(got, ids(&[&newest_by_default, &explicit_new]));
    let got = fan_out_of(&f, &event(&p, "message.sent"), 3).await;
    assert_eq!(
        got,
        ids(&[&newest_by_default, &explicit_new, &old]),
        "other events go to every format"
    );
}

async fn inactive_and_deleted_subscriptions_receive_nothing(f: Fixture) {
    let p = f.partner().await;
    let live = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let created_inactive = f
        .subscribe(&p, Spec::to(&["message.sent"]).inactive())
        .await;
    let deactivated = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let deleted = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    // Published once first, so a backend that caches fan-out has the old state cached.
    let got = fan_out_of(&f, &event(&p, "message.sent"), 1).await;
    assert_eq!(got, ids(&[&live, &deactivated, &deleted]));

    let off = f.update(&deactivated, at(3), |s| s.is_active = false).await;
    assert_eq!(off, UpdateResult::Updated);
    assert!(f.delete(&deleted, at(3)).await);
    let got = fan_out_of(&f, &event(&p, "message.sent"), 5).await;
    assert_eq!(
        got,
        ids(&[&live]),
        "not {}, created inactive, nor the deactivated or deleted ones",
        created_inactive.id
    );
}

async fn other_partners_subscriptions_receive_nothing(f: Fixture) {
    let (p, q) = (f.partner().await, f.partner().await);
    let mine = f.subscribe(&p, Spec::to(&["message.sent"])).await;
    let _theirs = f.subscribe(&q, Spec::to(&["message.sent"])).await;

    let got = fan_out_of(&f, &event(&p, "message.sent"), 1).await;
    assert_eq!(got, ids(&[&mine]));
}

use super::*;

const T0: i64 = 1_800_000_000_000;

fn facts<'a>(recent: &'a [Sent], to: &'a [i64]) -> Facts<'a> {
    Facts {
        now: T0,
        local_ms: 12 * HOUR as u32,
        recent,
        to_recipient: to,
        first_contact: false,
        day: None,
        high_priority: false,
        gap_draw: 0,
    }
}

fn sent(at: &[i64]) -> Vec<Sent> {
    at.iter()
        .map(|&at| Sent {
            at,
            first_contact: false,
        })
        .collect()
}

fn only(f: impl FnOnce(&mut Rules)) -> Rules {
    let mut r = Rules::none();
    f(&mut r);
    r
}

#[test]
fn the_written_forms_parse_and_bad_ones_say_why() {
    assert_eq!(parse_gap("3s..8s"), Ok((3_000, 8_000)));
    assert_eq!(parse_gap("500ms"), Ok((500, 500)));
    assert_eq!(parse_gap("0"), Ok((0, 0)));
    assert_eq!(parse_gap("8s..3s"), Ok((3_000, 8_000)));
    assert!(parse_gap("fast").is_err());
    assert_eq!(parse_duration_ms("1h 30m"), Ok(5_400_000));
    assert_eq!(parse_quiet_hours("21:00-08:00"), Ok(Some((75_600, 28_800))));
    assert_eq!(parse_quiet_hours("off"), Ok(None));
    assert!(parse_quiet_hours("25:00-08:00").is_err());
    assert_eq!(parse_quiet_hours("08:00-08:00"), Ok(None));
    assert_eq!(parse_typing("40ms/char, max 6s"), Ok((40, 6_000)));
    assert_eq!(parse_typing("off"), Ok((0, 0)));
    assert!(parse_typing("fast").is_err());
    assert!(
        parse_typing("").is_err() && parse_quiet_hours("").is_err(),
        "say \"off\""
    );
    let mut r = Rules::none();
    r.set("per_hour", "30").unwrap();
    r.set("warmup", "[20, 40]").unwrap();
    r.set("per_minute", "off").unwrap();
    assert_eq!(
        (r.per_hour, r.per_minute, r.warmup.clone()),
        (Some(30), None, vec![20, 40])
    );
    assert!(r.set("per_hour", "many").is_err());
    assert!(r.set("warmup", "20,0").is_err());
    let days = |n: usize| vec!["20"; n].join(",");
    assert!(r.set("warmup", &days(MAX_WARMUP_DAYS)).is_ok());
    assert!(r.set("warmup", &days(MAX_WARMUP_DAYS + 1)).is_err());
    assert!(r.set("speed", "1").unwrap_err().contains("unknown"));
}

#[test]
fn the_gap_falls_in_its_range_by_the_draw() {
    assert_eq!(gap_ms((3_000, 8_000), 0), 3_000);
    assert_eq!(gap_ms((3_000, 8_000), u32::MAX), 7_999);
    assert_eq!(gap_ms((3_000, 8_000), 1 << 31), 5_500);
    let rules = only(|r| r.gap = (3_000, 8_000));
    let recent = sent(&[T0 - 1_000]);
    let mut f = facts(&recent, &[]);
    f.gap_draw = 1 << 31;
    assert_eq!(
        decide(&rules, &f),
        Decision::Defer {
            until: T0 + 4_500,
            rule: Rule::Gap
        }
    );
    f.high_priority = true;
    assert_eq!(
        decide(&rules, &f),
        Decision::Now,
        "high priority skips the gap"
    );
    assert_eq!(
        decide(&rules, &facts(&[], &[])),
        Decision::Now,
        "nothing sent yet: no gap"
    );
}

#[test]
fn a_cap_holds_until_the_oldest_send_over_it_leaves_the_window() {
    let rules = only(|r| r.per_minute = Some(3));
    // Four in the last minute (and one older): one more may go once two have left.
    let recent = sent(&[
        T0 - 70_000,
        T0 - 50_000,
        T0 - 40_000,
        T0 - 20_000,
        T0 - 1_000,
    ]);
    assert_eq!(
        decide(&rules, &facts(&recent, &[])),
        Decision::Defer {
            until: T0 + 20_000,
            rule: Rule::PerMinute
        }
    );
    let two = sent(&[T0 - 50_000, T0 - 40_000]);
    assert_eq!(decide(&rules, &facts(&two, &[])), Decision::Now);
    // The latest hold wins, naming its rule.
    let rules = only(|r| {
        r.per_minute = Some(3);
        r.per_hour = Some(4);
    });
    let recent = sent(&[T0 - 3_000_000, T0 - 50_000, T0 - 40_000, T0 - 20_000]);
    assert_eq!(
        decide(&rules, &facts(&recent, &[])),
        Decision::Defer {
            until: T0 - 3_000_000 + HOUR,
            rule: Rule::PerHour
        }
    );
}

#[test]
fn the_warmup_ramps_by_day_then_per_day_applies() {
    let rules = only(|r| {
        r.per_day = Some(100);
        r.warmup = vec![2, 3];
    });
    let recent = sent(&[T0 - 5 * HOUR, T0 - 4 * HOUR, T0 - 3 * HOUR]);
    let mut f = facts(&recent, &[]);
    for (day, want) in [
        (
            Some(0),
            Decision::Defer {
                until: T0 - 4 * HOUR + DAY,
                rule: Rule::Warmup,
            },
        ),
        (
            Some(1),
            Decision::Defer {
                until: T0 - 5 * HOUR + DAY,
                rule: Rule::Warmup,
            },
        ),
        (Some(2), Decision::Now),
        (None, Decision::Now),
    ] {
        f.day = day;
        assert_eq!(decide(&rules, &f), want, "day {day:?}");
    }
}

#[test]
fn per_recipient_and_first_contact_caps_hold_only_their_messages() {
    let rules = only(|r| {
        r.per_recipient_per_hour = Some(2);
        r.first_contact_per_day = Some(1);
    });
    let to = [T0 - 1_800_000, T0 - 60_000];
    assert_eq!(
        decide(&rules, &facts(&[], &to)),
        Decision::Defer {
            until: T0 - 1_800_000 + HOUR,
            rule: Rule::PerRecipient
        }
    );
    let recent = vec![Sent {
        at: T0 - HOUR,
        first_contact: true,
    }];
    let mut f = facts(&recent, &[]);
    assert_eq!(decide(&rules, &f), Decision::Now, "not a first contact");
    f.first_contact = true;
    assert_eq!(
        decide(&rules, &f),
        Decision::Defer {
            until: T0 - HOUR + DAY,
            rule: Rule::FirstContact
        }
    );
    assert!(Rule::PerRecipient.is_per_message() && !Rule::PerHour.is_per_message());
}

#[test]
fn quiet_hours_hold_until_their_end_across_midnight() {
    let rules = only(|r| r.quiet_hours = Some((21 * 3600, 8 * 3600)));
    let mut f = facts(&[], &[]);
    for (local_h, wait_h) in [
        (22, Some(10)),
        (2, Some(6)),
        (8, None),
        (20, None),
        (21, Some(11)),
    ] {
        f.local_ms = (local_h * HOUR) as u32;
        let want = match wait_h {
            Some(h) => Decision::Defer {
                until: T0 + h * HOUR,
                rule: Rule::QuietHours,
            },
            None => Decision::Now,
        };
        assert_eq!(decide(&rules, &f), want, "at {local_h}:00");
    }
    let lunch = only(|r| r.quiet_hours = Some((13 * 3600, 14 * 3600)));
    f.local_ms = (13 * HOUR + 30 * MINUTE) as u32;
    assert_eq!(
        decide(&lunch, &f),
        Decision::Defer {
            until: T0 + 30 * MINUTE,
            rule: Rule::QuietHours
        }
    );
    f.high_priority = true;
    assert!(
        matches!(decide(&lunch, &f), Decision::Defer { .. }),
        "high priority keeps quiet hours"
    );
}

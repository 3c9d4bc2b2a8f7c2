//! The page layout and the pieces pages share: navigation, CSRF fields, times, payloads, charts.

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use crate::auth::Access;

/// The console's sections, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Log,
    Streams,
    Projections,
    Subjects,
    Tenants,
    Health,
}

const SECTIONS: [(Section, &str, &str); 7] = [
    (Section::Overview, "", "Overview"),
    (Section::Log, "/log", "Log"),
    (Section::Streams, "/streams", "Streams"),
    (Section::Projections, "/projections", "Projections"),
    (Section::Subjects, "/subjects", "Subjects"),
    (Section::Tenants, "/tenants", "Tenants"),
    (Section::Health, "/health", "Health"),
];

/// The console's home, under its mount point.
pub(crate) fn home(base: &str) -> String {
    if base.is_empty() { "/".to_owned() } else { base.to_owned() }
}

/// A whole page: head, navigation, `body`.
pub(crate) fn page(
    app_title: &str,
    title: &str,
    access: &Access,
    section: Section,
    body: &Markup,
) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (app_title) }
                link rel="stylesheet" href=(access.link("/assets/console.css"));
                script src=(access.link("/assets/console.js")) defer {}
            }
            body data-base=(access.base) {
                header {
                    a class="brand" href=(home(&access.base)) { (app_title) }
                    nav {
                        @for (item, path, label) in SECTIONS {
                            @let href = if path.is_empty() { home(&access.base) } else { access.link(path) };
                            a href=(href) class=[(item == section).then_some("active")] { (label) }
                        }
                    }
                    span class="who" { (access.role.as_str()) }
                    @if access.csrf.is_some() {
                        form method="post" action=(access.link("/logout")) class="inline" {
                            (csrf_field(access))
                            button type="submit" class="link" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// The hidden field that carries the session's CSRF token back.
pub(crate) fn csrf_field(access: &Access) -> Markup {
    html! {
        @if let Some(csrf) = &access.csrf {
            input type="hidden" name="csrf" value=(csrf);
        }
    }
}

/// A time as UTC, to the millisecond.
pub(crate) fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// The most bytes of one payload a page shows; the rest is cut, and the page says so.
pub(crate) const MAX_SHOWN_PAYLOAD: usize = 64 * 1024;

/// A JSON document, pretty-printed (escaped by maud where it is placed).
pub(crate) fn json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// An event's payload as a page shows it: pretty JSON, cut at [`MAX_SHOWN_PAYLOAD`] bytes (on a
/// character boundary) with a line saying how much was left out.
pub(crate) fn payload(payload: &es_core::Payload) -> String {
    let mut text = payload.to_value().map_or_else(|_| payload.as_str().to_owned(), |v| json(&v));
    if text.len() > MAX_SHOWN_PAYLOAD {
        let total = text.len();
        let mut cut = MAX_SHOWN_PAYLOAD;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        let note = format!("\n… cut: {} of {} bytes shown", count(cut as u64), count(total as u64));
        text.push_str(&note);
    }
    text
}

/// A small line chart of `values` (an inline SVG, no script), scaled to its maximum.
// Chart coordinates: precision past 2^52 is moot.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn sparkline(values: &[u64]) -> Markup {
    const WIDTH: u64 = 160;
    const HEIGHT: u64 = 32;
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let step = if values.len() > 1 { WIDTH as f64 / (values.len() - 1) as f64 } else { 0.0 };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let y = HEIGHT as f64 - (*value as f64 / max as f64) * HEIGHT as f64;
            let x = step * i as f64;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        svg class="spark" width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            role="img" aria-label={ "lag over the last " (values.len()) " samples" } {
            polyline fill="none" stroke="currentColor" stroke-width="1.5" points=(points.join(" ")) {}
        }
    }
}

/// A number with thousands separators.
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A notice at the top of a page (an action's outcome).
pub(crate) fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text { p class="notice" role="status" { (text) } }
    }
}

//! Markdown artifacts rendered for a page. Sanitised by construction: raw HTML in the source is
//! shown as text, and links and images keep only http(s), mailto and relative targets, so a
//! step's output cannot put script or a `javascript:` link into weir's pages.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon before any slash, '?' or '#' is a scheme.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

pub fn render(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(source, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let dest_url = if safe_url(&dest_url) { dest_url } else { CowStr::from("#") };
            Event::Start(Tag::Link { link_type, dest_url, title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            let dest_url = if safe_url(&dest_url) { dest_url } else { CowStr::from("") };
            Event::Start(Tag::Image { link_type, dest_url, title, id })
        }
        other => other,
    });
    let mut out = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_raw_html_is_text() {
        let out = render("# Title\n\n*x* <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n");
        assert!(out.contains("<h1>Title</h1>"));
        assert!(out.contains("<em>x</em>"));
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("&lt;script&gt;"));
    }

    #[test]
    fn only_safe_link_targets_are_kept() {
        let out = render("[a](javascript:alert(1)) [b](https://kubeflow.org) [c](JaVaScRiPt:x) [d](/runs)");
        assert!(!out.to_ascii_lowercase().contains("javascript:"), "{out}");
        assert!(out.contains(r#"href="https://kubeflow.org""#));
        assert!(out.contains(r#"href="/runs""#));
    }
}

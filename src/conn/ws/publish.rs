//! Client publishing on the rooms endpoint: which room a client's text
//! message goes to, and the HTML fragment an htmx `ws-send` form becomes
//! through the endpoint's template. Pure code.
//!
//! htmx's `ws-send` sends the form's fields as JSON plus a `HEADERS` object;
//! a template such as `<div id="chat" hx-swap-oob="beforeend"><p><b>{{user}}</b>: {{message}}</p></div>`
//! is filled with those fields, every value HTML-escaped, so a chat works
//! with no backend and `<script>` arrives as text.

use bytes::Bytes;

use crate::hub::RoomName;

/// Where a client message goes and what is published. Errors name the rule
/// broken (the connection is closed with 1008 and that reason).
pub fn prepare(
    text: &str,
    rooms: &[RoomName],
    auto_join: &str,
    template: &str,
) -> Result<(RoomName, Bytes), &'static str> {
    let json: Option<serde_json::Value> = serde_json::from_str(text)
        .ok()
        .filter(|v: &serde_json::Value| v.is_object());
    let own: Vec<&RoomName> = rooms.iter().filter(|r| &***r != auto_join).collect();
    let named = json
        .as_ref()
        .and_then(|v| v.get("room"))
        .and_then(|r| r.as_str());
    let room = match named {
        Some(name) => rooms
            .iter()
            .find(|r| &***r == name)
            .ok_or("the message names a room this connection is not in")?
            .clone(),
        None if own.len() == 1 => own[0].clone(),
        None => return Err(
            "a message must name its room (a JSON \"room\" field) when the connection has several",
        ),
    };
    if let Some(why) = crate::hub::reserved_room(&room) {
        return Err(why);
    }
    if template.is_empty() {
        return Ok((room, Bytes::copy_from_slice(text.as_bytes())));
    }
    let fields = json.ok_or("this endpoint's template needs a JSON object message")?;
    Ok((room, Bytes::from(render(template, &fields))))
}

/// Fills `{{field}}` (or `{{HEADERS.HX-Trigger}}`, a dotted path) with the
/// HTML-escaped value; a missing field becomes empty.
pub fn render(template: &str, fields: &serde_json::Value) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let path = after[..end].trim();
        let mut v = Some(fields);
        for part in path.split('.') {
            v = v.and_then(|x| x.get(part));
        }
        match v {
            Some(serde_json::Value::String(s)) => escape_into(s, &mut out),
            Some(serde_json::Value::Null) | None => {}
            Some(other) => escape_into(&other.to_string(), &mut out),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rooms(names: &[&str]) -> Vec<RoomName> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn one_room_takes_plain_text() {
        let (room, data) = prepare("hello", &rooms(&["chat", "__all"]), "__all", "").unwrap();
        assert_eq!((&*room, &data[..]), ("chat", &b"hello"[..]));
    }

    #[test]
    fn several_rooms_need_a_named_room() {
        let r = rooms(&["a", "b", "__all"]);
        assert!(prepare("hi", &r, "__all", "")
            .unwrap_err()
            .contains("name its room"));
        let (room, _) = prepare(r#"{"room":"b","message":"hi"}"#, &r, "__all", "").unwrap();
        assert_eq!(&*room, "b");
        assert!(prepare(r#"{"room":"zzz"}"#, &r, "__all", "")
            .unwrap_err()
            .contains("not in"));
    }

    #[test]
    fn reserved_rooms_take_no_client_message() {
        let r = rooms(&["__dashboard", "news"]);
        let e = prepare(r#"{"room":"__dashboard"}"#, &r, "", "").unwrap_err();
        assert!(e.contains("reserved"), "{e}");
        let only = rooms(&["__dashboard"]);
        assert!(prepare("plain", &only, "", "").is_err());
        assert!(prepare(r#"{"room":"news"}"#, &r, "", "").is_ok());
    }

    #[test]
    fn template_escapes_every_value() {
        let t = r#"<div id="chat" hx-swap-oob="beforeend"><p><b>{{user}}</b>: {{message}} ({{HEADERS.HX-Trigger}})</p></div>"#;
        let msg = r#"{"user":"a\"b","message":"<script>alert(1)</script>","HEADERS":{"HX-Trigger":"form"}}"#;
        let (_, html) = prepare(msg, &rooms(&["chat"]), "", t).unwrap();
        assert_eq!(
            std::str::from_utf8(&html).unwrap(),
            r#"<div id="chat" hx-swap-oob="beforeend"><p><b>a&quot;b</b>: &lt;script&gt;alert(1)&lt;/script&gt; (form)</p></div>"#
        );
        assert!(prepare("not json", &rooms(&["chat"]), "", t).is_err());
    }

    #[test]
    fn missing_fields_are_empty_and_numbers_print() {
        let v: serde_json::Value = serde_json::from_str(r#"{"n":42}"#).unwrap();
        assert_eq!(render("[{{n}}][{{gone}}][{{ n }}]{{", &v), "[42][][42]{{");
    }
}

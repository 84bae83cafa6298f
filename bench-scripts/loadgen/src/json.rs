//! The one-line JSON report every mode ends with, written by hand: an
//! object of string, integer, float and boolean members, in insertion order.

pub struct JsonLine {
    buf: String,
}

impl Default for JsonLine {
    fn default() -> Self {
        Self::new()
    }
}

fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl JsonLine {
    pub fn new() -> Self {
        JsonLine {
            buf: String::from("{"),
        }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        escape_into(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        escape_into(&mut self.buf, v);
        self
    }

    pub fn int(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        self.buf.push_str(&v.to_string());
        self
    }

    pub fn float(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        if v.is_finite() {
            // Enough digits for any figure in a report, no exponent.
            let s = format!("{v:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            self.buf
                .push_str(if s.is_empty() || s == "-" { "0" } else { s });
        } else {
            self.buf.push_str("null");
        }
        self
    }

    pub fn opt_float(&mut self, k: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.float(k, v),
            None => {
                self.key(k);
                self.buf.push_str("null");
                self
            }
        }
    }

    pub fn opt_int(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.int(k, v),
            None => {
                self.key(k);
                self.buf.push_str("null");
                self
            }
        }
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn finish(&self) -> String {
        format!("{}}}", self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_object() {
        let mut j = JsonLine::new();
        j.str("mode", "echo \"x\"\n")
            .int("n", 42)
            .float("r", 1.5)
            .float("z", 2.0)
            .float("nan", f64::NAN)
            .opt_int("none", None)
            .bool("ok", true);
        assert_eq!(
            j.finish(),
            r#"{"mode":"echo \"x\"\n","n":42,"r":1.5,"z":2,"nan":null,"none":null,"ok":true}"#
        );
        assert_eq!(JsonLine::new().finish(), "{}");
    }
}
